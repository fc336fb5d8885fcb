"""Settings from the environment. Shared variables have fixed names; a service's own are prefixed.

Shared: KAFKA_BOOTSTRAP_SERVERS (and Kafka's security, see kafka_clients), DATABASE_URL, MIGRATION_DATABASE_URL,
OTEL_EXPORTER_OTLP_ENDPOINT, REFNET_DATA_DIR, REFNET_LOG_LEVEL, REFNET_RELAY_LEASE_S; the identity provider
people sign in to: OIDC_ISSUER, OIDC_AUDIENCE, OIDC_JWKS_URL, OIDC_LEEWAY_S. Per service (prefix INTAKE_,
REFERRAL_, ...): GRPC_HOST, GRPC_PORT, DATABASE_URL.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore")
    service_name: ClassVar[str] = "service"

    kafka_bootstrap_servers: str = Field("127.0.0.1:9092", validation_alias="KAFKA_BOOTSTRAP_SERVERS")
    shared_database_url: str | None = Field(None, validation_alias="DATABASE_URL")
    # The same database as the schema's owner, for migrations (the migration Job); DATABASE_URL is then the
    # service's own role, with DML on its schema only (refnet_platform.db_roles). Unset: one role does both.
    migration_database_url: str | None = Field(None, validation_alias="MIGRATION_DATABASE_URL")
    otlp_endpoint: str | None = Field(None, validation_alias="OTEL_EXPORTER_OTLP_ENDPOINT")
    data_dir: Path = Field(Path("var"), validation_alias="REFNET_DATA_DIR")
    log_level: str = Field("INFO", validation_alias="REFNET_LOG_LEVEL")

    # The identity provider (e.g. http://127.0.0.1:8180/realms/refnet); unset, no person can sign in.
    oidc_issuer: str | None = Field(None, validation_alias="OIDC_ISSUER")
    oidc_audience: str = Field("refnet-api", validation_alias="OIDC_AUDIENCE")
    oidc_jwks_url: str | None = Field(None, validation_alias="OIDC_JWKS_URL")
    oidc_leeway_s: float = Field(30.0, validation_alias="OIDC_LEEWAY_S")

    database_url: str | None = None
    # Connections each process keeps to PostgreSQL (a second pool of the same size may overflow).
    db_pool_size: int = Field(10, validation_alias="REFNET_DB_POOL_SIZE")
    grpc_host: str = "127.0.0.1"
    grpc_port: int = 0
    # Mutual TLS for the gRPC API: a directory with ca.pem, server.pem and server.key.
    tls_cert_dir: Path | None = None
    # Plain text only when explicitly asked for, for local development.
    allow_plaintext: bool = False
    # How long a relay's publishing lease lasts unrenewed: a standby relay takes over within this after the
    # active one dies (REFNET_RELAY_LEASE_S; longer than a GC pause, shorter than anyone should wait).
    relay_lease_s: float = Field(15.0, validation_alias="REFNET_RELAY_LEASE_S")
    # A consumer gives up on a record after this many attempts and dead-letters it.
    max_attempts: int = 3
    retry_backoff_s: float = 0.2

    @property
    def database(self) -> tuple[str, str | None]:
        """(url, schema): the service's own URL, else its own schema in DATABASE_URL, else a SQLite file."""
        if self.database_url:
            return self.database_url, None
        if self.shared_database_url:
            return self.shared_database_url, self.service_name
        return f"sqlite:///{(self.data_dir / f'{self.service_name}.db').resolve()}", None

    @property
    def grpc_address(self) -> str:
        return f"{self.grpc_host}:{self.grpc_port}"
