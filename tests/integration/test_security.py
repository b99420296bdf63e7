"""Security: JWT bearer tokens (HS256, RS256, ES256) and TLS / mutual TLS on in-process servers.

Keys, tokens, a throwaway CA and its certificates are all made at test time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import ssl
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

import grpc
import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from grpclib.client import Channel
from grpclib.const import Status
from grpclib.exceptions import GRPCError, ProtocolError, StreamTerminatedError
from grpclib.health.v1.health_grpc import HealthStub
from grpclib.health.v1.health_pb2 import HealthCheckRequest, HealthCheckResponse
from pydantic import ValidationError

from docservice._proto.document import (
    CreateDocumentRequest,
    Document,
    DocumentServiceStub,
    GetDocumentRequest,
    GetDocumentVersionsRequest,
    ListDocumentEventsRequest,
    ListDocumentsRequest,
    SearchDocumentsRequest,
    WatchDocumentsRequest,
)
from docservice.settings import Settings
from tests.support.apps import running_app
from tests.support.backends import backend_settings
from tests.support.contract import expect_status, unique

SECRET = "s3cret-for-tests-only-0123456789abcdef"  # >= 32 bytes: PyJWT warns on short HMAC keys
AUDIENCE = "docservice"
ISSUER = "tests"
READ_WRITE = "documents:read documents:write"
Connect = Callable[..., Channel]

# ---------------------------------------------------------------- helpers: servers and calls


@asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[Connect]:
    """Start an app; yield `connect(context=None) -> Channel`; close channels and app afterwards."""
    channels: list[Channel] = []

    def connect(context: ssl.SSLContext | None = None) -> Channel:
        channels.append(Channel("127.0.0.1", settings.grpc_port, ssl=context))
        return channels[-1]

    async with running_app(settings):
        try:
            yield connect
        finally:
            for channel in channels:
                channel.close()


async def create_doc(stub: DocumentServiceStub, metadata: dict[str, str] | None) -> Document:
    request = CreateDocumentRequest(title=unique("title"), author=unique("author"))
    return await stub.create_document(request, timeout=5, metadata=metadata)


async def get_doc(
    stub: DocumentServiceStub, doc_id: str, metadata: dict[str, str] | None
) -> Document:
    reply = await stub.get_document(GetDocumentRequest(id=doc_id), timeout=5, metadata=metadata)
    assert reply.document is not None
    return reply.document


async def assert_refused(channel: Channel) -> None:
    """The call must fail at the transport (TLS) level: no success, and no hang either."""
    accepted = (ssl.SSLError, OSError, GRPCError, StreamTerminatedError, ProtocolError)
    with pytest.raises(accepted):
        await DocumentServiceStub(channel).list_documents(ListDocumentsRequest(), timeout=5)


# ---------------------------------------------------------------- helpers: tokens


def claims(**overrides: Any) -> dict[str, Any]:
    """Good claims (right aud/iss, 5 minutes left, read+write); an override of None drops one."""
    now = int(time.time())
    found = {"aud": AUDIENCE, "iss": ISSUER, "iat": now, "exp": now + 300, "scope": READ_WRITE}
    found.update(overrides)
    return {name: value for name, value in found.items() if value is not None}


def mint(key: Any = SECRET, algorithm: str = "HS256", **overrides: Any) -> str:
    return jwt.encode(claims(**overrides), key, algorithm=algorithm)


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def hs256_by_hand(secret: bytes) -> str:
    """PyJWT refuses a PEM as an HMAC secret, so an algorithm-confusion token is built by hand."""

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    header = json.dumps({"alg": "HS256", "typ": "JWT"}).encode()
    signing_input = f"{b64(header)}.{b64(json.dumps(claims()).encode())}"
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


def public_pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


# ---------------------------------------------------------------- helpers: certificates

Issued = tuple[x509.Certificate, ec.EllipticCurvePrivateKey]
# digital_signature, content_commitment, key_encipherment, data_encipherment, key_agreement,
# key_cert_sign, crl_sign, encipher_only, decipher_only
CA_USAGE = x509.KeyUsage(False, False, False, False, False, True, True, False, False)
UNENCRYPTED_PKCS8 = (
    serialization.Encoding.PEM,
    serialization.PrivateFormat.PKCS8,
    serialization.NoEncryption(),
)
LOCALHOST = [x509.DNSName("localhost"), x509.IPAddress(IPv4Address("127.0.0.1"))]


def issue(
    name: str,
    issuer: Issued | None = None,
    usage: x509.ObjectIdentifier | None = None,
    san: list[x509.GeneralName] | None = None,
) -> Issued:
    """A new key and certificate: a self-signed CA when `issuer` is None, else a leaf it signs."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    issuer_name, issuer_key = (issuer[0].subject, issuer[1]) if issuer else (subject, key)
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), False
        )
    )
    if issuer is None:
        builder = builder.add_extension(CA_USAGE, critical=True)
    if usage is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
    return builder.sign(issuer_key, hashes.SHA256()), key


