"""What API builders expect: one-query pages, serialisable pages, schemas, upsert_many,
case-insensitive lookups, signed keyset cursors over mixed directions; both shells."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

import msgspec
import pydantic
import pytest
from sqlalchemy import event

import dbnb
from dbnb.examples.shop import Product, User


async def run(result: Any) -> Any:
    return await result if hasattr(result, "__await__") else result


@contextmanager
def statements(db: dbnb.Database) -> Iterator[list[str]]:
    """Record the SQL both engines send inside the block."""
    sent: list[str] = []

    def record(*args: Any) -> None:
        sent.append(args[2])

    engines = [db.engine, db.async_engine.sync_engine]
    for engine in engines:
        event.listen(engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        for engine in engines:
            event.remove(engine, "before_cursor_execute", record)


def queries(sent: list[str]) -> list[str]:
    return [s for s in sent if s.lstrip().upper().startswith(("SELECT", "INSERT", "WITH"))]


async def test_paginate_is_one_query_and_past_the_end_still_knows_the_total(
    shell: Any, seeded: dbnb.Database
) -> None:
    users = shell(User, seeded)
    total = await run(users.count())
    with statements(seeded) as sent:
        page = await run(users.paginate(page=2, size=2, order_by="email"))
    assert len(queries(sent)) == 1 and "count(*) OVER ()" in queries(sent)[0]
    assert page.total == total and len(page.items) == 2 and page.pages == -(-total // 2)
    with statements(seeded) as sent:
        beyond = await run(users.paginate(page=999, size=3))
    assert beyond.items == [] and beyond.total == total and len(queries(sent)) == 2
    nobody = await run(users.paginate(page=1, size=3, email="nobody@example.com"))
    assert (nobody.total, nobody.pages, nobody.items) == (0, 1, [])


async def test_pages_serialise_and_validate_into_schemas(shell: Any, seeded: dbnb.Database) -> None:
    class UserOut(pydantic.BaseModel):
        id: uuid.UUID
        email: str
        age: int | None

    class ProductOut(msgspec.Struct):
        sku: str
        price: Decimal

    page = await run(shell(User, seeded).paginate(size=2, order_by="email"))
    as_json = json.loads(json.dumps(page.to_dict(mode="json")))
    assert set(as_json) == {"items", "total", "page", "size", "pages", "has_next", "has_previous"}
    first = as_json["items"][0]
    assert first["id"] == str(page.items[0].id) and first["created_at"].startswith("20")
    assert page.to_dict()["items"][0]["id"] == page.items[0].id  # python mode keeps types
    typed = page.to_schema(UserOut)
    assert isinstance(typed.items[0], UserOut) and typed.total == page.total
    assert typed.to_dict(mode="json")["items"][0] == {
        "id": str(page.items[0].id), "email": page.items[0].email, "age": page.items[0].age,
    }
    assert "<table" in typed._repr_html_() and "email" in typed._repr_html_()
    window = await run(shell(Product, seeded).keyset(order_by="sku", size=2))
    structs = window.to_schema(ProductOut)
    assert isinstance(structs.items[0], ProductOut) and structs.cursor == window.cursor
    assert structs.to_dict(mode="json")["items"][0]["price"] == str(window.items[0].price)
    assert page.items[0].to_schema(UserOut).email == page.items[0].email
    with pytest.raises(TypeError, match=r"pip install 'dbnb\[pydantic\]'"):
        page.items[0].to_schema(dict)


async def test_upsert_many_inserts_updates_and_keeps_the_order(
    shell: Any, seeded: dbnb.Database
) -> None:
    products = shell(Product, seeded)
    existing = await run(products.get_by(sku="KB-001"))
    rows = [
        {"sku": "UP-NEW-1", "name": "New one", "price": Decimal("1.00"), "category": "toys"},
        {"sku": "KB-001", "name": "Renamed", "price": existing.price, "category": "toys"},
        {"sku": "UP-NEW-2", "name": "New two", "price": Decimal("2.00"), "category": "toys"},
    ]
    done = await run(products.upsert_many(rows, on=["sku"]))
    assert [p.sku for p in done] == ["UP-NEW-1", "KB-001", "UP-NEW-2"]
    assert done[1].id == existing.id and done[1].name == "Renamed"
    assert done[1].updated_at > existing.updated_at
    again = await run(products.upsert_many(rows[:1], on=["sku"], update=[]))
    assert again[0].id == done[0].id and again[0].name == "New one"
    assert await run(products.upsert_many([], on=["sku"])) == []
    with pytest.raises(dbnb.FilterError, match="rows 1 and 2 have the same key"):
        await run(products.upsert_many([rows[0], rows[0]], on=["sku"]))
    with pytest.raises(dbnb.FilterError, match="row 2 differs from row 1 in category"):
        await run(products.upsert_many(
            [rows[0], {k: v for k, v in rows[2].items() if k != "category"}], on=["sku"]
        ))


async def test_case_insensitive_lookups(shell: Any, seeded: dbnb.Database) -> None:
    users = shell(User, seeded)
    everyone = await run(users.list())
    some = everyone[0].email
    part = some.split("@")[0][1:4].upper()
    found = await run(users.list(email__icontains=part))
    assert some in [u.email for u in found]
    assert all(part.lower() in u.email.lower() for u in found)
    starts = await run(users.list(email__istartswith=some[:3].upper()))
    assert {u.email for u in starts} == {u.email for u in everyone if u.email.startswith(some[:3])}
    ends = await run(users.list(email__iendswith="@EXAMPLE.COM"))
    assert len(ends) == sum(u.email.endswith("@example.com") for u in everyone)
    assert await run(users.list(name__icontains="%")) == []  # a wildcard is a character


async def test_keyset_over_mixed_directions_with_signed_cursors(
    shell: Any, seeded: dbnb.Database
) -> None:
    products = shell(Product, seeded)
    order = ["-category", "price", "sku"]
    every = await run(products.list(order_by=order))
    seen: list[str] = []
    window = await run(products.keyset(order_by=order, size=3))
    while True:
        seen += [p.sku for p in window.items]
        if not window.has_more:
            assert window.cursor is None
            break
        assert isinstance(window.cursor, str) and window.keys == ("-category", "price", "sku",
                                                                  "id")
        window = await run(products.keyset(order_by=order, after=window.cursor, size=3))
    assert seen == [p.sku for p in every]
    first = await run(products.keyset(order_by=order, size=3))
    body, _, mac = first.cursor.partition(".")
    forged = body[:-2] + ("A" if body[-2] != "A" else "B") + body[-1] + "." + mac
    for bad in (forged, first.cursor + "x", "not a cursor"):
        with pytest.raises(dbnb.PaginationError, match="not made by this API"):
            await run(products.keyset(order_by=order, after=bad))
    with pytest.raises(dbnb.PaginationError, match="another order_by"):
        await run(products.keyset(order_by=["category", "price"], after=first.cursor))

    class Keyed(shell):  # type: ignore[misc,valid-type]
        cursor_key = b"the application's own secret"

    keyed = Keyed(Product, seeded)
    mine = await run(keyed.keyset(order_by=order, size=3))
    assert (await run(Keyed(Product, seeded).keyset(order_by=order, after=mine.cursor))).items
    with pytest.raises(dbnb.PaginationError):  # signed with another key
        await run(products.keyset(order_by=order, after=mine.cursor))
