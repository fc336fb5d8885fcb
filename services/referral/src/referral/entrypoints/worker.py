from __future__ import annotations

from referral.adapters import proto_mapping
from referral.bootstrap import bootstrap
from referral.config import MIGRATIONS, Settings
from refnet_platform.runtime import run_worker

TOPICS = ["intake.cases-urgent.v1", "intake.cases.v1", "shelter.beds.v1"]


def main() -> None:
    run_worker(Settings(), MIGRATIONS, TOPICS, proto_mapping.CONSUMED_TYPES, proto_mapping.command_for, bootstrap)
