from __future__ import annotations

from referral.adapters import proto_mapping
from referral.bootstrap import bootstrap
from referral.config import MIGRATIONS, Settings
from refnet_platform.consumer import dispatching
from refnet_platform.runtime import run_worker

TOPICS = ["intake.cases-urgent.v1", "intake.cases.v1", "shelter.beds.v1"]


def main() -> None:
    settings = Settings()
    run_worker(settings, MIGRATIONS, TOPICS, proto_mapping.CONSUMED_TYPES,
               lambda engine: dispatching(bootstrap(settings, engine), proto_mapping.command_for))
