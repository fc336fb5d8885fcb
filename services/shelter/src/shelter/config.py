from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import ClassVar

from pydantic_settings import SettingsConfigDict

from refnet_platform.settings import ServiceSettings

MIGRATIONS = Path(__file__).parent / "migrations"


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="SHELTER_", extra="ignore")
    service_name: ClassVar[str] = "shelter"
    grpc_port: int = 50053
    # A directory file (demo/directory.json shape) whose shelters are loaded when the api starts.
    directory_file: Path | None = None
    # Counts not confirmed for this long are shown as stale, offering no free beds.
    stale_after_hours: float = 24.0
    # How long a bed is held when a ReserveBed names no deadline.
    default_hold_hours: float = 4.0
    # How often the worker looks for holds past their deadline.
    hold_check_interval_s: float = 5.0
    # A watcher more than this many pool changes behind is disconnected (RESOURCE_EXHAUSTED).
    watch_max_pending: int = 1000
    # How long a new watcher waits for the api's bed-event feed to connect before UNAVAILABLE.
    watch_connect_timeout_s: float = 5.0

    @property
    def stale_after(self) -> timedelta:
        return timedelta(hours=self.stale_after_hours)

    @property
    def default_hold(self) -> timedelta:
        return timedelta(hours=self.default_hold_hours)
