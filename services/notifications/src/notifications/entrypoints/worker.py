from __future__ import annotations

from notifications.adapters import proto_mapping
from notifications.adapters.directory_file import load_directory_file
from notifications.bootstrap import bootstrap
from notifications.config import MIGRATIONS, Settings
from notifications.domain.commands import DispatchDue
from refnet_platform.bus import MessageBus
from refnet_platform.consumer import Tick
from refnet_platform.runtime import run_worker

TOPICS = ["intake.cases-urgent.v1", "intake.cases.v1", "referral.referrals-urgent.v1", "referral.referrals.v1",
          "shelter.beds.v1"]


def main() -> None:
    settings = Settings()

    def ticks(bus: MessageBus) -> tuple[Tick, ...]:
        # The recipients first (as the api does), so the first events already reach their duty contacts.
        if settings.directory_file:
            bus.handle(load_directory_file(settings.directory_file))
        # Deliveries are rows with a due time: a restart loses none, a redelivered event adds none.
        return (Tick("dispatch", settings.dispatch_interval_s, lambda: bus.handle(DispatchDue())),)

    run_worker(settings, MIGRATIONS, TOPICS, proto_mapping.CONSUMED_TYPES, proto_mapping.command_for, bootstrap,
               ticks=ticks)
