from __future__ import annotations

from functools import partial

from intake.adapters import proto_mapping
from intake.adapters.crypto import NoMasterKey
from intake.bootstrap import bootstrap
from intake.config import MIGRATIONS, Settings
from intake.domain import commands
from refnet_platform.bus import MessageBus
from refnet_platform.runtime import run_worker
from refnet_platform.timers import Tick
from refnet_platform.topics import consumed_by

TOPICS = consumed_by("intake-worker")


def main() -> None:
    settings = Settings()

    def ticks(bus: MessageBus) -> tuple[Tick, ...]:
        # A child's step deadlines live in intake's own rows (case_steps): a restarted worker finds every one missed.
        return (Tick("case-step-deadlines", settings.step_check_interval_s,
                     lambda: bus.handle(commands.ExpireOverdueSteps())),)

    run_worker(settings, MIGRATIONS, TOPICS, proto_mapping.CONSUMED_TYPES, proto_mapping.command_for,
               partial(bootstrap, vault=NoMasterKey()), ticks=ticks)
