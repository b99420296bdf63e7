"""docservice: documents with full version history behind a gRPC API and its HTTP face."""

# The generated document module's descriptor depends on google/api/annotations.proto (the HTTP
# routes), which depends on google/protobuf/descriptor.proto; betterproto2 0.10 imports only the
# dependencies whose messages a module uses, so load both into the shared descriptor pool first,
# in that order, whatever then imports the messages.
from docservice._proto.google import protobuf as _descriptors  # noqa: F401  # isort: skip
from docservice._proto.google import api as _http_annotations  # noqa: F401  # isort: skip
