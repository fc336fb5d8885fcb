from __future__ import annotations

from functools import partial

from notifications.adapters import proto_mapping
from notifications.adapters.directory_file import load_directory_file
from notifications.bootstrap import bootstrap
from notifications.config import MIGRATIONS, Settings
from notifications.domain.commands import DispatchDue
from refnet_platform.bus import MessageBus
from refnet_platform.runtime import run_worker
from refnet_platform.timers import Tick, Wakeup
from refnet_platform.topics import consumed_by

TOPICS = consumed_by("notifications-worker")
# Routine deliveries made due go out in a round at most this long after the last round began: at a few
# referrals a second each commit woke a round of its own (a claim and a record for each lane that had work, a
# few ms of CPU), many rounds for one e-mail each. An emergency's delivery wakes a round at once.
ROUTINE_ROUND_SPACING_S = 0.05


def dispatch_tick(settings: Settings, bus: MessageBus, wakeup: Wakeup) -> Tick:
    """Sends what is due: soon when the handlers set `wakeup` (they recorded deliveries due now; an emergency's at
    once), and every interval for retries and deferred notices. Deliveries are rows with a due time: a restart
    loses none."""
    return Tick("dispatch", settings.dispatch_interval_s, lambda: bus.handle(DispatchDue()), wakeup,
                spacing_s=ROUTINE_ROUND_SPACING_S)


def main() -> None:
    settings = Settings()
    wakeup = Wakeup()

    def ticks(bus: MessageBus) -> tuple[Tick, ...]:
        # The recipients first (as the api does), so the first events already reach their duty contacts.
        if settings.directory_file:
            bus.handle(load_directory_file(settings.directory_file))
        return (dispatch_tick(settings, bus, wakeup),)

    run_worker(settings, MIGRATIONS, TOPICS, proto_mapping.CONSUMED_TYPES, proto_mapping.command_for,
               partial(bootstrap, wakeup=wakeup), ticks=ticks)
