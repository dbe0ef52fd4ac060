"""Migrations through Alembic's Python API, on this repo's own alembic.ini and migrations/.

pytest-alembic's built-in checks run on a fresh database each; the rest use the module's
database, a copy of the project in a temporary directory, or a child process.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from pytest_alembic import MigrationContext, runner
from pytest_alembic.config import Config as PytestAlembicConfig
from pytest_alembic.tests import (
    test_model_definitions_match_ddl,
    test_single_head_revision,
    test_up_down_consistency,
    test_upgrade,
)
from sqlalchemy.engine import URL, Engine

import dbnb
from dbnb import migrations
from dbnb.examples import shop
from dbnb.migrations.scaffold import init, render_ini

ROOT = Path(__file__).resolve().parents[2]
INI = ROOT / "alembic.ini"

__all__ = [
    "test_model_definitions_match_ddl",
    "test_single_head_revision",
    "test_up_down_consistency",
    "test_upgrade",
]


# -- pytest-alembic's built-in checks, each on a fresh database ----------------------------------


@pytest.fixture
def alembic_engine(server_url: URL) -> Iterator[Engine]:
    fresh = dbnb.connect(server_url, database="t_pytest_alembic", reset=True)
    yield fresh.engine
    fresh.close()


@pytest.fixture
def alembic_runner(alembic_engine: Engine) -> Iterator[MigrationContext]:
    """pytest-alembic's runner on this repo's Config, built by dbnb (as %db migrate does)."""
    config = PytestAlembicConfig(alembic_config=migrations.load_config(INI))
    with runner(config=config, engine=alembic_engine) as context:
        yield context


# -- helpers --------------------------------------------------------------------------------------


def _tables(db: dbnb.Database) -> set[str]:
    rows = db.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    return {r.tablename for r in rows}


@pytest.fixture
def base(db: dbnb.Database) -> dbnb.Database:
    """The module's database brought back to base (no shop tables, no version row)."""
    if _unknown_stamp(db):
        migrations.stamp(db, "base", config=INI)
    if migrations.current(db, config=INI).revisions:
        migrations.downgrade(db, "base", config=INI)
    return db


