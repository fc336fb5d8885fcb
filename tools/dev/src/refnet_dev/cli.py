"""`refnet-dev run` brings the whole network up on this machine; `refnet-dev demo` sends it cases."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path

from refnet_dev.kafka import KafkaBroker
from refnet_dev.network import DEFAULT_PORTS, SERVICES, Network
from refnet_dev.util import repo_root

KAFKA_PORT, KAFKA_CONTROLLER_PORT = 9092, 9093


def network_for(data_dir: Path, bootstrap: str) -> Network:
    return Network(bootstrap, data_dir, database_url=os.environ.get("DATABASE_URL"),
                   otlp_endpoint=os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"), ports=dict(DEFAULT_PORTS), ops=True)


def run(data_dir: Path) -> int:
    from refnet_platform.topic_admin import ensure_topics

    print(f"refnet: data in {data_dir} (delete it for a fresh start)", flush=True)
    broker = KafkaBroker(port=KAFKA_PORT, controller_port=KAFKA_CONTROLLER_PORT, workdir=data_dir / "kafka")
    network = network_for(data_dir, broker.bootstrap)
    stopping = False

    def on_signal(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        broker.start()
        created = ensure_topics(broker.bootstrap)
        print(f"kafka      {broker.bootstrap}  ({len(created)} topics created, broker pid {broker.pid})", flush=True)
        started = time.monotonic()
        network.start()
        print(f"services up in {time.monotonic() - started:.1f}s (mutual TLS; dev CA in {network.pki.dir})")
        for service in SERVICES:
            print(f"{service:<13} api {network.address(service)}   worker, relay   logs {data_dir / 'logs'}")
        print(f"ops        console {network.console_url}   traces (OTLP) 127.0.0.1:{network.port('ops-otlp')}")
        print("database   " + (os.environ.get("DATABASE_URL") or f"SQLite files in {data_dir}"))
        print("Ctrl-C stops everything. In another terminal: make demo, then .venv/bin/refnet status", flush=True)
        while not stopping:
            network.check_alive()
            time.sleep(0.5)
        return 0
    except RuntimeError as exc:
        print(f"refnet: {exc}", file=sys.stderr)
        return 1
    finally:
        print("stopping...", flush=True)
        network.stop()
        broker.stop()
        print("stopped; nothing left running", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(prog="refnet-dev", description=__doc__)
    parser.add_argument("command", choices=["run", "demo"])
    parser.add_argument("--data-dir", type=Path, default=repo_root() / "var")
    args = parser.parse_args()
    data_dir = args.data_dir.resolve()
    if args.command == "run":
        sys.exit(run(data_dir))
    from refnet_dev.demo import demo

    sys.exit(demo(network_for(data_dir, f"127.0.0.1:{KAFKA_PORT}")))
