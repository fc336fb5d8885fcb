"""`refnet-dev run` brings the whole network up on this machine; `refnet-dev demo` sends it cases;
`refnet-dev cert ROLE ID` issues a development client certificate from the same CA."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from refnet_dev.certs import DevPki
from refnet_dev.kafka import KafkaBroker
from refnet_dev.keycloak import DEV_PASSWORD, Keycloak
from refnet_dev.network import COHOST, DEFAULT_PORTS, SERVICES, Network
from refnet_dev.util import repo_root
from refnet_platform.caller import MACHINE_ROLES
from refnet_platform.stopping import Stopping

KAFKA_PORT, KAFKA_CONTROLLER_PORT = 9092, 9093
KEYCLOAK_PORT = 8180
DEMO_PEOPLE = ("qn-operator", "ht-operator", "national-111-operator", "qn-supervisor", "ht-supervisor",
               "qn-police-baichay", "qn-spc-staff", "ops-oncall")


def network_for(data_dir: Path, bootstrap: str, cohost: str | None = None) -> Network:
    return Network(bootstrap, data_dir, database_url=os.environ.get("DATABASE_URL"), cohost=cohost,
                   otlp_endpoint=os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"), ports=dict(DEFAULT_PORTS), ops=True,
                   web=True, keycloak=Keycloak(port=KEYCLOAK_PORT),
                   # The SMS door only when a gateway is set up to sign its texts (it will not start without).
                   sms=bool(os.environ.get("NOTIFICATIONS_SMS_INBOUND_SECRET")))


def run(data_dir: Path, cohost: str | None = None) -> int:
    from refnet_platform.topic_admin import ensure_topics

    print(f"refnet: data in {data_dir} (delete it for a fresh start)", flush=True)
    broker = KafkaBroker(port=KAFKA_PORT, controller_port=KAFKA_CONTROLLER_PORT, workdir=data_dir / "kafka")
    network = network_for(data_dir, broker.bootstrap, cohost)
    keycloak = network.keycloak
    assert keycloak is not None
    stopping = Stopping()
    stopping.on_signals()
    try:
        broker.start()
        created = ensure_topics(broker.bootstrap)
        print(f"kafka      {broker.bootstrap}  ({len(created)} topics created, broker pid {broker.pid})", flush=True)
        keycloak.start()
        print(f"keycloak   {keycloak.issuer}  (sign in as {', '.join(DEMO_PEOPLE)}; "
              f"password {DEV_PASSWORD}; admin console {keycloak.url}/admin, admin / {DEV_PASSWORD})", flush=True)
        started = time.monotonic()
        network.start()
        print(f"services up in {time.monotonic() - started:.1f}s (mutual TLS; dev CA in {network.pki.dir})")
        for service in SERVICES:
            processes = ", ".join(name for name in network.process_names() if name.startswith(f"{service}-"))
            print(f"{service:<13} api {network.address(service)}   {processes}   logs {data_dir / 'logs'}")
        print(f"ops        console {network.console_url}   traces (OTLP) 127.0.0.1:{network.port('ops-otlp')}")
        print(f"web        {network.web_url}   (operators /cases, partner portal /referrals, shelters /shelter)")
        if network.sms:
            print(f"sms door   {network.sms_url}/sms/inbound   (texts from the SMS gateway, signed)")
        print("database   " + (os.environ.get("DATABASE_URL") or f"SQLite files in {data_dir}"))
        print("Ctrl-C stops everything. In another terminal: make demo, then .venv/bin/refnet status", flush=True)
        while not stopping.wait(0.5):
            network.check_alive()
        return 0
    except RuntimeError as exc:
        print(f"refnet: {exc}", file=sys.stderr)
        return 1
    finally:
        print("stopping...", flush=True)
        network.stop()
        keycloak.stop()
        broker.stop()
        print("stopped; nothing left running", flush=True)


def cert(data_dir: Path, role: str, subject_id: str) -> int:
    """A development client certificate for a machine, and the grpcurl line that uses it."""
    if role not in MACHINE_ROLES:
        roles = ", ".join(sorted(MACHINE_ROLES))
        print(f"refnet-dev cert: ROLE must be one of {roles} (people sign in through Keycloak instead)",
              file=sys.stderr)
        return 2
    pki = DevPki(data_dir / "certs").ensure()
    certificate, key = pki.client(subject_id, role)
    print(f"certificate {certificate}\nkey         {key}\nCA          {pki.ca}")
    token = ' -H "authorization: Bearer $TOKEN"' if role == "gateway" else ""
    print("grpcurl (with make run going):")
    print(f"  grpcurl -cacert {pki.ca} -cert {certificate} -key {key}{token} "
          f"127.0.0.1:{DEFAULT_PORTS['referral']} list")
    if token:
        print(f"  (TOKEN: a person's access token, e.g. from {Keycloak(port=KEYCLOAK_PORT).token_endpoint})")
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(prog="refnet-dev", description=__doc__)
    parser.add_argument("command", choices=["run", "demo", "cert"])
    parser.add_argument("args", nargs="*", help="for cert: ROLE ID (e.g. cert agency qn-police-baichay)")
    parser.add_argument("--data-dir", type=Path, default=repo_root() / "var")
    parser.add_argument("--cohost", choices=[k for k in COHOST if k], default=os.environ.get("REFNET_COHOST") or None,
                        help="run: each service's worker and relay (worker+relay), or all three roles (all), in one "
                             "process: fewer interpreters on a small machine (default: a process per role)")
    args = parser.parse_args()
    data_dir = args.data_dir.resolve()
    if args.command == "run":
        sys.exit(run(data_dir, args.cohost))
    if args.command == "cert":
        if len(args.args) != 2:
            parser.error("cert takes ROLE ID, e.g. refnet-dev cert agency qn-police-baichay")
        sys.exit(cert(data_dir, *args.args))
    from refnet_dev.demo import demo

    sys.exit(demo(network_for(data_dir, f"127.0.0.1:{KAFKA_PORT}")))
