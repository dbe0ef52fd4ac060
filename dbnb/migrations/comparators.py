"""dbnb's comparator, registered with Alembic's autogenerate: partial-index ``WHERE`` clauses.

Importing this module registers it (``context_options()``, which every ``env.py`` of a dbnb
project calls, does), so ``alembic check`` and ``alembic revision --autogenerate`` see a changed
predicate exactly as ``%db check`` does: the index is dropped and created again with the
model's ``WHERE``.
"""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import comparators
from alembic.operations import ops

from dbnb.dialects import capabilities
from dbnb.migrations.drift import predicate_changes

__all__ = ["compare_partial_indexes"]


@comparators.dispatch_for("table")
def compare_partial_indexes(
    autogen_context: Any,
    modify_ops: ops.ModifyTableOps,
    schema: str | None,
    tname: str,
    conn_table: Any,
    metadata_table: Any,
) -> None:
    """Add a drop and re-create of each index whose ``WHERE`` differs from the model's."""
    conn = autogen_context.connection
    if conn is None or conn_table is None or metadata_table is None:
        return
    if not capabilities(conn.dialect).index_predicates:
        return
    reflected = {str(i.name): i for i in conn_table.indexes}
    for index, _found, _model in predicate_changes(conn, metadata_table):
        old = reflected.get(str(index.name))
        if old is not None:
            modify_ops.ops.append(ops.DropIndexOp.from_index(old))
        else:
            modify_ops.ops.append(ops.DropIndexOp(str(index.name), table_name=tname, schema=schema))
        modify_ops.ops.append(ops.CreateIndexOp.from_index(index))
