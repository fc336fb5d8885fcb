from __future__ import annotations

from referral.adapters import proto_mapping
from referral.bootstrap import bootstrap
from referral.config import MIGRATIONS, Settings
from referral.domain import commands
from refnet_platform.bus import MessageBus
from refnet_platform.runtime import run_worker
from refnet_platform.timers import Tick
from refnet_platform.topics import consumed_by

TOPICS = consumed_by("referral-worker")


def main() -> None:
    settings = Settings()

    def ticks(bus: MessageBus) -> tuple[Tick, ...]:
        # The deadlines live in referral's own rows: a restarted worker finds every overdue one.
        return (Tick("sla-expiry", settings.sla_check_interval_s, lambda: bus.handle(commands.ExpireOverdue())),)

    run_worker(settings, MIGRATIONS, TOPICS, proto_mapping.CONSUMED_TYPES, proto_mapping.command_for, bootstrap,
               ticks=ticks)
