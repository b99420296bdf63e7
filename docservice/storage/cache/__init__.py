"""The Redis read-through cache around any DocumentRepository: the wrapper and its consistency
scheme in `repository.py`, what it stores under each key in `entries.py`, the Lua scripts in
`scripts.py`, the repair after failed write-throughs in `repair.py`, and the circuit breaker in
`breaker.py`.

May import `docservice.core`, `docservice._proto` and `docservice.storage` (its shared
modules), never `docservice.grpc`; it knows no backend, only the repository Protocol.
"""
