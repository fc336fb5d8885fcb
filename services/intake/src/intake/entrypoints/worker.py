from __future__ import annotations

from intake.adapters import proto_mapping
from intake.bootstrap import bootstrap
from intake.config import MIGRATIONS, Settings
from refnet_platform.runtime import run_worker

TOPICS = ["referral.referrals-urgent.v1", "referral.referrals.v1"]


def main() -> None:
    run_worker(Settings(), MIGRATIONS, TOPICS, proto_mapping.CONSUMED_TYPES, proto_mapping.command_for, bootstrap)
