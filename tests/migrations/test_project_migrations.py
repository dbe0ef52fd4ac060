"""Migrations of a project of one's own: init, models next to alembic.ini, autogenerate that
says when it has nothing to do, tables made without migrations, the revision graph, --sql."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL

import dbnb
from dbnb import migrations

ROOT = Path(__file__).resolve().parents[2]

MODELS = '''
from sqlalchemy import String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Customer(Base):
    __tablename__ = "customers"
    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(200))
    age: Mapped[int | None]
'''


@pytest.fixture
def fresh(server_url: URL) -> Iterator[dbnb.Database]:
    db = dbnb.connect(server_url, database="t_project_migrations", reset=True)
    yield db
    db.close()


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """An empty project with its own models.py, scaffolded by init --models models."""
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'mine'\n")
    (tmp_path / "models.py").write_text(MODELS)
    (tmp_path / "notebooks").mkdir()
    made = migrations.init(tmp_path, models="models")
    assert made.models == "models"
    assert "dbnb.migrations.revision(db, 'first tables', autogenerate=True)" in made.next
    return tmp_path


def cli(fresh: dbnb.Database, cwd: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DBNB_URL": fresh.url.render_as_string(hide_password=False),
           "PYTHONWARNINGS": "error"}
    env.pop("PYTHONPATH", None)
    return subprocess.run([sys.executable, "-m", "dbnb", *argv], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def test_a_models_module_next_to_alembic_ini_works_from_anywhere(
    fresh: dbnb.Database, project: Path
) -> None:
    """revision, migrate and check import models.py beside alembic.ini, without PYTHONPATH."""
    ini = str(project / "alembic.ini")
    made = cli(fresh, project / "notebooks", "revision", "-m", "customers", "--autogenerate",
               "--config", ini)
    assert made.returncode == 0, made.stderr
    assert "add table customers" in made.stdout
    assert cli(fresh, project / "notebooks", "migrate", "--config", ini).returncode == 0
    checked = cli(fresh, project / "notebooks", "check", "--config", ini)
    assert checked.returncode == 0 and checked.stdout.startswith("no drift"), checked.stderr
    again = migrations.revision(fresh, "nothing", autogenerate=True, config=ini)
    assert not again.written and "no revision written" in again.note
    assert "empty=True writes an empty one" in again.note
    forced = migrations.revision(fresh, "nothing", autogenerate=True, empty=True, config=ini)
    assert forced.written and forced.operations == ()
    assert len(list((project / "migrations" / "versions").glob("*.py"))) == 2


def test_no_models_is_an_error_not_an_empty_revision(
    fresh: dbnb.Database, tmp_path: Path
) -> None:
    (tmp_path / "pyproject.toml").write_text("")
    migrations.init(tmp_path)  # no --models: dbnb's Base, with no models in this process
    for run in (cli(fresh, tmp_path, "revision", "-m", "first", "--autogenerate"),
                cli(fresh, tmp_path, "check")):
        assert run.returncode == 1
        assert "no models to compare with" in run.stderr and "--models" in run.stderr
    assert list((tmp_path / "migrations" / "versions").glob("*.py")) == []
    with pytest.raises(dbnb.MigrationError, match="models='Base'"):
        migrations.check(fresh, models=sa.MetaData(), config=tmp_path)


def test_tables_made_without_migrations_get_two_ways_forward(
    fresh: dbnb.Database, project: Path
) -> None:
    sys.path.insert(0, str(project))
    try:
        import models  # type: ignore[import-not-found]

        models.Base.metadata.create_all(fresh.engine)  # as tutorial 01 does
        ini = project / "alembic.ini"
        made = migrations.revision(fresh, "first", autogenerate=True, config=ini)
        assert not made.written
        assert "already has the models' tables (customers) but no alembic_version" in made.note
        assert "baseline=True" in made.note and "stamp(db, 'head')" in made.note
        report = migrations.check(fresh, config=ini)
        assert not report.ok and "no alembic_version" in report.summary
        baseline = migrations.revision(fresh, "baseline", baseline=True, config=ini)
        assert baseline.operations == ("add table customers",)
        migrations.stamp(fresh, "head", config=ini)
        assert migrations.check(fresh, config=ini).ok
    finally:
        sys.path.remove(str(project))
        sys.modules.pop("models", None)


REVISION = '''"""{name}

Revision ID: {rev}
Revises: 0002
"""
from alembic import op

revision = "{rev}"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE TABLE {name} (x int)")


def downgrade() -> None:
    op.execute("DROP TABLE {name}")
'''


def test_branches_merge_show(tmp_path: Path) -> None:
    shutil.copy(ROOT / "alembic.ini", tmp_path / "alembic.ini")
    shutil.copytree(ROOT / "migrations", tmp_path / "migrations",
                    ignore=shutil.ignore_patterns("__pycache__"))
    versions = tmp_path / "migrations" / "versions"
    for rev, name in (("a1", "coupons"), ("b1", "gifts")):
        (versions / f"{rev}.py").write_text(REVISION.format(rev=rev, name=name))
    points = migrations.branches(config=tmp_path)
    assert [r.revision for r in points.revisions] == ["0002"]
    shown = migrations.show("0002", config=tmp_path)
    assert shown.next_revisions == ("a1", "b1") and shown.is_branch_point
    merged = migrations.merge(message="join coupons and gifts", config=tmp_path)
    assert set(merged.down_revisions) == {"a1", "b1"} and merged.written
    assert migrations.show("head", config=tmp_path).revision == merged.revision
    with pytest.raises(dbnb.MigrationError, match="one head"):
        migrations.merge(config=tmp_path)


def test_sql_shows_what_would_run_and_runs_nothing(fresh: dbnb.Database) -> None:
    ini = ROOT / "alembic.ini"
    script = migrations.upgrade(fresh, sql=True, config=ini)
    assert isinstance(script, migrations.reports.SqlScript)
    assert "CREATE TABLE users" in script.sql and script.range == "head"
    assert "users" not in sa.inspect(fresh.engine).get_table_names()
    migrations.upgrade(fresh, config=ini)
    down = migrations.downgrade(fresh, sql=True, config=ini)
    assert down.range == "0002:0001" and "DROP INDEX ix_products_category" in down.sql
    assert migrations.current(fresh, config=ini).revisions == ("0002",)


def test_plain_alembic_check_sees_a_changed_partial_index(fresh: dbnb.Database) -> None:
    ini = ROOT / "alembic.ini"
    migrations.upgrade(fresh, config=ini)
    fresh.execute("DROP INDEX uq_users_email; CREATE UNIQUE INDEX uq_users_email ON users (email)")
    env = {**os.environ, "DBNB_URL": fresh.url.render_as_string(hide_password=False)}
    done = subprocess.run([sys.executable, "-m", "alembic", "-c", str(ini), "check"], env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode != 0
    assert "uq_users_email" in done.stdout + done.stderr
    assert "remove_index" in done.stdout + done.stderr
