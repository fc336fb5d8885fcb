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

    def target_urls(self) -> dict[str, str]:
        pairs = (item.split("=", 1) for item in self.targets.split(",") if "=" in item)
        return {name.strip(): url.strip().rstrip("/") for name, url in pairs}