def _unknown_stamp(db: dbnb.Database) -> bool:
    if "alembic_version" not in _tables(db):
        return False
    return any(r.version_num not in {"0001", "0002"} for r in
               db.execute("SELECT version_num FROM alembic_version"))


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of this repo's alembic.ini and migrations/ in a project of its own."""
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'copy'\n")
    shutil.copy(INI, tmp_path / "alembic.ini")
    shutil.copytree(ROOT / "migrations", tmp_path / "migrations",
                    ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


# -- upgrade, downgrade, results ------------------------------------------------------------------


def test_upgrade_reports_each_revision_and_check_finds_no_drift(base: dbnb.Database) -> None:
    result = migrations.upgrade(base, config=INI)
    assert result.from_revisions == ()
    assert result.to_revisions == ("0002",)
    assert [s.revision for s in result.steps] == ["0001", "0002"]
    assert "base -> 0002 (2 revisions)" in repr(result)
    assert "<table" in result._repr_html_()
    again = migrations.upgrade(base, config=INI)
    assert not again.changed and again.steps == ()
    report = migrations.check(base, config=INI)
    assert report.ok, repr(report)
    assert report.drifts == ()
    assert "no drift" in repr(report)


def test_history_current_heads(base: dbnb.Database) -> None:
    migrations.upgrade(base, "0001", config=INI)
    history = migrations.history(base, config=INI)
    assert [(r.revision, r.applied, r.is_head) for r in history.revisions] == [
        ("0002", False, True), ("0001", True, False)
    ]
    frame = history.frame
    assert list(frame["revision"]) == ["0002", "0001"]
    assert list(frame["applied"]) == [False, True]
    current = migrations.current(base, config=INI)
    assert current.revisions == ("0001",) and current.heads == ("0002",)
    assert not current.up_to_date
    assert migrations.heads(base, config=INI).heads == ("0002",)
    drift = migrations.check(base, config=INI)
    assert not drift.ok and "run migrate" in drift.summary
    assert {d.name for d in drift.drifts} >= {"category", "ix_products_category"}


def test_downgrade_removes_everything(base: dbnb.Database) -> None:
    migrations.upgrade(base, config=INI)
    back = migrations.downgrade(base, config=INI)
    assert (back.from_revisions, back.to_revisions) == (("0002",), ("0001",))
    migrations.downgrade(base, "base", config=INI)
    assert _tables(base) == {"alembic_version"}
    functions = base.execute("SELECT count(*) AS n FROM pg_proc WHERE proname = 'set_updated_at'")
    assert functions[0].n == 0
    with pytest.raises(dbnb.MigrationError, match="nothing to downgrade"):
        migrations.downgrade(base, config=INI)


def test_second_revision_backfills_categories_from_the_sku(base: dbnb.Database) -> None:
    migrations.upgrade(base, "0001", config=INI)
    base.execute(
        "INSERT INTO products (sku, name, price) VALUES ('KB-9', 'Keyboard', 1), "
        "('MN-9', 'Monitor', 2), ('ZZ-9', 'Mystery', 3)"
    )
    migrations.upgrade(base, config=INI)
    rows = base.execute("SELECT sku, category FROM products ORDER BY sku")
    assert [(r.sku, r.category) for r in rows] == [
        ("KB-9", "input"), ("MN-9", "display"), ("ZZ-9", "other")
    ]


def test_constraint_names_partial_indexes_and_updated_at_trigger(base: dbnb.Database) -> None:
    migrations.upgrade(base, config=INI)
    names = {r.conname for r in base.execute("SELECT conname FROM pg_constraint "
                                             "WHERE connamespace = 'public'::regnamespace")}
    assert {"pk_users", "fk_orders_user_id_users", "ck_products_stock_nonnegative",
            "fk_order_items_order_id_orders"} <= names
    predicates = {
        r.name: r.predicate
        for r in base.execute(
            "SELECT c.relname AS name, pg_get_expr(i.indpred, i.indrelid) AS predicate "
            "FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indisunique"
        )
    }
    assert predicates["uq_users_email"] == "(deleted_at IS NULL)"
    assert predicates["uq_products_sku"] == "(deleted_at IS NULL)"
    shop.seed(base, create_tables=False)
    before = base.execute("SELECT updated_at FROM users WHERE email = 'ana@example.com'")[0]
    base.execute("UPDATE users SET name = 'Ana B.' WHERE email = 'ana@example.com'")
    after = base.execute("SELECT updated_at FROM users WHERE email = 'ana@example.com'")[0]
    assert after.updated_at > before.updated_at
    # An UPDATE that sets updated_at itself is respected.
    base.execute("UPDATE users SET updated_at = '2020-01-01Z' WHERE email = 'ana@example.com'")
    fixed = base.execute("SELECT updated_at FROM users WHERE email = 'ana@example.com'")[0]
    assert fixed.updated_at.year == 2020
    # Two soft-deleted users may share an email; two live ones may not.
    base.execute("UPDATE users SET deleted_at = now() WHERE email = 'ana@example.com'")
    base.execute("INSERT INTO users (email, name) VALUES ('ana@example.com', 'Ana 2')")
    with pytest.raises(dbnb.UniqueViolation):
        base.execute("INSERT INTO users (email, name) VALUES ('ana@example.com', 'Ana 3')")


def test_check_compares_partial_index_predicates(base: dbnb.Database) -> None:
    migrations.upgrade(base, config=INI)
    base.execute("DROP INDEX uq_users_email")
    base.execute("CREATE UNIQUE INDEX uq_users_email ON users (email)")
    report = migrations.check(base, config=INI)
    assert not report.ok
    assert [(d.kind, d.name) for d in report.drifts] == [("modify_index_where", "uq_users_email")]
    assert "database None, models (deleted_at IS NULL)" in report.drifts[0].detail
    base.execute("DROP INDEX uq_users_email")
    base.execute("CREATE UNIQUE INDEX uq_users_email ON users (email) WHERE deleted_at IS NULL")
    assert migrations.check(base, config=INI).ok


def test_pools_are_refreshed_after_a_migration(base: dbnb.Database) -> None:
    pid_before = base.execute("SELECT pg_backend_pid() AS pid")[0].pid
    assert base.execute("SELECT pg_backend_pid() AS pid")[0].pid == pid_before  # pooled
    migrations.upgrade(base, config=INI)
    assert base.execute("SELECT pg_backend_pid() AS pid")[0].pid != pid_before


async def test_runs_inside_a_running_loop_without_touching_logging(base: dbnb.Database) -> None:
    asyncio.get_running_loop()  # as in a notebook cell: env.py must not call asyncio.run
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    alembic_level = logging.getLogger("alembic").level
    result = migrations.upgrade(base, config=INI)
    assert result.to_revisions == ("0002",)
    assert root.handlers == handlers and root.level == level
    assert logging.getLogger("alembic").level == alembic_level


def test_alembic_output_is_captured_not_printed(
    base: dbnb.Database, project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    migrations.upgrade(base, config=project)
    made = migrations.revision(base, "empty one", config=project)
    assert Path(made.path).exists() and made.down_revisions == ("0002",)
    assert made.operations == ()
    out, err = capsys.readouterr()
    assert out == "" and err == ""
    assert migrations.heads(base, config=project).heads == (made.revision,)


# -- safety: locks, failures, unknown revisions ---------------------------------------------------

_UPGRADE = """
import dbnb, sys
from dbnb import migrations
db = dbnb.connect(sys.argv[1])
print(migrations.upgrade(db, config=sys.argv[2]).summary)
"""


def test_two_processes_upgrading_at_once_apply_each_revision_once(base: dbnb.Database) -> None:
    url = base.url.render_as_string(hide_password=False)
    env = {**os.environ, "PYTHONWARNINGS": "error"}
    with base.engine.connect() as holder:
        # Hold the migration lock so both children are queued on it before either can start.
        holder.execute(sa.text("SELECT pg_advisory_lock(x'64626e62'::int)"))
        children = [
            subprocess.Popen([sys.executable, "-c", _UPGRADE, url, str(INI)], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(2)
        ]
        waiting = 0
        for _ in range(600):
            waiting = holder.execute(sa.text(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
            )).scalar_one()
            holder.commit()
            if waiting == 2 or any(c.poll() is not None for c in children):
                break
            holder.execute(sa.text("SELECT pg_sleep(0.05)"))
        assert waiting == 2, [c.communicate() for c in children]
        holder.execute(sa.text("SELECT pg_advisory_unlock(x'64626e62'::int)"))
        holder.commit()
    outputs = [c.communicate(timeout=120) for c in children]
    assert [c.returncode for c in children] == [0, 0], outputs
    summaries = sorted(out.strip() for out, _ in outputs)
    assert summaries == [
        "upgrade: already at 0002, nothing to do",
        "upgrade: base -> 0002 (2 revisions)",
    ]
    assert base.execute("SELECT count(*) AS n FROM alembic_version")[0].n == 1


_FAILING = '''"""half-way failure

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("coupons", sa.Column("code", sa.Text(), primary_key=True))
    op.create_index("ix_coupons_code", "coupons", ["code"])
    op.execute("SELECT 1 / 0")


def downgrade() -> None:
    op.drop_table("coupons")
'''


def test_a_revision_failing_half_way_leaves_the_previous_revision(
    base: dbnb.Database, project: Path
) -> None:
    (project / "migrations" / "versions" / "0003_failing.py").write_text(_FAILING)
    with pytest.raises(dbnb.MigrationError) as caught:
        migrations.upgrade(base, config=project)
    message = str(caught.value)
    assert "division by zero" in message and "database at 0002" in message
    assert "\n" not in message
    assert migrations.current(base, config=project).revisions == ("0002",)
    assert "coupons" not in _tables(base)
    leftovers = base.execute("SELECT count(*) AS n FROM pg_class WHERE relname LIKE '%coupons%'")
    assert leftovers[0].n == 0


def test_an_unknown_stamped_revision_is_a_clear_error_and_runs_no_ddl(
    base: dbnb.Database,
) -> None:
    base.execute("CREATE TABLE IF NOT EXISTS alembic_version (version_num varchar(32) PRIMARY KEY)")
    base.execute("INSERT INTO alembic_version VALUES ('feedface0000')")
    with pytest.raises(dbnb.MigrationError, match="feedface0000, which is not in") as caught:
        migrations.upgrade(base, config=INI)
    assert "nothing was changed" in str(caught.value)
    assert _tables(base) == {"alembic_version"}
    with pytest.raises(dbnb.MigrationError, match="feedface0000"):
        migrations.current(base, config=INI)
    # The advised remedy works: stamp a known revision (the unknown one is purged).
    assert migrations.stamp(base, "base", config=INI).to_revisions == ()
    assert migrations.upgrade(base, config=INI).to_revisions == ("0002",)


# -- configuration --------------------------------------------------------------------------------


def test_config_is_found_upwards_but_not_above_the_project_root(tmp_path: Path) -> None:
    project = tmp_path / "proj"
    (project / "notebooks" / "deep").mkdir(parents=True)
    (project / "pyproject.toml").write_text("")
    (tmp_path / "alembic.ini").write_text("[alembic]\nscript_location = elsewhere\n")
    with pytest.raises(dbnb.MigrationError, match=r"no alembic\.ini"):
        migrations.find_config(project / "notebooks" / "deep")
    (project / "alembic.ini").write_text("[alembic]\nscript_location = migrations\n")
    assert migrations.find_config(project / "notebooks" / "deep") == project / "alembic.ini"
    config = migrations.load_config(project / "notebooks" / ".." / "alembic.ini")
    assert config.get_main_option("script_location") == str(project / "migrations")


def test_load_config_from_the_working_directory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT / "dbnb" / "examples")
    config = migrations.load_config()
    assert Path(str(config.config_file_name)) == INI
    assert config.attributes.get("connection") is None


def test_target_metadata_precedence() -> None:
    config = migrations.load_config(INI)
    assert migrations.target_metadata(config) is shop.metadata
    own = sa.MetaData()
    assert migrations.target_metadata(config, own) is own
    assert migrations.target_metadata(config, "dbnb.orm.models") is dbnb.Base.metadata
    with pytest.raises(dbnb.MigrationError, match="cannot import the models module"):
        migrations.target_metadata(config, "no_such_module_here")


# -- scaffold and autogenerate against notebook models --------------------------------------------


def test_repo_migrations_match_the_packaged_template() -> None:
    template = ROOT / "dbnb" / "migrations" / "templates" / "alembic"
    for name in ("env.py", "script.py.mako"):
        assert (ROOT / "migrations" / name).read_text() == (template / name).read_text(), name
    assert INI.read_text() == render_ini("dbnb.examples.shop")


_NOTEBOOK_MODELS = """
import sys
import dbnb
from sqlalchemy.orm import Mapped, mapped_column
from dbnb import migrations

class Coupon(dbnb.UUIDPrimaryKey, dbnb.Base):   # defined "in the notebook", on dbnb's Base
    __tablename__ = "coupons"
    code: Mapped[str] = mapped_column(unique=True)

# A model some imported library put on the same Base: not the notebook's.
exec("class Other(dbnb.UUIDPrimaryKey, dbnb.Base):\\n    __tablename__ = 'others'",
     {"__name__": "some_library", "dbnb": dbnb})

db = dbnb.connect(sys.argv[1])
config = sys.argv[2]
migrations.upgrade(db, config=config)
made = migrations.revision(db, "add coupons", autogenerate=True, config=config)
print("|".join(made.operations))
print(migrations.upgrade(db, config=config).summary)
print(migrations.check(db, config=config).ok)
"""


@pytest.mark.parametrize("configured", [False, True], ids=["dbnb-init", "models-module"])
def test_autogenerate_against_models_defined_in_the_notebook(
    base: dbnb.Database, tmp_path: Path, project: Path, configured: bool
) -> None:
    """Without dbnb.models: all of dbnb's Base. With it: that module plus the notebook's models."""
    if configured:
        target = project
    else:
        target = tmp_path / "fresh"
        made = init(target)
        assert made.files[0] == "alembic.ini"
        assert (target / "migrations" / "versions").is_dir()
        with pytest.raises(dbnb.MigrationError, match="already exist"):
            init(target)
    url = base.url.render_as_string(hide_password=False)
    env = {**os.environ, "PYTHONWARNINGS": "error"}
    done = subprocess.run(
        [sys.executable, "-c", _NOTEBOOK_MODELS, url, str(target / "alembic.ini")],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )
    assert done.returncode == 0, done.stderr
    operations, summary, ok = done.stdout.strip().splitlines()
    if configured:
        assert operations == "add table coupons"  # neither shop drops nor the library's model
    else:
        assert sorted(operations.split("|")) == ["add table coupons", "add table others"]
    assert "-> " in summary and "(1 revision)" in summary
    assert ok == "True"
    assert "coupons" in _tables(base)
    migrations.downgrade(base, config=target)
    assert "coupons" not in _tables(base)


def test_autogenerate_with_an_explicit_metadata(base: dbnb.Database, project: Path) -> None:
    migrations.upgrade(base, config=project)
    metadata = sa.MetaData()
    for table in shop.metadata.tables.values():
        table.to_metadata(metadata)
    sa.Table("coupons", metadata, sa.Column("code", sa.Text, primary_key=True))
    made = migrations.revision(base, "coupons", autogenerate=True, models=metadata, config=project)
    assert made.operations == ("add table coupons",)
    body = Path(made.path).read_text()
    assert "op.create_table('coupons'" in body or 'op.create_table("coupons"' in body
    assert textwrap.dedent(body).count("drop_table") == 1


def test_the_plain_alembic_command_uses_the_same_env(base: dbnb.Database) -> None:
    url = base.url.render_as_string(hide_password=False)
    env = {**os.environ, "DBNB_URL": url, "PYTHONWARNINGS": "error"}
    alembic = [sys.executable, "-m", "alembic", "-c", str(INI)]
    up = subprocess.run([*alembic, "upgrade", "head"], capture_output=True, text=True, env=env,
                        timeout=120, check=False)
    assert up.returncode == 0, up.stderr
    assert "Running upgrade 0001 -> 0002" in up.stderr  # alembic's own logging, CLI only
    assert migrations.current(base, config=INI).revisions == ("0002",)
    offline = subprocess.run([*alembic, "downgrade", "0002:0001", "--sql"], capture_output=True,
                             text=True, env=env, timeout=120, check=False)
    assert offline.returncode == 0, offline.stderr
    assert "DROP INDEX ix_products_category" in offline.stdout
    assert migrations.current(base, config=INI).revisions == ("0002",)  # --sql ran nothing


async def test_cached_statements_do_not_break_after_a_migration(
    base: dbnb.Database, adb: dbnb.AsyncDatabase
) -> None:
    migrations.upgrade(base, config=INI)
    star = "SELECT * FROM products"
    for _ in range(8):  # past psycopg's prepare threshold: a server-side prepared plan
        base.execute(star)
        await adb.execute(star)  # asyncpg prepares and caches every statement
    migrations.downgrade(base, config=INI)  # drops products.category: SELECT * changes shape
    assert base.execute("SELECT count(*) AS n FROM products")[0].n == 0
    base.execute(star)
    await adb.execute(star)
    async with adb.session() as s:
        columns = list((await s.execute(sa.text(star))).keys())
    assert "category" not in columns


def test_messages_name_python_functions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "pyproject.toml").write_text("")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(dbnb.MigrationError) as info:
        migrations.load_config()
    assert "run `dbnb.migrations.init()` in the project root" in str(info.value)
    assert "config='path/to/alembic.ini'" in str(info.value)
