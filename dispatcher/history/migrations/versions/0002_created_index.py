"""Reports and time-ranged lists read a tenant's rows by created_at: an index for them.

The primary key (tenant, id, created_at) serves reads by id and lists in id order; a report
over a week, or a list filtered by created_at in another order, scanned every row of the
tenant in the months it touched. On a partitioned table the index is made on each partition
(and on the partitions made later).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TABLES = ("calls", "chats")


def upgrade() -> None:
    for table in TABLES:
        op.execute(f"CREATE INDEX {table}_tenant_created ON {table} (tenant, created_at)")


def downgrade() -> None:
    for table in TABLES:
        op.execute(f"DROP INDEX {table}_tenant_created")
