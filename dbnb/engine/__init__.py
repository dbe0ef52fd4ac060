"""Database and its async face: engines, pools, session scopes, transactions, health, connect().

One URL becomes a psycopg and an asyncpg engine (``engines``), sessions and transaction scopes
are opened on them (``sessions``, ``transactions``), and ``Database`` / ``AsyncDatabase`` are
the two faces users hold. May import ``server``, ``frames`` and the leaves; imported by
``orm``, ``migrations`` and the layers above.
"""
