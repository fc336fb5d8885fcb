from __future__ import annotations

from refnet_platform.runtime import run_worker
from shelter.adapters import proto_mapping
from shelter.bootstrap import bootstrap
from shelter.config import MIGRATIONS, Settings

TOPICS = ["shelter.bed-commands.v1"]


def main() -> None:
    run_worker(Settings(), MIGRATIONS, TOPICS, proto_mapping.CONSUMED_TYPES, proto_mapping.command_for, bootstrap)
