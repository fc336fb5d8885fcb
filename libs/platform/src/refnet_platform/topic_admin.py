"""Create refnet's Kafka topics from the registry (the broker never auto-creates them).

Console script: `refnet-topics [--bootstrap HOST:PORT] [--replication-factor N] [--list]`.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterable

import kafka.errors as errors
from kafka import KafkaAdminClient

from refnet_platform.kafka_security import kafka_python_options
from refnet_platform.topics import DAY_MS, TOPICS, Topic


def ensure_topics(
    bootstrap: str,
    topics: Iterable[Topic] = TOPICS,
    replication_factor: int = 1,
    timeout_ms: int = 30_000,
) -> list[str]:
    """Create every missing topic; return the names this call created. Existing topics are left alone."""
    wanted = {
        t.name: {
            "num_partitions": t.partitions,
            "replication_factor": replication_factor,
            "configs": {"retention.ms": str(t.retention_ms)},
        }
        for t in topics
    }
    if not wanted:
        return []
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="refnet-topics", **kafka_python_options())
    try:
        response = admin.create_topics(wanted, timeout_ms=timeout_ms, raise_errors=False)
        created = []
        for result in response["topics"]:
            error = errors.for_code(result["error_code"])
            if error is errors.NoError:
                created.append(result["name"])
            elif error is not errors.TopicAlreadyExistsError:
                raise error(f"creating topic {result['name']}: {result.get('error_message')}")
        # CreateTopics returns before every partition has a leader; callers produce right after.
        admin.wait_for_topics(list(wanted), timeout_ms=timeout_ms)
        return created
    finally:
        admin.close()


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
