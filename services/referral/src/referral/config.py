from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic_settings import SettingsConfigDict

from refnet_platform.settings import ServiceSettings

MIGRATIONS = Path(__file__).parent / "migrations"


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="REFERRAL_", extra="ignore")
    service_name: ClassVar[str] = "referral"
    grpc_port: int = 50052
    # A directory file (demo/directory.json shape) loaded into the directory when the api starts.
    directory_file: Path | None = None
    # How long a shelter holds a bed for a referral before the hold expires.
    bed_hold_minutes: int = 120
