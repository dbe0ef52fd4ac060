"""DataFrames in and out of PostgreSQL: dtype rules, COPY readers and writers on a Session.

A self-contained codec and transport: it takes a SQLAlchemy ``Session`` / ``AsyncSession`` and
a statement or table, never a Database or a repository, so ``engine`` (``db.frame()``) and
``orm`` (``repo.to_frame()``) both build on it. May import the leaves only.
"""