@dataclass(frozen=True)
class Pair:
    cert: Path
    key: Path


def save(directory: Path, stem: str, issued: Issued) -> Pair:
    cert, key = issued
    pair = Pair(directory / f"{stem}.pem", directory / f"{stem}.key")
    pair.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pair.key.write_bytes(key.private_bytes(*UNENCRYPTED_PKCS8))
    return pair


@dataclass(frozen=True)
class Pki:
    ca: Path  # our CA
    server: Pair  # localhost / 127.0.0.1, signed by our CA
    client: Pair  # a client certificate signed by our CA
    outsider_ca: Path  # another CA, say one in the system trust store
    outsider: Pair  # a client certificate signed by the other CA


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp("pki")
    ca, outsider_ca = issue("docservice test CA"), issue("some other CA")
    server = issue("localhost", ca, ExtendedKeyUsageOID.SERVER_AUTH, LOCALHOST)
    return Pki(
        ca=save(directory, "ca", ca).cert,
        server=save(directory, "server", server),
        client=save(directory, "client", issue("client", ca, ExtendedKeyUsageOID.CLIENT_AUTH)),
        outsider_ca=save(directory, "outsider-ca", outsider_ca).cert,
        outsider=save(
            directory, "outsider", issue("outsider", outsider_ca, ExtendedKeyUsageOID.CLIENT_AUTH)
        ),
    )


def client_context(pki: Pki | None, cert: Pair | None = None) -> ssl.SSLContext:
    """Trusts our CA when `pki` is given (else only the system CAs); may present a client cert."""
    context = ssl.create_default_context(cafile=pki.ca if pki else None)
    if cert is not None:
        context.load_cert_chain(cert.cert, cert.key)
    context.set_alpn_protocols(["h2"])
    return context


# ---------------------------------------------------------------- JWT with an HS256 secret


def auth_settings(request: pytest.FixtureRequest, tmp: Path, **extra: Any) -> Settings:
    """JWT auth on (HS256 with SECRET unless `extra` says otherwise), aud and iss checked."""
    values = {"auth_jwt_secret": SECRET, "auth_jwt_audience": AUDIENCE, "auth_jwt_issuer": ISSUER}
    return backend_settings("sqlite", tmp, request, **{**values, **extra})


@pytest.fixture(scope="module")
async def jwt_connect(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Connect]:
    async with running(auth_settings(request, tmp_path_factory.mktemp("jwt"))) as connect:
        yield connect


@pytest.fixture
def stub(jwt_connect: Connect) -> DocumentServiceStub:
    return DocumentServiceStub(jwt_connect())


BAD_CREDENTIALS: dict[str, Callable[[], dict[str, str] | None]] = {
    "no-token": lambda: None,
    "no-bearer-prefix": lambda: {"authorization": mint()},
    "not-a-jwt": lambda: bearer("not.a-jwt"),
    "bad-signature": lambda: bearer(mint(key="another-secret-that-is-long-enough-0123")),
    "expired": lambda: bearer(mint(exp=int(time.time()) - 60)),
    "not-yet-valid": lambda: bearer(mint(nbf=int(time.time()) + 300)),
    "no-exp": lambda: bearer(mint(exp=None)),
    "wrong-audience": lambda: bearer(mint(aud="someone-else")),
    "wrong-issuer": lambda: bearer(mint(iss="mallory")),
}


@pytest.mark.parametrize("credentials", BAD_CREDENTIALS.values(), ids=BAD_CREDENTIALS.keys())
async def test_bad_credentials_are_unauthenticated(
    stub: DocumentServiceStub, credentials: Callable[[], dict[str, str] | None]
) -> None:
    metadata = credentials()
    for call in (get_doc(stub, str(uuid.uuid4()), metadata), create_doc(stub, metadata)):
        error = await expect_status(call, Status.UNAUTHENTICATED)
        if metadata is not None:  # the token never comes back in the error
            token = metadata["authorization"].removeprefix("Bearer ")
            assert token not in (error.message or "")
            assert token.split(".")[-1] not in (error.message or "")


