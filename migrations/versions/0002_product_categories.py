"""products: category, backfilled from the SKU prefix

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 01:20:00

Adds products.category (indexed, default 'other'). Existing rows are classified from their SKU
prefix in the same transaction, so no product is left with a guessed value when a known prefix
says better. Downgrade drops the column (the classification is derived data).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# SKU prefix -> category, for the rows that exist when the migration runs.
CATEGORIES = {
    "KB": "input",
    "MS": "input",
    "MN": "display",
    "WC": "video",
    "HD": "audio",
    "CB": "accessories",
    "DK": "accessories",
    "LM": "office",
}


def upgrade() -> None:
    """Add products.category and classify the existing products."""
    op.add_column(
        "products",
        sa.Column("category", sa.String(length=40), server_default="other", nullable=False),
    )
    op.create_index(op.f("ix_products_category"), "products", ["category"], unique=False)
    products = sa.table("products", sa.column("sku", sa.String), sa.column("category", sa.String))
    prefix = sa.func.split_part(products.c.sku, "-", 1)
    op.execute(
        products.update()
        .where(prefix.in_(list(CATEGORIES)))
        .values(category=sa.case(CATEGORIES, value=prefix, else_="other"))
    )


def downgrade() -> None:
    """Drop products.category and its index."""
    op.drop_index(op.f("ix_products_category"), table_name="products")
    op.drop_column("products", "category")
