"""The PostgreSQL server dbnb runs or reaches, below any pool: the embedded server, admin chores.

May import the leaves (``settings``, ``errors``, ``display``); imported by ``engine`` and the
layers above it. Nothing here knows about engines, sessions or models.
"""
