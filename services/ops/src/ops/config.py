from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic_settings import SettingsConfigDict

from refnet_platform.settings import ServiceSettings

MIGRATIONS = Path(__file__).parent / "migrations"


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="OPS_", extra="ignore")
    service_name: ClassVar[str] = "ops"

    # The console (web page, JSON API for the refnet CLI, its own /metrics, /healthz, /readyz).
    console_host: str = "127.0.0.1"
    console_port: int = 8480
    # The OTLP/gRPC trace receiver. Processes export here (OTEL_EXPORTER_OTLP_ENDPOINT), or an
    # OpenTelemetry Collector forwards here in production.
    otlp_host: str = "127.0.0.1"
    otlp_port: int = 4317
    # Spans older than this are pruned.
    span_retention_hours: float = 72.0
    # The processes whose /metrics, /healthz and /readyz the console watches: "name=url,name=url".
    targets: str = ""
    # Seconds a referral may stay REQUESTED before ops lists it as overdue, by risk level. Used when the
    # referral event carries no accept-by deadline of its own.
    accept_within_s: dict[str, float] = {"emergency": 30 * 60, "high": 2 * 3600, "medium": 24 * 3600,
                                         "low": 72 * 3600}
    # Seconds an accepted referral may wait to start before ops lists it as stuck.
    start_within_s: float = 72 * 3600
    # How often the console samples every target, and how many samples it keeps for its charts.
    scrape_interval_s: float = 5.0
    scrape_history: int = 120
    # How often the page refreshes itself.
    refresh_s: float = 3.0

    # Signing in. People sign in to the console through the identity provider (the shared OIDC_ISSUER) as the
    # confidential client below (authorization code flow with PKCE); the console refuses to start without both.
    console_oidc_client_id: str = "refnet-console"
    console_oidc_client_secret: str | None = None
    # The client the refnet CLI signs in with (device authorization flow); the console tells `refnet login`.
    console_cli_client_id: str = "refnet-cli"
    # Signs the session cookie; unset, a random one per process start (everyone signs in again after a restart;
    # set it when more than one console replica serves the same people).
    console_session_secret: str | None = None
    # A console session ends this long after sign-in, whatever happens in between (a shift).
    console_session_max_s: float = 8 * 3600
    # Where people reach the console (e.g. https://ops.refnet.example), when a proxy sits in front: the sign-in
    # callback and the post-sign-out address are built from it, and an https URL makes the cookie Secure.
    # Unset, they come from the request itself.
    console_public_url: str | None = None

    def target_urls(self) -> dict[str, str]:
        pairs = (item.split("=", 1) for item in self.targets.split(",") if "=" in item)
        return {name.strip(): url.strip().rstrip("/") for name, url in pairs}
