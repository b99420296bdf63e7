"""The `docservice` command: a client of a running server over gRPC (plus `serve`, which runs
the server as `python -m docservice` does). Talks to the server only through the generated
client stubs: it imports neither `docservice.core`, `docservice.storage` nor `docservice.grpc`.
"""
