"""`/openapi.json`: an OpenAPI 3.1 document generated from the .proto (descriptors and routes).

Schemas follow the JSON the face speaks (transcode.py): lowerCamelCase names, int64 as decimal
strings, enums by name, FieldMask as a comma-separated string; responses hold every field.
Comments of the .proto are not in the descriptors betterproto2 embeds, so descriptions are
short ones made here. Each operation documents the error statuses it can answer.
"""

from __future__ import annotations

from functools import cache
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor

from docservice.http.routes import Route, routes

__all__ = ["openapi"]

Schema = dict[str, Any]
_SCALARS: dict[int, Schema] = {
    FieldDescriptor.TYPE_STRING: {"type": "string"},
    FieldDescriptor.TYPE_BOOL: {"type": "boolean"},
    FieldDescriptor.TYPE_INT32: {"type": "integer", "format": "int32"},
    FieldDescriptor.TYPE_UINT32: {"type": "integer", "format": "int32", "minimum": 0},
    FieldDescriptor.TYPE_INT64: {"type": "string", "format": "int64", "pattern": r"^-?[0-9]+$"},
    FieldDescriptor.TYPE_UINT64: {"type": "string", "format": "int64", "pattern": r"^[0-9]+$"},
    FieldDescriptor.TYPE_DOUBLE: {"type": "number"},
    FieldDescriptor.TYPE_FLOAT: {"type": "number"},
    FieldDescriptor.TYPE_BYTES: {"type": "string", "contentEncoding": "base64"},
}
_WELL_KNOWN: dict[str, Schema] = {
    "google.protobuf.FieldMask": {
        "type": "string",
        "description": "Field paths, comma-separated (e.g. `title,content`).",
    },
}
_ERRORS = {
    400: "The request is not valid (`google.rpc.BadRequest` names each bad field).",
    401: "A bearer token is required (when auth is on).",
    403: "The token lacks the scope this method needs.",
    404: "No such document or version.",
    409: "Too many writers at once on this document: try again.",
    412: "The etag (`If-Match`) is stale: the document changed meanwhile.",
    429: "A limit was reached (the response would be too large, or too many open watch streams).",
    503: "The document store cannot be reached: try again later.",
}
_ON_A_DOCUMENT = {"GetDocument", "GetDocumentVersions", "GetDocumentVersion", "BlameDocument"}
_ON_A_DOCUMENT |= {"DiffDocumentVersions", "UpdateDocument", "DeleteDocument"}
_ON_A_DOCUMENT |= {"RestoreDocument", "RevertDocument"}
_CONDITIONAL = {"UpdateDocument", "DeleteDocument", "RestoreDocument", "RevertDocument"}
# RESOURCE_EXHAUSTED: a legacy-style page or a diff / blame over MAX_RESPONSE_BYTES, the cap on
# open watch streams.
_LIMITED = {"ListDocuments", "GetDocumentVersions", "DiffDocumentVersions", "BlameDocument"}
_LIMITED |= {"WatchDocuments"}


@cache
def openapi() -> dict[str, Any]:
    schemas: dict[str, Schema] = {"Status": _status_schema()}
    paths: dict[str, dict[str, Any]] = {}
    for route in routes():
        paths.setdefault(route.template, {})[route.http_method.lower()] = _operation(route, schemas)
    try:
        release = version("docservice")
    except PackageNotFoundError:  # pragma: no cover - run from a tree without metadata
        release = "0"
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "docservice",
            "version": release,
            "description": "Documents and every version of them. The gRPC service "
            "document.DocumentService over HTTP/JSON (AIP-127), generated from its .proto.",
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{}, {"bearer": []}],
    }


def _operation(route: Route, schemas: dict[str, Schema]) -> dict[str, Any]:
    parameters: list[dict[str, Any]] = []
    for name in route.path_fields:
        field = route.request.fields_by_name[name]
        parameters.append(
            {"name": name, "in": "path", "required": True, "schema": _path_schema(field)}
        )
    if route.body == "":
        for field in route.request.fields:
            if field.name in route.path_fields or field.type == FieldDescriptor.TYPE_MESSAGE:
                continue
            schema = _field_schema(field, schemas)
            parameters.append({"name": field.json_name, "in": "query", "schema": schema})
    if route.streaming:
        parameters.append(
            {
                "name": "Last-Event-ID",
                "in": "header",
                "description": "Resume after this event (an event's id is its resume token).",
                "schema": {"type": "string"},
            }
        )
    if "etag" in route.request.fields_by_name:
        parameters.append(
            {
                "name": "If-Match",
                "in": "header",
                "description": "Apply only if the document's etag is this one (else 412).",
                "schema": {"type": "string"},
            }
        )
    operation: dict[str, Any] = {
        "operationId": route.method,
        "summary": _summary(route.method),
        "parameters": parameters,
        "responses": {"200": _success(route, schemas), **_errors(route)},
    }
    if route.body == "*":
        body = _message_schema(route.request, schemas, skip=route.path_fields)
        operation["requestBody"] = {"content": {"application/json": {"schema": body}}}
    return operation


