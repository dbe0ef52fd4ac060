"""Alembic environment of a dbnb project (written by ``dbnb init``; dbnb keeps it in step).

dbnb's migration functions (``%db migrate``, ``dbnb migrate``, ``dbnb.migrations.upgrade``) run
this file with their own live connection in ``config.attributes["connection"]``; the plain
``alembic`` command works too and connects through ``dbnb.connect()`` (``DBNB_URL``,
``DATABASE_URL``, else the embedded server).

It never starts an event loop and only configures logging when the ``alembic`` command itself
runs it: inside a Jupyter kernel the kernel's logging is left alone.
"""

from __future__ import annotations

from logging.config import fileConfig

from alembic import context
from sqlalchemy.engine import Connection, Engine

from dbnb.migrations.config import context_options, target_metadata

config = context.config

if config.cmd_opts is not None and config.config_file_name is not None:
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def run_with(connection: Connection) -> None:
    """Run the migrations on ``connection``, one transaction per revision."""
    context.configure(
        connection=connection,
        target_metadata=target_metadata(config),
        **context_options(connection),
    )
    with context.begin_transaction():
        context.run_migrations()


def run_offline() -> None:
    """Write the migrations as SQL (``alembic upgrade head --sql``) instead of running them."""
    context.configure(
        dialect_name=config.attributes.get("dialect_name", "postgresql"),
        target_metadata=target_metadata(config),
        literal_binds=True,
        **context_options(),
    )
    with context.begin_transaction():
        context.run_migrations()


given = config.attributes.get("connection")
if context.is_offline_mode():
    run_offline()
elif isinstance(given, Connection):
    run_with(given)
elif isinstance(given, Engine):
    with given.connect() as connection:
        run_with(connection)
else:
    import dbnb

    with dbnb.connect().engine.connect() as connection:
        run_with(connection)
