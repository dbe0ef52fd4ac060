"""The first hour in a notebook, as a new user would spend it: an empty project folder with its
own models.py, then init, autogenerate, migrate, check, ordinary SQL cells (comments, ``;``,
scripts, CTEs, JSON literals) and the errors along the way, executed by nbclient on a real
kernel, its outputs asserted (compact errors included)."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Any

import nbformat
import pytest
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient

import dbnb

ANSI = re.compile(r"\x1b\[[0-9;]*m")

MODELS = '''
from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Customer(Base):
    __tablename__ = "customers"
    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(200), unique=True)
    name: Mapped[str]
    age: Mapped[int | None]


class Product(Base):
    __tablename__ = "products"
    sku: Mapped[str] = mapped_column(String(20), primary_key=True)
    stock: Mapped[int]


class Audit(Base):
    __tablename__ = "audit"
    id: Mapped[int] = mapped_column(primary_key=True)
    sku: Mapped[str] = mapped_column(ForeignKey("products.sku"))
'''

CELLS: list[tuple[str, str]] = [
    ("load", "%load_ext dbnb"),
    ("init", "%db init --models models"),
    ("revision", '%db revision -m "first tables" --autogenerate'),
    ("migrate", "%db migrate"),
    ("check", "%db check"),
    ("again", '%db revision -m "nothing new" --autogenerate'),
    ("seed", """%%db
INSERT INTO customers (id, email, name, age) VALUES
  (1, 'ana@example.com', 'Ana', 31), (2, 'ben@example.com', 'Ben', 24),
  (3, 'cy@example.com', 'Cy', NULL);   -- three customers
INSERT INTO products VALUES ('KB-1', 5), ('MS-2', 0);"""),
    ("min_age", "min_age = 30"),
    ("query", """%%db
-- ordinary SQL: comments, casts, a JSON literal, a trailing semicolon
SELECT name, age, '{"a":1}'::jsonb AS extra
FROM customers
WHERE age >= :min_age;"""),
    ("count", "%db SELECT count(*) AS n FROM customers"),
    ("sku", "sku = 'KB-1'"),
    ("script", """%%db
UPDATE products SET stock = stock - 1 WHERE sku = :sku;
INSERT INTO audit(sku) VALUES (:sku);
SELECT * FROM products WHERE sku = :sku"""),
    ("cte", """%%db
WITH sold AS (UPDATE products SET stock = stock - 1 WHERE stock > 0 RETURNING sku)
SELECT count(*) AS sold FROM sold;"""),
    ("typo", "%%db\nSELECT agee FROM customers"),
    ("repo", "import dbnb\nimport models\n\ndb = dbnb.connect()  # the Database %db connected to\n"
             "customers = dbnb.Repository(models.Customer, db)"),
    ("duplicate", 'customers.create(id=9, email="ana@example.com", name="Ana again")'),
    ("sql", "%db downgrade --sql"),
    ("show", "%db show head"),
]
RAISES = {"typo", "duplicate"}


def _text(output: Any) -> str:
    if output.output_type == "stream":
        return str(output.text)
    if output.output_type == "error":
        return ANSI.sub("", "\n".join(output.traceback))
    data = output.get("data", {})
    return str(data.get("text/plain", ""))


@pytest.fixture(scope="module")
def outputs(db: dbnb.Database, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    project = tmp_path_factory.mktemp("first-hour")
    (project / "pyproject.toml").write_text("[project]\nname = 'shop'\n")
    (project / "models.py").write_text(MODELS)
    cells = []
    for name, source in CELLS:
        cell = nbformat.v4.new_code_cell(source)
        cell.metadata["name"] = name
        if name in RAISES:
            cell.metadata["tags"] = ["raises-exception"]
        cells.append(cell)
    nb = nbformat.v4.new_notebook(cells=cells)
    env = {**os.environ, "DATABASE_URL": db.url.render_as_string(hide_password=False)}
    env.pop("DBNB_URL", None)
    with tempfile.TemporaryDirectory(prefix="dbnb-kernel-") as sockets:
        km = AsyncKernelManager(kernel_name="python3", transport="ipc", ip=str(Path(sockets, "k")))
        client = NotebookClient(nb, km=km, timeout=180,
                                resources={"metadata": {"path": str(project)}})
        client.execute(cleanup_kc=True, env=env)
    found = {c.metadata["name"]: "".join(_text(o) for o in c.outputs)
             for c in nb.cells if "name" in c.metadata}
    found["_project"] = str(project)
    (project / "outputs.txt").write_text(
        "\n".join(f"--- {k}\n{v}" for k, v in found.items()), encoding="utf-8"
    )
    return found


def test_init_autogenerate_migrate_check(outputs: dict[str, str], db: dbnb.Database) -> None:
    assert re.search(r"models +models\n", outputs["init"])
    assert '`%db revision -m "first tables" --autogenerate`, then `%db migrate`' in outputs["init"]
    assert "dbnb.models = models" in (Path(outputs["_project"]) / "alembic.ini").read_text()
    assert "connected to" in outputs["revision"] and "(DATABASE_URL)" in outputs["revision"]
    for table in ("audit", "customers", "products"):
        assert f"add table {table}" in outputs["revision"]
    assert "(1 revision)" in outputs["migrate"]
    assert outputs["check"].startswith("no drift")
    assert "none written" in outputs["again"] and "--empty" in outputs["again"]


def test_sql_cells(outputs: dict[str, str]) -> None:
    assert outputs["seed"].splitlines() == [
        "1. INSERT INTO customers (id, email, name, age) VALUES (1, ...: 3 rows affected",
        "2. INSERT INTO products VALUES ('KB-1', 5), ('MS-2', 0): 2 rows affected",
    ]
    assert "Ana" in outputs["query"] and "Ben" not in outputs["query"]
    assert "{'a': 1}" in outputs["query"]
    assert re.search(r"n\s*\n0\s+3", outputs["count"])
    lines = outputs["script"].splitlines()
    assert lines[:3] == [
        "1. UPDATE products SET stock = stock - 1 WHERE sku = :sku: 1 row affected",
        "2. INSERT INTO audit(sku) VALUES (:sku): 1 row affected",
        "3. SELECT * FROM products WHERE sku = :sku: 1 row returned",
    ]
    assert re.search(r"KB-1\s+4", outputs["script"])
    assert re.search(r"sold\s*\n0\s+1", outputs["cte"])


def test_errors_are_compact_and_helpful(outputs: dict[str, str]) -> None:
    typo = outputs["typo"]
    assert "UsageError: QueryError: column \"agee\" does not exist" in typo
    assert "LINE 1: SELECT agee FROM customers" in typo
    assert 'HINT:  Perhaps you meant to reference the column "customers.age".' in typo
    duplicate = outputs["duplicate"].strip().splitlines()
    assert len(duplicate) <= 15, "\n".join(duplicate)
    text = "\n".join(duplicate)
    assert "UniqueViolation" in duplicate[1]
    assert '----> 1 customers.create(id=9, email="ana@example.com", name="Ana again")' in text
    assert 'unique constraint "customers_email_key"' in text
    assert "DETAIL:  Key (email)=(ana@example.com) already exists." in text
    assert "sqlalchemy" not in text and "psycopg" not in text


def test_revision_graph_and_sql(outputs: dict[str, str]) -> None:
    assert "DROP TABLE audit" in outputs["sql"] and "DROP TABLE customers" in outputs["sql"]
    assert "first tables" in outputs["show"] and "none (a head)" in outputs["show"]
