"""The end-to-end tour behind ``dbnb demo``: embedded server, both engines, health and pools."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import text

from dbnb.engine.bridge import run
from dbnb.engine.database import Database
from dbnb.engine.registry import connect

__all__ = ["tour"]

_SETUP = """
CREATE TABLE IF NOT EXISTS demo_notes (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    body text NOT NULL,
    via text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
)
"""


async def _async_part(db: Database) -> int:
    async with db.async_session() as s:
        await s.execute(
            text("INSERT INTO demo_notes (body, via) VALUES (:body, 'asyncpg')"),
            [{"body": f"async note {i}"} for i in range(3)],
        )
    async with db.async_session() as s:
        count = (await s.execute(text("SELECT count(*) FROM demo_notes"))).scalar_one()
    health = await db.asyncio.health()
    await db.asyncio.close()
    return int(count) if health.ok else -1


def tour(say: Callable[[str], None]) -> int:
    """Walk through the basics on a fresh ``dbnb_demo`` database; return an exit code."""
    db = connect(database="dbnb_demo", reset=True)
    where = db.embedded.describe() if db.embedded else "the configured server"
    say(f"connected: database {db.database!r} on {where}")
    with db.session() as s:
        s.execute(text(_SETUP))
        s.execute(
            text("INSERT INTO demo_notes (body, via) VALUES (:body, 'psycopg')"),
            [{"body": f"sync note {i}"} for i in range(3)],
        )
    rows = db.execute("SELECT via, count(*) AS n FROM demo_notes GROUP BY via ORDER BY via")
    say("rows by driver (sync): " + ", ".join(f"{r.via}={r.n}" for r in rows))
    say(str(db.health()))
    say(str(db.pool_status()))
    say(str(db.info()))
    seen_async = run(_async_part(db))
    say(f"rows seen through asyncpg after its inserts: {seen_async}")
    return 0 if seen_async == 6 else 1
