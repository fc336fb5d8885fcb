"""ops-worker: learns facts from every event stream (for the console, overdue referrals and reports) and reads
the dead-letter topics into ops' table."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from ops.adapters import proto_mapping
from ops.bootstrap import bootstrap
from ops.config import MIGRATIONS, Settings
from ops.domain import commands
from refnet_platform.bus import MessageBus
from refnet_platform.runtime import run_worker
from refnet_platform.timers import Tick
from refnet_platform.topics import consumed_by

# Ops reads every event stream as an observer; the registry lists it among each topic's readers (its
# dead-letter topics it collects on a timer, not by subscribing).
TOPICS = consumed_by("ops-worker")


def ticks(settings: Settings) -> Callable[[MessageBus], tuple[Tick, ...]]:
    def make(bus: MessageBus) -> tuple[Tick, ...]:
        def prune() -> object:
            return bus.handle(commands.PruneSpans(datetime.now(UTC) - timedelta(hours=settings.span_retention_hours)))

        return (Tick("collect-dead-letters", 1.0, lambda: bus.handle(commands.CollectDeadLetters())),
                Tick("prune-spans", 600.0, prune))

    return make


def main() -> None:
    settings = Settings()
    run_worker(settings, MIGRATIONS, TOPICS, proto_mapping.CONSUMED_TYPES, proto_mapping.command_for, bootstrap,
               ticks=ticks(settings))
