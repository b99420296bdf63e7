"""Unit tests: pure functions and classes, no servers, no processes, no network."""
