"""Figures only ops knows, served on the console's /metrics beside the process's own."""

from __future__ import annotations

from typing import Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from ops.domain import commands
from refnet_platform.bus import MessageBus


class OpsMetrics(Collector):
    """Figures only ops knows, computed from its tables at scrape time."""

    def __init__(self, bus: MessageBus) -> None:
        self.bus = bus

    def collect(self) -> Any:
        beds = GaugeMetricFamily("refnet_beds_free", "Shelter beds free, from shelter's bed events",
                                 labels=["province"])
        for province, free in self.bus.handle(commands.BedsFree()).items():
            beds.add_metric([province], free)
        yield beds
        late = GaugeMetricFamily("refnet_referrals_overdue", "Referrals past their accept-by or start-by deadline",
                                 labels=["province"])
        counts: dict[str, int] = {}
        for item in self.bus.handle(commands.ListOverdue()):
            counts[item.track.province_code] = counts.get(item.track.province_code, 0) + 1
        for province, n in counts.items():
            late.add_metric([province], n)
        yield late
        letters = GaugeMetricFamily("refnet_dead_letters_pending", "Dead letters not yet replayed",
                                    labels=["consumer"])
        for consumer, n in self.bus.handle(commands.PendingDeadLetters()).items():
            letters.add_metric([consumer], n)
        yield letters
