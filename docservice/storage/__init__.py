"""Storage: the implementations of `docservice.core.repository.DocumentRepository`.

`sql/` (SQLite, PostgreSQL), `mongo/` (MongoDB) and `cache/` (a Redis read-through cache around
either). Beside them, what the backends share, written once: `retries.py` (the one bounded retry
policy, applied around the lowest-level I/O only), `listing.py` (list filters and keyset paging),
`idempotency.py` (a create repeated with its request_id), `history.py` (how version content is
stored: keyframes and bounded chains of deltas, rebuilt and checked) and `delta.py` (its
byte-level delta).

May import `docservice.core` and `docservice._proto`, never `docservice.grpc` (nor the CLI or
`docservice.app`, which wires storage in); checked by the import-linter contracts in
pyproject.toml.
"""