def _success(route: Route, schemas: dict[str, Schema]) -> dict[str, Any]:
    if route.streaming:
        return {
            "description": "Server-Sent Events: each `data` a WatchDocumentsResponse, each "
            "`id` its resume token; heartbeats are `event: heartbeat`.",
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        }
    answered = route.answered
    headers = {}
    if answered.name == "Document":
        headers["ETag"] = {"description": "The document's etag.", "schema": {"type": "string"}}
    return {
        "description": answered.name,
        "headers": headers,
        "content": {"application/json": {"schema": _ref(answered, schemas)}},
    }


def _errors(route: Route) -> dict[str, Any]:
    codes = [400, 401, 403, 503]
    if route.method in _ON_A_DOCUMENT:
        codes.append(404)
    if route.method in _CONDITIONAL:
        codes += [409, 412]
    if route.method in _LIMITED:
        codes.append(429)
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/Status"}}}
    return {
        str(code): {"description": _ERRORS[code], "content": error} for code in sorted(codes)
    } | {"default": {"description": "An unexpected error.", "content": error}}


def _ref(message: Descriptor, schemas: dict[str, Schema]) -> Schema:
    if message.full_name in _WELL_KNOWN:
        return _WELL_KNOWN[message.full_name]
    if message.name not in schemas:
        schemas[message.name] = {}  # a placeholder first: messages may refer to each other
        schemas[message.name] = _message_schema(message, schemas, response=True)
    return {"$ref": f"#/components/schemas/{message.name}"}


def _message_schema(
    message: Descriptor,
    schemas: dict[str, Schema],
    skip: tuple[str, ...] = (),
    *,
    response: bool = False,
) -> Schema:
    properties = {
        field.json_name: _field_schema(field, schemas)
        for field in message.fields
        if field.name not in skip
    }
    schema: Schema = {"type": "object", "properties": properties}
    if response:
        # Every field is in every response; a message field may be null (unset).
        schema["required"] = list(properties)
    else:
        schema["additionalProperties"] = False
    return schema


def _field_schema(field: FieldDescriptor, schemas: dict[str, Schema]) -> Schema:
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        item = _ref(field.message_type, schemas)
        if not field.is_repeated and field.message_type.full_name not in _WELL_KNOWN:
            item = {"anyOf": [item, {"type": "null"}]}
    elif field.type == FieldDescriptor.TYPE_ENUM:
        item = _enum_schema(field.enum_type)
        if field.has_presence:
            item = {"anyOf": [item, {"type": "null"}]}
    else:
        item = dict(_SCALARS[field.type])
    return {"type": "array", "items": item} if field.is_repeated else item


def _path_schema(field: FieldDescriptor) -> Schema:
    if field.name == "id":  # documents are named by UUIDs (core/validation.py)
        return {"type": "string", "format": "uuid"}
    schema = dict(_SCALARS[field.type])
    if schema["type"] == "string":
        schema["minLength"] = 1  # an empty segment would be another path
    return schema


def _enum_schema(enum: EnumDescriptor) -> Schema:
    return {"type": "string", "enum": [value.name for value in enum.values]}


def _status_schema() -> Schema:
    return {
        "type": "object",
        "description": "google.rpc.Status",
        "properties": {
            "code": {"type": "integer", "description": "The gRPC status code."},
            "message": {"type": "string"},
            "details": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"@type": {"type": "string"}},
                    "required": ["@type"],
                },
            },
        },
        "required": ["code", "message"],
    }


def _summary(method: str) -> str:
    words: list[str] = []
    for char in method:
        if char.isupper() and words:
            words.append(" ")
        words.append(char.lower() if words else char)
    return "".join(words)
