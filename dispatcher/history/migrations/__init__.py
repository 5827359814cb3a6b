"""Alembic's script directory of the history schema (schema.py runs it)."""
