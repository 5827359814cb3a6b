"""The call history: tables calls and chats, partitioned by month of created_at, and the
function that makes a month's partition.

Revision ID: 0001
Revises:
Create Date: 2026-12-01
"""

from __future__ import annotations

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TABLES = ("calls", "chats")

# calls and chats have the same columns; `kind` is a call's call_type or a chat's chat_type.
# `doc` is the object as the API served it, byte for byte; `seq` the archiving pass that wrote
# the row (the lists page on it).
_TABLE = """
CREATE TABLE {table} (
    tenant      text        NOT NULL,
    id          bigint      NOT NULL,
    created_at  timestamptz NOT NULL,
    ended_at    timestamptz,
    status      text        NOT NULL,
    kind        text        NOT NULL,
    menu_id     bigint,
    agent_id    bigint,
    campaign_id bigint,
    fail_reason text,
    wait_s      double precision,
    duration_s  double precision,
    rev         bigint      NOT NULL,
    seq         bigint      NOT NULL,
    doc         text        NOT NULL,
    meta        jsonb       NOT NULL,
    history     jsonb       NOT NULL DEFAULT '[]',
    flags       jsonb       NOT NULL DEFAULT '{{}}',
    archived_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, id, created_at)
) PARTITION BY RANGE (created_at)
"""
_INDEXES = (
    "CREATE INDEX {table}_tenant_status_id ON {table} (tenant, status, id)",
    "CREATE INDEX {table}_tenant_kind_id ON {table} (tenant, kind, id)",
    "CREATE INDEX {table}_tenant_ended ON {table} (tenant, ended_at)",
)

# The partition <parent>_yYYYYmMM of `month`'s calendar month in UTC, made when missing; its
# name is returned. Callers racing for one partition take turns on an advisory lock named after
# it (CREATE TABLE of one name at once can fail on the catalog's unique index rather than as
# duplicate_table). The bounds are written with a +00 offset, whatever the session's TimeZone.
_MONTH_PARTITION = """
CREATE FUNCTION dispatcher_month_partition(parent regclass, month date) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    month_start date := date_trunc('month', month::timestamp)::date;
    next_start date := (month_start + interval '1 month')::date;
    parent_schema name;
    parent_name name;
    partition_name text;
BEGIN
    SELECT n.nspname, c.relname INTO parent_schema, parent_name
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.oid = parent;
    partition_name := parent_name || to_char(month_start, '"_y"YYYY"m"MM');
    PERFORM pg_advisory_xact_lock(hashtext(parent_schema || '.' || partition_name));
    IF to_regclass(format('%I.%I', parent_schema, partition_name)) IS NULL THEN
        EXECUTE format(
            'CREATE TABLE %I.%I PARTITION OF %s FOR VALUES FROM (%L) TO (%L)',
            parent_schema, partition_name, parent,
            to_char(month_start, 'YYYY-MM-DD') || ' 00:00:00+00',
            to_char(next_start, 'YYYY-MM-DD') || ' 00:00:00+00'
        );
    END IF;
    RETURN partition_name;
END
$$
"""


def upgrade() -> None:
    for table in TABLES:
        op.execute(_TABLE.format(table=table))
        for index in _INDEXES:
            op.execute(index.format(table=table))
    op.execute(_MONTH_PARTITION)


def downgrade() -> None:
    op.execute("DROP FUNCTION dispatcher_month_partition(regclass, date)")
    for table in reversed(TABLES):
        op.execute(f"DROP TABLE {table}")