async def test_read_scope_reads_but_cannot_write(stub: DocumentServiceStub) -> None:
    doc = await create_doc(stub, bearer(mint()))
    reader = bearer(mint(scope="documents:read"))
    assert (await get_doc(stub, doc.id, reader)).id == doc.id
    await stub.list_documents(ListDocumentsRequest(author=doc.author), timeout=5, metadata=reader)
    error = await expect_status(create_doc(stub, reader), Status.PERMISSION_DENIED)
    assert "documents:write" in (error.message or "")


async def test_the_read_scope_searches_and_follows_the_feed(stub: DocumentServiceStub) -> None:
    """SearchDocuments, ListDocumentEvents and WatchDocuments are reads: documents:read lets a
    token use them, documents:write alone does not."""
    reader = bearer(mint(scope="documents:read"))
    writer = bearer(mint(scope="documents:write"))
    search = SearchDocumentsRequest(query="anything")
    await stub.search_documents(search, timeout=5, metadata=reader)
    await stub.list_document_events(ListDocumentEventsRequest(), timeout=5, metadata=reader)
    async with aclosing(stub.watch_documents(WatchDocumentsRequest(), metadata=reader)) as stream:
        async for message in stream:
            assert message.resume_token  # the first heartbeat: the stream is open
            break
    for call in (
        stub.search_documents(search, timeout=5, metadata=writer),
        stub.list_document_events(ListDocumentEventsRequest(), timeout=5, metadata=writer),
        anext(stub.watch_documents(WatchDocumentsRequest(), metadata=writer)),
    ):
        await expect_status(call, Status.PERMISSION_DENIED)


async def test_write_scope_alone_cannot_read(stub: DocumentServiceStub) -> None:
    writer = bearer(mint(scope="documents:write"))
    doc = await create_doc(stub, writer)
    await expect_status(get_doc(stub, doc.id, writer), Status.PERMISSION_DENIED)


@pytest.mark.parametrize(
    "overrides",
    [{"scope": READ_WRITE}, {"scope": None, "scopes": ["documents:read", "documents:write"]}],
    ids=["scope-string", "scopes-list"],
)
async def test_read_write_token_creates_and_gets(
    stub: DocumentServiceStub, overrides: dict[str, Any]
) -> None:
    token = bearer(mint(**overrides))
    doc = await create_doc(stub, token)
    assert (await get_doc(stub, doc.id, token)).title == doc.title


async def test_health_needs_no_token(jwt_connect: Connect) -> None:
    health = HealthStub(jwt_connect())
    for service in ("", "document.DocumentService"):
        reply = await health.Check(HealthCheckRequest(service=service), timeout=5)
        assert reply.status == HealthCheckResponse.SERVING


async def test_public_methods_need_no_token(request: pytest.FixtureRequest, tmp_path: Path) -> None:
    settings = auth_settings(
        request, tmp_path, auth_public_methods=["GetDocument", "ListDocuments"]
    )
    async with running(settings) as connect:
        stub = DocumentServiceStub(connect())
        doc = await create_doc(stub, bearer(mint()))
        assert (await get_doc(stub, doc.id, None)).id == doc.id
        listed = await stub.list_documents(ListDocumentsRequest(author=doc.author), timeout=5)
        assert [d.id for d in listed.documents] == [doc.id]
        await expect_status(create_doc(stub, None), Status.UNAUTHENTICATED)
        versions = stub.get_document_versions(GetDocumentVersionsRequest(id=doc.id), timeout=5)
        await expect_status(versions, Status.UNAUTHENTICATED)


# ---------------------------------------------------------------- JWT with a public key


@pytest.mark.parametrize("algorithm", ["RS256", "ES256"])
async def test_public_key_tokens(
    request: pytest.FixtureRequest, tmp_path: Path, algorithm: str
) -> None:
    def new_key() -> rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey:
        if algorithm == "RS256":
            return rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return ec.generate_private_key(ec.SECP256R1())

    key, stranger = new_key(), new_key()
    (tmp_path / "jwt.pub").write_bytes(public_pem(key))
    public = {"auth_jwt_secret": None, "auth_jwt_public_key_file": tmp_path / "jwt.pub"}
    settings = auth_settings(request, tmp_path, **public)
    async with running(settings) as connect:
        stub = DocumentServiceStub(connect())
        token = bearer(mint(key, algorithm))
        doc = await create_doc(stub, token)
        assert (await get_doc(stub, doc.id, token)).id == doc.id
        await expect_status(
            create_doc(stub, bearer(mint(stranger, algorithm))), Status.UNAUTHENTICATED
        )
        # Algorithm confusion: HS256 "signed" with the public key text must not pass.
        confused = bearer(hs256_by_hand(public_pem(key)))
        await expect_status(create_doc(stub, confused), Status.UNAUTHENTICATED)


