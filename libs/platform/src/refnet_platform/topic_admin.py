"""Create refnet's Kafka topics from the registry (the broker never auto-creates them).

Console script: `refnet-topics [--bootstrap HOST:PORT] [--replication-factor N] [--list]`.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Iterable

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from refnet_platform import kafka_clients
from refnet_platform.topics import DAY_MS, TOPICS, Topic


def ensure_topics(
    bootstrap: str,
    topics: Iterable[Topic] = TOPICS,
    replication_factor: int = 1,
    timeout_ms: int = 30_000,
    security: kafka_clients.KafkaSecurity | None = None,
) -> list[str]:
    """Create every missing topic; return the names this call created. Existing topics are left alone."""
    wanted = [NewTopic(t.name, num_partitions=t.partitions, replication_factor=replication_factor,
                       config={"retention.ms": str(t.retention_ms)}) for t in topics]
    if not wanted:
        return []
    admin = kafka_clients.admin(bootstrap, "refnet-topics", security)
    created = []
    for name, future in admin.create_topics(wanted, request_timeout=timeout_ms / 1000).items():
        try:
            future.result()
            created.append(name)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise RuntimeError(f"creating topic {name}: {exc.args[0].str()}") from None
    # CreateTopics returns before every partition has a leader; callers produce right after.
    _wait_for_leaders(admin, [t.topic for t in wanted], timeout_ms / 1000)
    return created


def _wait_for_leaders(admin: AdminClient, names: list[str], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        listed = admin.list_topics(timeout=max(deadline - time.monotonic(), 1)).topics
        waiting = [n for n in names if n not in listed or listed[n].error is not None
                   or any(p.leader < 0 for p in listed[n].partitions.values())]
        if not waiting:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"no leader yet for every partition of {', '.join(waiting)}")
        time.sleep(0.1)


def _print_registry() -> None:
    rows = [("topic", "partitions", "key", "retention", "writer", "lane")]
    for t in TOPICS:
        lane = "dead-letter" if t.dead_letter else "urgent" if t.urgent else ""
        rows.append((t.name, str(t.partitions), t.key, f"{t.retention_ms / DAY_MS:g}d", t.writer, lane))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="refnet-topics", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--bootstrap",
        default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"),
        help="Kafka bootstrap servers (default: $KAFKA_BOOTSTRAP_SERVERS or 127.0.0.1:9092)",
    )
    parser.add_argument("--replication-factor", type=int, default=1)
    parser.add_argument("--list", action="store_true", help="print the topic registry and exit")
    args = parser.parse_args(argv)
    if args.list:
        _print_registry()
        return
    created = ensure_topics(args.bootstrap, replication_factor=args.replication_factor)
    print(f"created {len(created)} of {len(TOPICS)} topics on {args.bootstrap}")
    for name in created:
        print(f"  {name}")


if __name__ == "__main__":
    main()
