"""A project's migrations on every backend: init, autogenerate, migrate, check, alter, downgrade.

SQLite alters tables in Alembic's batch mode (it rebuilds the table); MariaDB serialises
migrations on a named lock; the soft-delete unique key keeps its meaning on each.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

import dbnb
from dbnb import migrations
from dbnb.migrations.reports import SqlScript

#: Run on each backend (tests/conftest.py); a difference shows as a failing case.
BACKENDS = ("postgresql", "sqlite", "mariadb")

MODELS = '''
from sqlalchemy import String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from dbnb.orm.models import Timestamps, UUIDPrimaryKey, new_registry


class Base(DeclarativeBase):
    registry = new_registry()
    metadata = registry.metadata


class Customer(UUIDPrimaryKey, Timestamps, Base):
    __tablename__ = "mig_customers"
    email: Mapped[str] = mapped_column(String(200))
'''
MORE = "    age: Mapped[int | None]\n"


@pytest.fixture
def project(tmp_path: Path, db: dbnb.Database) -> Iterator[Path]:
    """An empty project with its own models module; the module's tables dropped after."""
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'mine'\n")
    name = f"models_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text(MODELS)
    migrations.init(tmp_path, models=name)
    yield tmp_path
    with db.engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE IF EXISTS mig_customers"))
        conn.execute(sa.text("DROP TABLE IF EXISTS alembic_version"))


def _model(project: Path) -> Any:
    import importlib

    return importlib.import_module(_models(project).stem).Customer


def _models(project: Path) -> Path:
    return next(p for p in project.glob("models_*.py"))


def test_autogenerate_migrate_check_alter_and_downgrade(
    db: dbnb.Database, project: Path, db_backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    ini = project / "alembic.ini"
    first = migrations.revision(db, "customers", autogenerate=True, config=ini)
    assert first.written
    caplog.set_level(logging.INFO, logger="dbnb")
    result = migrations.upgrade(db, config=ini)
    assert isinstance(result, dbnb.MigrationResult)
    assert [r.message for r in result.steps] == ["customers"]
    assert any(r.name == "dbnb.migrations" and r.getMessage().startswith("upgrade: base -> ")
               for r in caplog.records)
    assert migrations.check(db, config=ini).ok
    # Plain SQL: the server's own defaults make the id and the timestamps.
    db.execute("INSERT INTO mig_customers (email) VALUES ('a@example.com')")
    rows = db.execute("SELECT email, created_at, id FROM mig_customers")
    assert rows[0][0] == "a@example.com" and rows[0][1] is not None and rows[0][2]
    customer = dbnb.Repository(_model(project), db).get_by(email="a@example.com")
    assert customer is not None and customer.created_at.tzinfo is not None

    models = _models(project)
    models.write_text(MODELS + MORE)
    sys.modules.pop(models.stem, None)  # the next import reads the new models
    second = migrations.revision(db, "age", autogenerate=True, config=ini)
    source = Path(second.path).read_text() if second.path else ""
    assert "add_column" in source
    assert ("batch_alter_table" in source) is (db_backend == "sqlite")
    migrations.upgrade(db, config=ini)
    assert migrations.check(db, config=ini).ok
    assert db.execute("SELECT email, age FROM mig_customers")[0][0] == "a@example.com"
    down = migrations.downgrade(db, config=ini)
    assert isinstance(down, dbnb.MigrationResult)
    assert down.to_revisions == (first.revision,)
    columns = {c["name"] for c in sa.inspect(db.engine).get_columns("mig_customers")}
    assert "age" not in columns and "email" in columns


def test_sql_is_written_in_the_databases_dialect(
    db: dbnb.Database, project: Path, db_backend: str
) -> None:
    ini = project / "alembic.ini"
    migrations.revision(db, "customers", autogenerate=True, config=ini)
    script = migrations.upgrade(db, sql=True, config=ini)
    assert isinstance(script, SqlScript)
    text = script.sql
    assert "CREATE TABLE mig_customers" in text
    spelled = {"postgresql": "now()", "sqlite": "strftime(", "mariadb": "CURRENT_TIMESTAMP(6)"}
    assert spelled[db_backend] in text