# ---------------------------------------------------------------- TLS and mutual TLS


def tls_settings(request: pytest.FixtureRequest, tmp: Path, pki: Pki, **extra: Any) -> Settings:
    files = {"tls_cert_file": pki.server.cert, "tls_key_file": pki.server.key}
    return backend_settings("sqlite", tmp, request, **files, **extra)


@pytest.fixture(scope="module")
async def tls_connect(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, pki: Pki
) -> AsyncIterator[Connect]:
    async with running(tls_settings(request, tmp_path_factory.mktemp("tls"), pki)) as connect:
        yield connect


async def test_tls_call_succeeds_with_the_ca(tls_connect: Connect, pki: Pki) -> None:
    stub = DocumentServiceStub(tls_connect(client_context(pki)))
    doc = await create_doc(stub, None)
    assert (await get_doc(stub, doc.id, None)).id == doc.id


@pytest.mark.parametrize("use_tls", [True, False], ids=["client-without-the-ca", "plaintext"])
async def test_tls_refuses(tls_connect: Connect, use_tls: bool) -> None:
    await assert_refused(tls_connect(client_context(None) if use_tls else None))


async def test_mutual_tls(request: pytest.FixtureRequest, tmp_path: Path, pki: Pki) -> None:
    async with running(tls_settings(request, tmp_path, pki, tls_client_ca_file=pki.ca)) as connect:
        stub = DocumentServiceStub(connect(client_context(pki, pki.client)))
        doc = await create_doc(stub, None)
        assert (await get_doc(stub, doc.id, None)).id == doc.id
        await assert_refused(connect(client_context(pki)))  # no client certificate
        await assert_refused(connect(client_context(pki, pki.outsider)))  # another CA's


async def test_mutual_tls_trusts_only_the_client_ca(
    request: pytest.FixtureRequest, tmp_path: Path, pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    """TLS_CLIENT_CA_FILE must be the only anchor for client certificates: the system trust
    store (stood in for here by SSL_CERT_FILE, which OpenSSL reads) must not count."""
    monkeypatch.setenv("SSL_CERT_FILE", str(pki.outsider_ca))
    async with running(tls_settings(request, tmp_path, pki, tls_client_ca_file=pki.ca)) as connect:
        await assert_refused(connect(client_context(pki, pki.outsider)))


@pytest.mark.parametrize(
    "files",
    [{"tls_cert_file": "cert"}, {"tls_key_file": "key"}, {"tls_client_ca_file": "ca"}],
    ids=["cert-without-key", "key-without-cert", "client-ca-without-cert"],
)
def test_tls_settings_must_be_complete(
    request: pytest.FixtureRequest, tmp_path: Path, pki: Pki, files: dict[str, str]
) -> None:
    paths = {"cert": pki.server.cert, "key": pki.server.key, "ca": pki.ca}
    with pytest.raises(ValidationError, match="TLS_"):
        backend_settings("sqlite", tmp_path, request, **{k: paths[v] for k, v in files.items()})


async def test_a_huge_bearer_token_is_refused_clearly(jwt_connect: Connect) -> None:
    """100 KB of token: RESOURCE_EXHAUSTED naming the metadata size (it was UNAVAILABLE, the
    connection dropped), for grpclib and for a stock grpcio client; the connection serves on."""
    stub = DocumentServiceStub(jwt_connect())
    huge = bearer("x" * 100_000)
    error = await expect_status(get_doc(stub, str(uuid.uuid4()), huge), Status.RESOURCE_EXHAUSTED)
    assert "metadata" in (error.message or "") and "x" * 100 not in (error.message or "")
    doc = await create_doc(stub, bearer(mint()))  # the same channel still works
    channel = jwt_connect()
    target = f"{channel._host}:{channel._port}"
    async with grpc.aio.insecure_channel(target) as raw:
        call = raw.unary_unary("/document.DocumentService/GetDocument")
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call(bytes(GetDocumentRequest(id=doc.id)), metadata=[tuple(*huge.items())])
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
