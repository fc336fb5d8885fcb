from __future__ import annotations

from functools import partial

from intake.adapters import proto_mapping
from intake.adapters.crypto import NoMasterKey
from intake.bootstrap import bootstrap
from intake.config import MIGRATIONS, Settings
from refnet_platform.runtime import run_worker

TOPICS = ["referral.referrals-urgent.v1", "referral.referrals.v1"]


def main() -> None:
    run_worker(Settings(), MIGRATIONS, TOPICS, proto_mapping.CONSUMED_TYPES, proto_mapping.command_for,
               partial(bootstrap, vault=NoMasterKey()))
