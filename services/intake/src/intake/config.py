from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic_settings import SettingsConfigDict

from refnet_platform.settings import ServiceSettings

MIGRATIONS = Path(__file__).parent / "migrations"


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="INTAKE_", extra="ignore")
    service_name: ClassVar[str] = "intake"
    grpc_port: int = 50051
    # Base64 of a 32-byte key, or a file holding it: wraps every case's own key.
    master_key: str | None = None
    master_key_file: Path | None = None
    # Master keys that no longer wrap new case keys (or not yet: a new one staged before it becomes current)
    # but still unwrap those they wrapped: comma-separated base64, and/or a directory of files, a key each.
    previous_master_keys: str | None = None
    previous_master_keys_dir: Path | None = None
