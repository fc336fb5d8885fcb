from __future__ import annotations

from refnet_platform.runtime import run_worker
from refnet_platform.timers import Tick
from refnet_platform.topics import consumed_by
from shelter.adapters import proto_mapping
from shelter.bootstrap import bootstrap
from shelter.config import MIGRATIONS, Settings
from shelter.domain import commands

TOPICS = consumed_by("shelter-worker")


def main() -> None:
    settings = Settings()
    # Deadlines live in the reservations table, so a restarted worker expires whatever fell due meanwhile.
    run_worker(settings, MIGRATIONS, TOPICS, proto_mapping.CONSUMED_TYPES, proto_mapping.command_for, bootstrap,
               ticks=lambda bus: (Tick("expire-holds", settings.hold_check_interval_s,
                                       lambda: bus.handle(commands.ExpireHolds())),))
