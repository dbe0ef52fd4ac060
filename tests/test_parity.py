"""AsyncRepository mirrors Repository: same public names, same parameters, awaitable I/O."""

from __future__ import annotations

import inspect
from typing import Any

from dbnb import AsyncRepository, Repository

# Builders that return another repository view; they do no I/O, so they are not coroutines.
NO_IO = {"with_deleted", "only_deleted"}
# The methods issue 3 requires; later issues add more (frames), which parity covers generically.
REQUIRED = {
    "get", "get_or_raise", "get_by", "get_by_or_raise", "get_many", "list", "paginate",
    "keyset", "count", "exists", "create", "create_many", "get_or_create", "update",
    "update_many", "upsert", "delete", "delete_many", "hard_delete", "restore",
    "with_deleted", "only_deleted", "execute",
}  # fmt: skip


def public_methods(cls: type) -> dict[str, Any]:
    return {
        name: member
        for name, member in inspect.getmembers(cls, callable)
        if not name.startswith("_")
    }


def parameters(function: Any) -> list[tuple[str, Any, Any]]:
    signature = inspect.signature(function)
    return [(p.name, p.kind, p.default) for p in signature.parameters.values()]


def test_both_shells_have_the_same_public_methods() -> None:
    sync, asyn = public_methods(Repository), public_methods(AsyncRepository)
    assert set(sync) == set(asyn)
    assert set(sync) >= REQUIRED


def test_parameters_match_name_for_name() -> None:
    asyn = public_methods(AsyncRepository)
    for name, method in public_methods(Repository).items():
        assert parameters(method) == parameters(asyn[name]), name


def test_async_shell_awaits_every_io_method_and_sync_shell_none() -> None:
    asyn = public_methods(AsyncRepository)
    for name, method in public_methods(Repository).items():
        assert not inspect.iscoroutinefunction(method), name
        assert not inspect.isasyncgenfunction(method), name
        awaitable = inspect.iscoroutinefunction(asyn[name]) or inspect.isasyncgenfunction(
            asyn[name]
        )
        assert awaitable is (name not in NO_IO), name


def test_docstrings_everywhere() -> None:
    for cls in (Repository, AsyncRepository):
        for name, method in public_methods(cls).items():
            assert inspect.getdoc(method), f"{cls.__name__}.{name}"


# -- Database / AsyncDatabase ---------------------------------------------------------------------

# Only the sync Database has these: the async engine and session it lends to db.asyncio, the
# view itself, and configuration. Everything else must be mirrored on AsyncDatabase.
DATABASE_ONLY = {"async_session", "get_async_session", "session_factory"}
ASYNC_DATABASE_ONLY = {"sync"}
# Scope factories (usable with `async with`) and counter snapshots: no I/O, so no coroutine.
DATABASE_NO_IO = {"transaction", "sandbox", "pool_status", "use"}


def _awaitable(function: Any) -> bool:
    inner = getattr(function, "__wrapped__", function)  # through @asynccontextmanager
    return inspect.iscoroutinefunction(function) or inspect.isasyncgenfunction(inner)


def test_async_database_mirrors_database() -> None:
    from dbnb import AsyncDatabase, Database

    sync, asyn = public_methods(Database), public_methods(AsyncDatabase)
    assert set(sync) - DATABASE_ONLY == set(asyn) - ASYNC_DATABASE_ONLY
    for name in set(asyn) - ASYNC_DATABASE_ONLY:
        assert parameters(sync[name]) == parameters(asyn[name]), name
        assert not _awaitable(sync[name]), name
        assert _awaitable(asyn[name]) is (name not in DATABASE_NO_IO), name
    properties = {n for n, v in vars(Database).items() if isinstance(v, property)}
    async_properties = {n for n, v in vars(AsyncDatabase).items() if isinstance(v, property)}
    assert {"url", "database", "closed", "engine"} <= properties & async_properties
