from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import ClassVar

from pydantic_settings import SettingsConfigDict

from referral.domain.sla import SlaPolicy, Window
from refnet_platform.settings import ServiceSettings

MIGRATIONS = Path(__file__).parent / "migrations"


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="REFERRAL_", extra="ignore")
    service_name: ClassVar[str] = "referral"
    grpc_port: int = 50052
    # A directory file (HSDS JSON, or demo/directory.json's shape) loaded when the api starts:
    # providers not yet known are added; `referral-directory import` updates known ones.
    directory_file: Path | None = None
    # How long a shelter holds a bed for a referral before the hold expires.
    bed_hold_minutes: float = 120

    # SLAs (minutes): accept the referral within, then start the service within (from the request).
    accept_minutes_emergency: float = 15
    start_minutes_emergency: float = 60
    accept_minutes_high: float = 120
    start_minutes_high: float = 24 * 60
    accept_minutes_medium: float = 24 * 60
    start_minutes_medium: float = 3 * 24 * 60
    accept_minutes_low: float = 3 * 24 * 60
    start_minutes_low: float = 7 * 24 * 60
    # How often the worker looks for referrals past their deadline.
    sla_check_interval_s: float = 10

    # Intake's internal contact API (CaseContactService), called as role "service" with this client
    # certificate; the CA defaults to ca.pem in REFERRAL_TLS_CERT_DIR.
    intake_address: str = "127.0.0.1:50051"
    intake_client_cert: Path | None = None
    intake_client_key: Path | None = None
    intake_ca_file: Path | None = None
    # WatchReferrals: how often each stream looks for changes.
    watch_poll_interval_s: float = 1.0

    def sla_policy(self) -> SlaPolicy:
        def window(level: str) -> Window:
            return Window(accept=timedelta(minutes=getattr(self, f"accept_minutes_{level}")),
                          start=timedelta(minutes=getattr(self, f"start_minutes_{level}")))

        return SlaPolicy(emergency=window("emergency"), high=window("high"), medium=window("medium"),
                         low=window("low"))
