"""The HTTP routes of the service, read from the `google.api.http` annotations in proto/.

Nothing here names a path: each RPC's annotation gives its method, path template, body and
response body, exactly as Envoy's transcoder or grpc-gateway would read them. A template's
variables are single path segments (`{id}`), optionally followed by a custom verb (`:restore`),
the subset of the http.proto grammar the contract uses; anything else fails at start-up.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache

from google.api import annotations_pb2
from google.protobuf import descriptor_pb2
from google.protobuf.descriptor import Descriptor

from docservice._proto.document import DOCUMENT_PROTO_DESCRIPTOR

__all__ = ["SERVICE", "Route", "routes"]

SERVICE = "DocumentService"
_VARIABLE = re.compile(r"\{([a-z_][a-z0-9_]*)\}")
_TEMPLATE = re.compile(r"^(/[A-Za-z0-9_.\-]+|/\{[a-z_][a-z0-9_]*\})+(:[A-Za-z]+)?$")


@dataclass(frozen=True)
class Route:
    method: str  # the RPC: "GetDocument"
    http_method: str  # "GET"
    template: str  # "/v1/documents/{id}"
    path_fields: tuple[str, ...]  # ("id",)
    body: str  # "*" (the whole request), "" (none: query parameters)
    response_body: str  # "" (the whole response) or the field answered alone
    request: Descriptor
    response: Descriptor
    answered: Descriptor  # the response, or its response_body field's message
    streaming: bool


@cache
def routes() -> tuple[Route, ...]:
    """Every annotated RPC of the service, in the order of the .proto."""
    file = descriptor_pb2.FileDescriptorProto.FromString(DOCUMENT_PROTO_DESCRIPTOR.serialized_pb)
    service = next(s for s in file.service if s.name == SERVICE)
    found = []
    for method in service.method:
        rule = method.options.Extensions[annotations_pb2.http]
        pattern = rule.WhichOneof("pattern")
        if pattern is None or pattern == "custom" or rule.additional_bindings:
            raise ValueError(f"{method.name}: only one get/put/post/patch/delete rule is served")
        template = getattr(rule, pattern)
        if not _TEMPLATE.match(template):
            raise ValueError(f"{method.name}: unsupported path template {template!r}")
        descriptor = DOCUMENT_PROTO_DESCRIPTOR.services_by_name[SERVICE].methods_by_name[
            method.name
        ]
        request, response = descriptor.input_type, descriptor.output_type
        fields = tuple(_VARIABLE.findall(template))
        for name in (*fields, *([rule.body] if rule.body not in ("", "*") else [])):
            if name not in request.fields_by_name:
                raise ValueError(f"{method.name}: {name} is no field of {request.name}")
        if rule.body not in ("", "*"):
            raise ValueError(f"{method.name}: body must be '*' or absent")
        answered = response
        if rule.response_body:
            if rule.response_body not in response.fields_by_name:
                raise ValueError(f"{method.name}: {rule.response_body} is no field of the response")
            answered = response.fields_by_name[rule.response_body].message_type
        found.append(
            Route(
                method=method.name,
                http_method=pattern.upper(),
                template=template,
                path_fields=fields,
                body=rule.body,
                response_body=rule.response_body,
                request=request,
                response=response,
                answered=answered,
                streaming=method.server_streaming,
            )
        )
    return tuple(found)
