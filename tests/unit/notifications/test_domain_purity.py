"""The notification domain stays pure: no gRPC, database, Kafka or generated protobuf code."""

from __future__ import annotations

import subprocess
import sys

FORBIDDEN = ("grpc", "sqlalchemy", "kafka", "aiokafka", "google.protobuf", "refnet.")


def test_domain_modules_import_no_infrastructure() -> None:
    code = (
        "import sys\n"
        "import notifications.domain.messages, notifications.domain.safe_contact, notifications.domain.retry\n"
        "import notifications.domain.notices, notifications.domain.events, notifications.domain.commands\n"
        "import notifications.domain.inbound_sms\n"
        f"bad = sorted(m for m in sys.modules if m.startswith({FORBIDDEN!r}) or m.endswith('_pb2'))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
