from __future__ import annotations

from functools import partial

from intake.adapters import proto_mapping
from intake.adapters.crypto import NoMasterKey
from intake.bootstrap import bootstrap
from intake.config import MIGRATIONS, Settings
from refnet_platform.runtime import run_worker
from refnet_platform.topics import consumed_by

TOPICS = consumed_by("intake-worker")


def main() -> None:
    run_worker(Settings(), MIGRATIONS, TOPICS, proto_mapping.CONSUMED_TYPES, proto_mapping.command_for,
               partial(bootstrap, vault=NoMasterKey()))
