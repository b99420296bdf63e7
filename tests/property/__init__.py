"""Property tests: hypothesis-generated hostile requests and hand-made HTTP/2 frames."""
