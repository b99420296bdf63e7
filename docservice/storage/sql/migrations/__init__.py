"""Alembic migrations of the SQL schema (`make migrate`, or applied at server start)."""
