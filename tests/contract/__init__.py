"""Contract tests: the public gRPC API, the same suite on every backend (± Redis cache)."""
