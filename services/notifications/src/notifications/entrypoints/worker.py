from __future__ import annotations

from notifications.adapters import proto_mapping
from notifications.bootstrap import bootstrap
from notifications.config import MIGRATIONS, Settings
from refnet_platform.runtime import run_worker

TOPICS = ["intake.cases-urgent.v1", "intake.cases.v1", "referral.referrals-urgent.v1", "referral.referrals.v1", "shelter.beds.v1"]


def main() -> None:
    run_worker(Settings(), MIGRATIONS, TOPICS, proto_mapping.CONSUMED_TYPES, proto_mapping.command_for, bootstrap)
