"""%db and %%db through a real IPython shell (run_line_magic / run_cell_magic)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from sqlalchemy import String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

import dbnb
from dbnb import migrations
from dbnb.examples import shop
from dbnb.notebook.commands import COMMANDS
from dbnb.notebook.magic import DbMagics

ROOT = Path(__file__).resolve().parents[2]
URL_VARIABLE = "DBNB_MAGIC_TEST_URL"
EVIL = "'; DROP TABLE users; --"


@pytest.fixture(scope="module")
def ip(db: dbnb.Database, ipython: InteractiveShell) -> Iterator[InteractiveShell]:
    """The test IPython shell with dbnb loaded and the test server's URL in an env variable."""
    shell = ipython
    with pytest.MonkeyPatch.context() as mp:
        # The notebook only ever names the variable: no URL, no password in the cell source.
        mp.setenv(URL_VARIABLE, db.url.render_as_string(hide_password=False))
        mp.chdir(ROOT / "dbnb")  # alembic.ini is found one level up, as from notebooks/
        yield shell


def line(ip: InteractiveShell, text: str) -> Any:
    return ip.run_line_magic("db", text)


def cell(ip: InteractiveShell, options: str, sql: str) -> Any:
    return ip.run_cell_magic("db", options, sql)


def usage_error(ip: InteractiveShell, text: str, cell_body: str | None = None) -> str:
    """Run a magic that must fail; return its message after checking it is one line."""
    with pytest.raises(UsageError) as caught:
        if cell_body is None:
            line(ip, text)
        else:
            cell(ip, text, cell_body)
    message = str(caught.value)
    assert "\n" not in message and message
    return message


@pytest.fixture(scope="module")
def connected(ip: InteractiveShell, db: dbnb.Database) -> InteractiveShell:
    result = line(ip, f"connect env:{URL_VARIABLE}")
    assert result is db  # connect() is idempotent: the same Database, one pool
    line(ip, "migrate")
    shop.seed(db, create_tables=False)
    return ip


def magics(ip: InteractiveShell) -> DbMagics:
    found = ip.magics_manager.registry["DbMagics"]
    assert isinstance(found, DbMagics)
    return found


# -- connect --------------------------------------------------------------------------------------


