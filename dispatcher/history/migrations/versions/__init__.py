"""The history schema's revisions, raw SQL each (Alembic cannot autogenerate partitioned tables)."""
