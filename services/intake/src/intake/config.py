from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import ClassVar

from pydantic_settings import SettingsConfigDict

from intake.domain.casework import StepPolicy
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
    # Case work: how long each of a child's steps may take once open (Decree 56/2017: emergency measures within
    # 12 hours; the others the province's procedure), and how often intake-worker looks for missed deadlines.
    step_assess_s: float = 3 * 24 * 3600
    step_emergency_measures_s: float = 12 * 3600
    step_support_plan_s: float = 10 * 24 * 3600
    step_review_s: float = 30 * 24 * 3600
    step_close_s: float = 7 * 24 * 3600
    step_check_interval_s: float = 15.0

    def step_policy(self) -> StepPolicy:
        return StepPolicy(assess=timedelta(seconds=self.step_assess_s),
                          emergency_measures=timedelta(seconds=self.step_emergency_measures_s),
                          support_plan=timedelta(seconds=self.step_support_plan_s),
                          review=timedelta(seconds=self.step_review_s), close=timedelta(seconds=self.step_close_s))