def test_the_first_use_connects_and_says_where(
    ip: InteractiveShell, db: dbnb.Database, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DATABASE_URL", db.url.render_as_string(hide_password=False))
    fresh = DbMagics(ip)
    capsys.readouterr()
    assert fresh.db("SELECT 1 AS one")["one"].tolist() == [1]  # a one-liner connects first
    assert fresh.database is db
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"connected to {db.url.render_as_string()}" in err
    assert "(DATABASE_URL)" in err
    other = DbMagics(ip)
    assert other.db("tables") is not None and other.database is db  # a command connects too


def test_connect_from_an_environment_variable(ip: InteractiveShell, db: dbnb.Database) -> None:
    shown = line(ip, f"connect env:{URL_VARIABLE}")
    assert shown is db and magics(ip).database is db
    assert "password" not in repr(shown).lower()


def test_connect_refuses_a_url_with_a_password(ip: InteractiveShell) -> None:
    before = magics(ip).database
    for url in ("postgresql://app:s3cret@db.example.com/shop",
                "postgresql://app@db.example.com/shop?password=s3cret"):
        message = usage_error(ip, f"connect {url}")
        assert "s3cret" not in message
        assert "env:NAME" in message and "saved with the notebook" in message
    assert magics(ip).database is before


def test_connect_with_a_missing_variable(ip: InteractiveShell) -> None:
    assert "NOT_SET_ANYWHERE is not set" in usage_error(ip, "connect env:NOT_SET_ANYWHERE")


def test_connect_database_reset(ip: InteractiveShell, db: dbnb.Database) -> None:
    fresh = line(ip, f"connect env:{URL_VARIABLE} --database t_test_magic_other --reset")
    assert isinstance(fresh, dbnb.Database) and fresh.database == "t_test_magic_other"
    assert line(ip, "tables").names == ()
    assert line(ip, f"connect env:{URL_VARIABLE}") is db


# -- every command --------------------------------------------------------------------------------


def test_migration_commands(connected: InteractiveShell) -> None:
    ip = connected
    assert line(ip, "current").revisions == ("0002",)
    assert line(ip, "check").ok
    back = line(ip, "downgrade -1")
    assert (back.from_revisions, back.to_revisions) == (("0002",), ("0001",))
    assert [r.applied for r in line(ip, "history").revisions] == [False, True]
    assert line(ip, "heads").heads == ("0002",)
    again = line(ip, "upgrade")  # alias of migrate
    assert again.to_revisions == ("0002",) and [s.revision for s in again.steps] == ["0002"]
    assert line(ip, "stamp head").to_revisions == ("0002",)
    assert not line(ip, "migrate").changed


def test_revision_against_models_defined_in_the_notebook(
    connected: InteractiveShell, tmp_path: Path
) -> None:
    ip = connected
    (tmp_path / "pyproject.toml").write_text("")
    shutil.copy(ROOT / "alembic.ini", tmp_path / "alembic.ini")
    shutil.copytree(ROOT / "migrations", tmp_path / "migrations",
                    ignore=shutil.ignore_patterns("__pycache__"))

    class NotebookBase(shop.Base, DeclarativeBase):
        registry = dbnb.orm.models.new_registry()
        metadata = registry.metadata

    for table in shop.metadata.tables.values():
        table.to_metadata(NotebookBase.metadata)

    class Coupon(dbnb.UUIDPrimaryKey, NotebookBase):
        __tablename__ = "coupons"
        code: Mapped[str] = mapped_column(String(20))

    ip.user_ns["NotebookBase"] = NotebookBase
    made = line(ip, f'revision -m "add coupons" --autogenerate --models NotebookBase '
                    f"--config {tmp_path}")
    assert made.operations == ("add table coupons",)
    assert Path(made.path).parent == tmp_path / "migrations" / "versions"
    assert "add coupons" in Path(made.path).read_text()
    assert "not a MetaData" not in repr(made)
    message = usage_error(ip, "revision -m x --autogenerate --models ip_missing_base.whatever")
    assert "cannot import the models module" in message


def test_catalog_and_health_commands(connected: InteractiveShell) -> None:
    ip = connected
    assert {"users", "products", "orders", "order_items"} <= set(line(ip, "tables").names)
    users = line(ip, "describe users")
    assert users.frame["name"].tolist()[:2] == ["id", "email"]
    assert "WHERE (deleted_at IS NULL)" in users.definitions("index")["uq_users_email"]
    assert "trg_users_updated_at" in users.definitions("trigger")
    assert "did you mean users" in usage_error(ip, "describe userz")
    assert line(ip, "health").ok
    assert line(ip, "pool")["sync"].started
    assert line(ip, "info").database == "t_test_magic"


def test_help_lists_every_command_from_the_docstrings(connected: InteractiveShell) -> None:
    ip = connected
    listing = line(ip, "help")
    assert [row[0] for row in listing.rows] == list(COMMANDS)
    for name, usage, summary in listing.rows:
        assert usage.startswith(f"%db {name}")
        assert summary == COMMANDS[name].summary and summary
    assert line(ip, "") .rows == listing.rows
    notes = repr(listing)
    assert "Several statements run in one transaction" in notes and "DATABASE_URL" in notes
    assert "%db init --models Base" in notes and "--sql" in notes
    detail = repr(line(ip, "help downgrade"))
    assert "usage: %db downgrade" in detail and "one step back" in detail
    assert repr(line(ip, "migrate --help")).startswith("usage: %db migrate")


def test_unknown_commands_and_bad_arguments_are_one_line(connected: InteractiveShell) -> None:
    ip = connected
    assert "did you mean migrate" in usage_error(ip, "migrat")
    assert "unrecognized arguments: --bogus" in usage_error(ip, "downgrade --bogus")
    assert "-m/--message" in usage_error(ip, "revision")
    assert "cannot read the arguments" in usage_error(ip, 'revision -m "unterminated')
    assert "MigrationError" in usage_error(ip, "migrate no_such_revision")


def test_line_magic_does_not_expand_variables(connected: InteractiveShell) -> None:
    ip = connected
    ip.user_ns["x"] = "users"
    assert "'{x}'" in usage_error(ip, "describe {x}")
    assert "'$x'" in usage_error(ip, "describe $x")


def test_init_writes_a_project(connected: InteractiveShell, tmp_path: Path) -> None:
    made = line(connected, f"init {tmp_path} --models myapp.models")
    assert (tmp_path / "migrations" / "env.py").exists()
    assert "dbnb.models = myapp.models" in (tmp_path / "alembic.ini").read_text()
    assert made.models == "myapp.models"


# -- %%db -----------------------------------------------------------------------------------------


def test_cell_binds_names_from_the_notebook(connected: InteractiveShell) -> None:
    ip = connected
    ip.user_ns["threshold"] = 10
    frame = cell(ip, "-o low_stock",
                 "SELECT sku, stock FROM products WHERE stock < :threshold ORDER BY sku")
    assert isinstance(frame, pd.DataFrame)
    assert frame["sku"].tolist() == ["DK-006", "MN-003", "WC-008"]
    assert ip.user_ns["low_stock"] is frame
    ip.user_ns["threshold"] = 1
    assert cell(ip, "", "SELECT sku FROM products WHERE stock < :threshold")["sku"].tolist() == [
        "DK-006"
    ]


def test_cell_frames_keep_the_database_types(connected: InteractiveShell) -> None:
    frame = cell(
        connected, "", "SELECT sku, stock, price, created_at FROM products ORDER BY sku LIMIT 3"
    )
    assert str(frame["stock"].dtype) == "Int32"
    assert str(frame["sku"].dtype).startswith("string")
    assert str(frame["created_at"].dtype) == "datetime64[us, UTC]"
    assert str(frame["price"].dtype) == "float64"


def test_cell_returning_dml_gives_a_frame_and_sandbox_undoes_it(
    connected: InteractiveShell, db: dbnb.Database
) -> None:
    before = db.execute("SELECT count(*) AS n FROM users")[0].n
    frame = cell(connected, "--sandbox", "DELETE FROM order_items RETURNING id")
    assert len(frame) == len(shop.SEED_ORDER_ITEMS)
    assert db.execute("SELECT count(*) AS n FROM order_items")[0].n == len(shop.SEED_ORDER_ITEMS)
    assert db.execute("SELECT count(*) AS n FROM users")[0].n == before


def test_cell_values_are_parameters_never_sql(
    connected: InteractiveShell, db: dbnb.Database, capsys: pytest.CaptureFixture[str]
) -> None:
    ip = connected
    ip.user_ns["evil"] = EVIL
    capsys.readouterr()
    cell(ip, "", "UPDATE users SET name = :evil WHERE email = 'ben@example.com'")
    assert "1 row affected" in capsys.readouterr().out
    found = cell(ip, "", "SELECT email, name FROM users WHERE name = :evil")
    assert found.to_dict("records") == [{"email": "ben@example.com", "name": EVIL}]
    assert db.execute("SELECT count(*) AS n FROM users")[0].n == len(shop.SEED_USERS)


def test_cell_does_not_expand_braces_or_dollars(connected: InteractiveShell) -> None:
    ip = connected
    ip.user_ns["x"] = "expanded"
    frame = cell(ip, "", "SELECT '{x}' AS braces, '$x' AS dollar, 2::int AS cast_kept")
    assert frame.to_dict("records") == [{"braces": "{x}", "dollar": "$x", "cast_kept": 2}]


def test_cell_errors_are_one_line_plus_the_servers_diagnostics(
    connected: InteractiveShell,
) -> None:
    ip = connected
    missing = usage_error(ip, "", "SELECT :not_defined_anywhere")
    assert ":not_defined_anywhere is not defined in the notebook" in missing
    assert "unexpected '--nope'" in usage_error(ip, "--nope", "SELECT 1")
    assert "no SQL" in usage_error(ip, "", "   ")
    assert "only comments" in usage_error(ip, "", "-- nothing here;")
    with pytest.raises(UsageError) as syntax:
        cell(ip, "", "SELECT 1;\nSELEC 2")
    assert str(syntax.value).splitlines() == [
        'QueryError: syntax error at or near "SELEC"', "LINE 2: SELEC 2", "        ^"
    ]
    with pytest.raises(UsageError) as unique:
        cell(ip, "", "INSERT INTO users (email, name) VALUES ('ana@example.com', 'Twin')")
    first, detail = str(unique.value).splitlines()
    assert first.startswith("UniqueViolation: duplicate key value violates unique constraint")
    assert detail == "DETAIL:  Key (email)=(ana@example.com) already exists."


def test_functions_and_any_name_as_parameters(connected: InteractiveShell) -> None:
    ip = connected
    ip.user_ns["fn"] = print
    assert ":fn is a function, not a value" in usage_error(ip, "", "SELECT :fn")
    ip.user_ns["self"] = 7
    ip.user_ns["user"] = "ana@example.com"
    frame = cell(ip, "", "SELECT :self AS s, email FROM users WHERE email = :user")
    assert frame.to_dict("records") == [{"s": 7, "email": "ana@example.com"}]


def test_ordinary_sql_in_a_cell(connected: InteractiveShell) -> None:
    ip = connected
    ip.user_ns["min_stock"] = 20
    frame = cell(ip, "", """
        -- products with enough stock; ordinary SQL
        SELECT sku, '{"a":1}'::jsonb AS j, ':min_stock' AS literal
        FROM products
        WHERE stock >= :min_stock   -- bound from the notebook
        ORDER BY sku;
    """)
    assert frame["literal"].unique().tolist() == [":min_stock"]
    assert frame["j"].iloc[0] == {"a": 1} and len(frame) > 0


def test_a_script_cell_reports_each_statement(
    connected: InteractiveShell, db: dbnb.Database, capsys: pytest.CaptureFixture[str]
) -> None:
    ip = connected
    ip.user_ns["sku"] = "KB-001"
    before = db.execute("SELECT stock FROM products WHERE sku = 'KB-001'")[0].stock
    capsys.readouterr()
    frame = cell(ip, "--sandbox", """
        UPDATE products SET stock = stock - 1 WHERE sku = :sku;
        CREATE TEMP TABLE audit (sku text);
        INSERT INTO audit(sku) VALUES (:sku);
        UPDATE products SET stock = stock + 0 WHERE sku = :sku RETURNING sku, stock;
    """)
    out = capsys.readouterr().out.splitlines()
    assert out == [
        "1. UPDATE products SET stock = stock - 1 WHERE sku = :sku: 1 row affected",
        "2. CREATE TEMP TABLE audit (sku text): done",
        "3. INSERT INTO audit(sku) VALUES (:sku): 1 row affected",
        "4. UPDATE products SET stock = stock + 0 WHERE sku = :sku ...: 1 row returned",
        "(rolled back: --sandbox)",
    ]
    assert frame["stock"].tolist() == [before - 1] and str(frame["stock"].dtype) == "Int32"
    assert db.execute("SELECT stock FROM products WHERE sku = 'KB-001'")[0].stock == before


def test_one_liners_and_files(
    connected: InteractiveShell, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ip = connected
    assert line(ip, "SELECT count(*) AS n FROM users")["n"].tolist() == [len(shop.SEED_USERS)]
    assert line(ip, "select 1 AS one;  -- lower case, trailing comment")["one"].tolist() == [1]
    assert list(line(ip, "SHOW TimeZone").columns) == ["TimeZone"]
    script = tmp_path / "report.sql"
    script.write_text("-- from a file\nSELECT sku FROM products ORDER BY sku LIMIT 2;\n")
    assert len(line(ip, f"-f {script}")) == 2
    assert len(cell(ip, f"-f {script} -o two", "-- the file's rows")) == 2
    assert len(ip.user_ns["two"]) == 2
    assert "leave SQL out of the cell" in usage_error(ip, f"-f {script}", "SELECT 1")
    assert "cannot read" in usage_error(ip, f"-f {tmp_path / 'missing.sql'}")


def test_cell_sandbox_rolls_back(connected: InteractiveShell, db: dbnb.Database) -> None:
    ip = connected
    cell(ip, "--sandbox", "DELETE FROM order_items")
    assert db.execute("SELECT count(*) AS n FROM order_items")[0].n == len(shop.SEED_ORDER_ITEMS)


def test_line_sandbox_spans_cells_and_rolls_everything_back(
    connected: InteractiveShell, db: dbnb.Database
) -> None:
    ip = connected
    users_before = db.execute("SELECT count(*) AS n FROM users")[0].n
    started = line(ip, "sandbox")
    assert started.active and "started" in repr(started)
    assert "already open" in repr(line(ip, "sandbox"))
    cell(ip, "", "DELETE FROM order_items")
    dbnb.Repository(shop.User, db).create(email="sandboxed@example.com", name="Sandy")
    assert db.execute("SELECT count(*) AS n FROM order_items")[0].n == 0  # seen inside
    assert db.execute("SELECT count(*) AS n FROM users")[0].n == users_before + 1
    with db.engine.connect() as outside:  # another connection sees nothing committed
        n = outside.exec_driver_sql("SELECT count(*) FROM order_items").scalar_one()
        assert n == len(shop.SEED_ORDER_ITEMS)
    ended = line(ip, "sandbox --end")
    assert not ended.active and "rolled back" in repr(ended)
    assert db.execute("SELECT count(*) AS n FROM order_items")[0].n == len(shop.SEED_ORDER_ITEMS)
    assert db.execute("SELECT count(*) AS n FROM users")[0].n == users_before
    assert "no sandbox" in repr(line(ip, "sandbox --end"))


def test_state_lives_on_the_magics_instance(connected: InteractiveShell) -> None:
    import dbnb.notebook.magic as module

    assert isinstance(magics(connected).database, dbnb.Database)
    assert not any(isinstance(v, dbnb.Database) for v in vars(module).values())
    assert migrations.current(magics(connected).database).up_to_date


def test_every_result_renders_as_html_and_text(connected: InteractiveShell, tmp_path: Path) -> None:
    ip = connected
    results = [line(ip, command) for command in (
        "current", "history", "heads", "check", "migrate", "tables", "describe users", "health",
        "pool", "info", "help", "help check", f"init {tmp_path}",
    )]
    for result in results:
        html = result._repr_html_()
        assert "dbnb-report" in html or "<pre" in html, type(result)
        assert repr(result) and "object at 0x" not in repr(result)


def test_messages_name_magic_commands_and_options(
    connected: InteractiveShell, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "pyproject.toml").write_text("")
    monkeypatch.chdir(tmp_path)
    message = usage_error(connected, "current")
    assert "run `%db init` in the project root" in message
    assert "--config path/to/alembic.ini" in message and "config=" not in message
