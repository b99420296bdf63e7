"""The SQL backend (SQLite and PostgreSQL) on SQLAlchemy Core: `repository.py`, the tables in
`schema.py`, and the Alembic migrations (`migrations/`, applied by `migrate.py`).

May import `docservice.core`, `docservice._proto` and `docservice.storage` (its shared
modules), never `docservice.grpc`. Only the Alembic environment (`migrations/env.py`, run by
`make migrate`) reads `docservice.settings`, for the database URL.
"""
