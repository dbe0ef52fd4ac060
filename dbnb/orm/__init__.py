"""Models and repositories: Base and mixins, soft delete, filters, statements, pages.

IO-free statement building (``filters``, ``statements``, ``pagination``) with two thin shells
that run it (``Repository`` on psycopg, ``AsyncRepository`` on asyncpg). May import
``engine``, ``frames`` and the leaves; imported by ``migrations`` and the layers above.
"""
