"""The HTTP/JSON face (AIP-127 routes from the .proto's annotations), OpenAPI and the console."""
