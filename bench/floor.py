"""The floor: a bare chain of Kafka forwarders with refnet's client libraries, settings and hop count.

refnet's measured path, intake's commit -> the first provider notice (both envelope times):

    intake relay (confluent-kafka producer) --intake.cases--> referral worker (aiokafka consumer, DB commit)
    -> referral outbox -> referral relay (confluent-kafka producer) --referral.referrals--> notifications
    worker (aiokafka consumer, DB commit; the notice is handed over and NotificationSent's time stamped
    when the worker records the hand-over)

That is two Kafka hops (produce -> consume) and four processes. The notifications relay publishes
NotificationSent after its time was stamped, so it is outside the measured path. The floor has the
same two Kafka hops (set --floor-hops to count differently):

    source (confluent-kafka, stamps t0) --bench.floor-0--> forwarder (aiokafka -> confluent-kafka)
    --bench.floor-1--> stamper (aiokafka; stamps t1) --bench.floor-out--> the bench's reader

Every producer is refnet's relay producer (acks=all, idempotent, linger 0); every consumer is configured
as refnet's workers (the same fetch_max_wait, read_committed, offsets committed after the batch is
forwarded); topics have 6 partitions; keys are the same three province codes. What refnet adds on top
(database commits, the outbox hand-off between worker and relay, handlers, the notice's delivery round)
is what the ratio shows.

Run as `python -m bench.floor SOURCE DEST --bootstrap HOST:PORT [--stamp]`: one forwarder process.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import subprocess
import sys
import time
from pathlib import Path

from confluent_kafka import Producer

from refnet_dev.util import wait_gone
from refnet_platform import kafka_clients
from refnet_platform.outbox import Sends
from refnet_platform.topic_admin import ensure_topics
from refnet_platform.topics import Topic

FLOOR_PARTITIONS = 6
OUT_TOPIC = "bench.floor-out"
KEYS = (b"22", b"42", b"92")


def hop_topic(i: int) -> str:
    return f"bench.floor-{i}"


class FloorChain:
    """`with FloorChain(bootstrap, hops, logs) as floor:` then `floor.send(floor.new_ids(n), rate)` in a thread."""

    def __init__(self, bootstrap: str, hops: int, log_dir: Path) -> None:
        if hops < 1:
            raise ValueError("the floor needs at least one hop")
        self.bootstrap = bootstrap
        self.hops = hops
        self.log_dir = log_dir
        self.processes: list[subprocess.Popen[bytes]] = []
        self.next_id = 0
        self._producer: Producer | None = None

    def __enter__(self) -> FloorChain:
        names = [hop_topic(i) for i in range(self.hops)] + [OUT_TOPIC]
        ensure_topics(self.bootstrap, [Topic(n, "province_code", FLOOR_PARTITIONS, "bench", ("bench",), ())
                                       for n in names])
        self.log_dir.mkdir(parents=True, exist_ok=True)
        try:
            for i in range(1, self.hops + 1):
                last = i == self.hops
                args = [hop_topic(i - 1), OUT_TOPIC if last else hop_topic(i), "--bootstrap", self.bootstrap]
                self._start(f"floor-{i}", [*args, "--stamp"] if last else args)
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _start(self, name: str, args: list[str]) -> None:
        with open(self.log_dir / f"{name}.log", "ab") as log:
            self.processes.append(subprocess.Popen([sys.executable, "-m", "bench.floor", *args], stdout=log,
                                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                                   start_new_session=True))

    def stop(self) -> None:
        if self._producer:
            self._producer.flush(10)
            self._producer = None
        for p in self.processes:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.processes:
            if not wait_gone(p.pid, 15) and p.poll() is None:
                p.kill()
            p.wait(timeout=10)
        self.processes = []

    def pids(self) -> dict[str, int]:
        """The forwarders by name (floor-1 .. floor-N, the last one stamps), for CPU accounting."""
        return {f"floor-{i}": p.pid for i, p in enumerate(self.processes, start=1) if p.poll() is None}

    def check_alive(self) -> None:
        for p in self.processes:
            if p.poll() is not None:
                raise RuntimeError(f"floor forwarder {p.args!r} exited with {p.returncode} (logs in {self.log_dir})")

    def new_ids(self, count: int) -> list[int]:
        ids = list(range(self.next_id, self.next_id + count))
        self.next_id += count
        return ids

    def send(self, ids: list[int], rate: float | None) -> None:
        """Sends one message per id at `rate` per second (None: as fast as possible). Like a relay, it
        flushes whenever nothing more is due yet. Blocking: run it in a thread."""
        producer = self._producer = self._producer or kafka_clients.producer(self.bootstrap, "bench-floor-source")
        sends = Sends(producer)
        start = time.monotonic()
        for k, ident in enumerate(ids):
            if rate:
                delay = start + k / rate - time.monotonic()
                if delay > 0:
                    sends.wait()
                    time.sleep(delay)
            sends.send(hop_topic(0), KEYS[ident % len(KEYS)], f"{ident} {time.time():.6f}".encode())
            if not rate and k % 500 == 499:
                sends.wait()
        sends.wait()


async def forward(bootstrap: str, source: str, dest: str, stamp: bool) -> None:
    producer = kafka_clients.producer(bootstrap, f"bench-{source}")
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    consumer = await kafka_clients.started_worker_consumer(source, bootstrap=bootstrap, group_id=f"bench-{source}")
    try:
        while not stopping.is_set():
            batch = await consumer.getmany(timeout_ms=200, max_records=100)
            if not batch:
                continue
            sends = Sends(producer)
            for records in batch.values():
                for record in records:
                    value = record.value or b""
                    if stamp:  # the end of the measured path: when the last hop took the message
                        value += f" {time.time():.6f}".encode()
                    sends.send(dest, record.key, value)
            await asyncio.to_thread(sends.wait)
            await consumer.commit({tp: records[-1].offset + 1 for tp, records in batch.items()})
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(consumer.stop(), timeout=10)
        producer.flush(10)


def main() -> None:
    parser = argparse.ArgumentParser(description="one forwarder of the bench's floor chain")
    parser.add_argument("source")
    parser.add_argument("dest")
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--stamp", action="store_true", help="append the time each message was taken")
    args = parser.parse_args()
    asyncio.run(forward(args.bootstrap, args.source, args.dest, args.stamp))


if __name__ == "__main__":
    main()
