"""A campaign's calls are listed and reported on by campaign: an index for them.

`GET /calls?campaign_id=`, a campaign's report and its export read every archived call of one
campaign in id order; without this index they scanned every row of the tenant. On a
partitioned table the index is made on each partition (and on the partitions made later).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE INDEX calls_tenant_campaign_id ON calls (tenant, campaign_id, id)")


def downgrade() -> None:
    op.execute("DROP INDEX calls_tenant_campaign_id")
