from __future__ import annotations

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
