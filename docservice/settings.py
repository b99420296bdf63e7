"""Configuration from environment variables and an optional `.env` file."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

__all__ = ["DbType", "Settings"]

DEFAULT_SQLITE_URL = f"sqlite+aiosqlite:///{Path('data') / 'docservice.db'}"


class DbType(StrEnum):
    SQLITE = "sqlite"
    POSTGRES = "postgres"
    MONGO = "mongo"


class Settings(BaseSettings):
    """Every knob of the service; each field is read from the env var of the same name."""

    # Empty values count as unset, so that a copy of .env.example works as it is.
    model_config = SettingsConfigDict(
        env_file=".env", extra="ignore", frozen=True, env_ignore_empty=True
    )

    grpc_host: str = "127.0.0.1"
    grpc_port: int = Field(50051, ge=0, le=65535)
    db_type: DbType = DbType.SQLITE
    database_url: str = ""
    mongo_url: str = "mongodb://127.0.0.1:27017"
    mongo_db: str = Field("docservice", min_length=1)
    # How long a MongoDB server may take to be selected, connected to, or to answer its
    # monitor's check before it counts as down (then: retries, UNAVAILABLE).
    mongo_timeout_ms: int = Field(400, ge=50, le=60_000)
    migrate_on_start: bool = True
    log_level: str = Field("INFO", pattern=r"(?i)^(DEBUG|INFO|WARNING|ERROR|CRITICAL)$")
    log_format: Literal["text", "json"] = "text"
    shutdown_grace_seconds: float = Field(10.0, ge=0)
    # Server processes sharing the port; 0 = one per core.
    workers: int = Field(1, ge=0)

    # The HTTP/JSON face and the console (docservice/http), on the same loop as gRPC, with the
    # same TLS; port 0 takes a free one. CORS_ORIGINS: the origins browsers may call it from
    # (comma-separated, `*` for any); none by default.
    http_enabled: bool = True
    http_host: str = "127.0.0.1"
    http_port: int = Field(8080, ge=0, le=65535)
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)

    # Operations.
    metrics_port: int | None = Field(None, ge=0, le=65535)
    metrics_host: str = "127.0.0.1"
    max_message_bytes: int = Field(4 * 1024 * 1024, ge=1024)
    keepalive_seconds: float = Field(60.0, gt=0)
    health_check_interval_seconds: float = Field(5.0, gt=0)

    # Security: each is off until its setting is given.
    auth_jwt_secret: SecretStr | None = None
    auth_jwt_public_key_file: Path | None = None
    auth_jwt_algorithms: Annotated[list[str], NoDecode] = Field(default_factory=list)
    auth_jwt_audience: str | None = None
    auth_jwt_issuer: str | None = None
    auth_jwt_leeway_seconds: float = Field(30.0, ge=0)  # clock drift allowed on exp/nbf/iat
    auth_public_methods: Annotated[list[str], NoDecode] = Field(default_factory=list)
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    tls_client_ca_file: Path | None = None
    # Signs page tokens. Servers that should accept each other's tokens need the same secret;
    # unset, each process (with its workers) makes a random one.
    page_token_secret: SecretStr | None = Field(None, min_length=16)

    redis_url: str = ""
    cache_ttl_seconds: int = Field(300, ge=1)
    cache_timeout_ms: int = Field(50, ge=1)
    cache_key_prefix: str = "docservice:"
    cache_breaker_cooldown_seconds: float = Field(1.0, gt=0)

    max_title_length: int = Field(256, ge=1)
    max_author_length: int = Field(100, ge=1)
    max_content_bytes: int = Field(1024 * 1024, ge=0)
    max_tags: int = Field(32, ge=0)
    max_tag_length: int = Field(64, ge=1)
    max_category_length: int = Field(64, ge=0)
    max_comments: int = Field(256, ge=0)
    max_comment_length: int = Field(2000, ge=1)
    max_change_message_length: int = Field(1000, ge=1)
    default_page_size: int = Field(20, ge=1)
    max_page_size: int = Field(100, ge=1)
    max_versions_page: int = Field(1000, ge=1)
    # What one response may hold: a default gRPC client accepts 4 MiB.
    max_response_bytes: int = Field(4 * 1024 * 1024, ge=64 * 1024)
    # Version content: deltas applied at most to read any version (storage/history.py). Unset:
    # 32 on SQL, 16 on MongoDB, whose read of a version fetches the K + 1 rows below it at once.
    history_max_chain: int | None = Field(None, ge=0, le=1000)
    # Full-text search's stemming: a PostgreSQL text search configuration (english, german,
    # simple, ...); SQLite stems only english (porter), anything else indexes words unstemmed;
    # MongoDB: a snowball language, or simple for none. Changing it rebuilds the index at start.
    search_language: str = Field("english", pattern=r"^[a-z_]{1,63}$")
    # The change feed (core/feed.py): open WatchDocuments streams per process; how often a
    # process looks for writes made through others; a heartbeat after this long without a
    # message on a stream.
    max_watchers: int = Field(1000, ge=0)
    feed_poll_seconds: float = Field(0.2, gt=0, le=60)
    watch_heartbeat_seconds: float = Field(5.0, gt=0, le=3600)

    @field_validator("auth_jwt_algorithms", "auth_public_methods", "cors_origins", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @property
    def auth_enabled(self) -> bool:
        return self.auth_jwt_secret is not None or self.auth_jwt_public_key_file is not None

    @model_validator(mode="after")
    def _check_security(self) -> Settings:
        if self.auth_jwt_secret is not None and self.auth_jwt_public_key_file is not None:
            raise ValueError("set AUTH_JWT_SECRET or AUTH_JWT_PUBLIC_KEY_FILE, not both")
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("TLS_CERT_FILE and TLS_KEY_FILE go together")
        if self.tls_client_ca_file is not None and self.tls_cert_file is None:
            raise ValueError("TLS_CLIENT_CA_FILE needs TLS_CERT_FILE and TLS_KEY_FILE")
        for path in (
            self.auth_jwt_public_key_file,
            self.tls_cert_file,
            self.tls_key_file,
            self.tls_client_ca_file,
        ):
            if path is not None and not path.is_file():
                raise ValueError(f"no such file: {path}")
        return self

    @model_validator(mode="after")
    def _check_database_url(self) -> Settings:
        url = self.database_url
        if self.db_type is DbType.SQLITE:
            if not url:
                object.__setattr__(self, "database_url", DEFAULT_SQLITE_URL)
            elif not url.startswith("sqlite+aiosqlite://"):
                raise ValueError(
                    "DATABASE_URL must start with sqlite+aiosqlite:// for DB_TYPE=sqlite"
                )
        elif self.db_type is DbType.POSTGRES and not url.startswith("postgresql+asyncpg://"):
            raise ValueError(
                "DATABASE_URL must start with postgresql+asyncpg:// for DB_TYPE=postgres"
            )
        if self.default_page_size > self.max_page_size:
            raise ValueError("DEFAULT_PAGE_SIZE must not exceed MAX_PAGE_SIZE")
        same_port = self.http_port == self.grpc_port != 0
        if self.http_enabled and same_port and self.http_host == self.grpc_host:
            raise ValueError("HTTP_PORT must differ from GRPC_PORT")
        return self
