"""The gRPC face: the grpclib servicer (thin: parse, call the service, answer), the strict
request codec, hand-built response bytes (`wire`), domain errors -> statuses (`errors`), the
server, health and reflection, auth, telemetry, and every use of grpclib's private API
(`compat`). May import `docservice.core` and `docservice.storage`; nothing below imports it.
"""
