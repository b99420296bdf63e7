"""The HTTP face's JSON (http/transcode.py's `to_json`) is exactly what betterproto2's
`to_dict(include_default_values=True)` makes, the CLI's --json: for every response message of
the service, with generated values (unset message fields, unknown enum numbers, int64 extremes,
non-finite scores, any text)."""

from __future__ import annotations

import json
import math
from typing import Any

import betterproto2
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from docservice._proto import document as messages
from docservice.http.routes import routes
from docservice.http.transcode import to_json

INT64 = st.integers(-(2**63), 2**63 - 1)
SCALARS: dict[int, st.SearchStrategy[Any]] = {
    FieldDescriptor.TYPE_STRING: st.text(max_size=20),
    FieldDescriptor.TYPE_BOOL: st.booleans(),
    FieldDescriptor.TYPE_INT32: st.integers(-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_INT64: INT64,
    FieldDescriptor.TYPE_DOUBLE: st.floats(allow_nan=False) | st.sampled_from([math.inf]),
}


def message_values(descriptor: Descriptor, depth: int = 0) -> st.SearchStrategy[dict[str, Any]]:
    """Constructor arguments of the betterproto2 class of `descriptor`."""
    fields: dict[str, st.SearchStrategy[Any]] = {}
    for field in descriptor.fields:
        value: st.SearchStrategy[Any]
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            if depth > 2:
                continue
            cls = getattr(messages, field.message_type.name)
            value = message_values(field.message_type, depth + 1).map(lambda kw, c=cls: c(**kw))
            if not field.is_repeated:
                value = st.none() | value
        elif field.type == FieldDescriptor.TYPE_ENUM:
            cls = getattr(messages, field.enum_type.name)
            value = st.sampled_from([v.number for v in field.enum_type.values] + [99]).map(cls)
        else:
            value = SCALARS[field.type]
        fields[field.name] = st.lists(value, max_size=3) if field.is_repeated else value
    return st.fixed_dictionaries({}, optional=fields)


ANSWERED = sorted({route.response.name for route in routes()})


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(data=st.data())
def test_the_json_is_betterproto2s(data: st.DataObject) -> None:
    name = data.draw(st.sampled_from(ANSWERED))
    cls: type[betterproto2.Message] = getattr(messages, name)
    message = cls(**data.draw(message_values(cls.DESCRIPTOR)))  # type: ignore[attr-defined]
    assert json.loads(to_json(message)) == _json_roundtrip(
        message.to_dict(include_default_values=True)
    )


def _json_roundtrip(value: dict[str, Any]) -> Any:
    return json.loads(json.dumps(value))


def test_every_response_message_is_covered() -> None:
    assert "Document" in ANSWERED and "WatchDocumentsResponse" in ANSWERED
    assert len(ANSWERED) >= 12
