"""docservice: documents with full version history behind a gRPC API."""
