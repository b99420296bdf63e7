"""Integration tests: real processes, databases and faults (workers, CLI, security, ops, ...)."""
