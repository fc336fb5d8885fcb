"""The one Kafka client factory: the same settings shape becomes librdkafka's and aiokafka's options, and no
client anywhere in refnet is made around it (the bed feed once was, and never connected to a TLS broker)."""

from __future__ import annotations

import ast
import ssl
from pathlib import Path

import pytest
from pydantic import ValidationError

from refnet_platform import kafka_clients
from refnet_platform.kafka_clients import KafkaSecurity

ROOT = Path(__file__).resolve().parents[3]
TLS = {"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_CAFILE": "/etc/refnet/kafka/ca/ca.crt",
       "KAFKA_SSL_CERTFILE": "/etc/refnet/kafka/user/user.crt", "KAFKA_SSL_KEYFILE": "/etc/refnet/kafka/user/user.key"}
CLIENT_CLASSES = {"Producer", "Consumer", "AdminClient", "AIOKafkaConsumer", "AIOKafkaProducer", "KafkaConsumer",
                  "KafkaProducer", "KafkaAdminClient"}


@pytest.fixture(autouse=True)
def no_kafka_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (*TLS, "KAFKA_SASL_MECHANISM", "KAFKA_SASL_USERNAME", "KAFKA_SASL_PASSWORD"):
        monkeypatch.delenv(name, raising=False)


def test_plain_text_by_default() -> None:
    assert kafka_clients.librdkafka_config("b:9092", "intake-relay") == {
        "bootstrap.servers": "b:9092", "client.id": "intake-relay", "security.protocol": "PLAINTEXT"}
    assert kafka_clients.aiokafka_options("b:9092", "intake-worker") == {
        "bootstrap_servers": "b:9092", "client_id": "intake-worker", "security_protocol": "PLAINTEXT"}


def test_mutual_tls_from_the_environment_for_both_libraries(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in TLS.items():
        monkeypatch.setenv(name, value)
    config = kafka_clients.librdkafka_config("b:9093", "shelter-api-watch")
    assert (config["security.protocol"], config["ssl.ca.location"], config["ssl.certificate.location"],
            config["ssl.key.location"]) == ("SSL", *(TLS[k] for k in list(TLS)[1:]))
    made: dict[str, str | None] = {}

    def context(cafile: str | None, certfile: str | None, keyfile: str | None) -> ssl.SSLContext:
        made.update(cafile=cafile, certfile=certfile, keyfile=keyfile)
        return ssl.create_default_context()

    monkeypatch.setattr("aiokafka.helpers.create_ssl_context", context)
    options = kafka_clients.aiokafka_options("b:9093", "shelter-api-watch")
    assert options["security_protocol"] == "SSL" and isinstance(options["ssl_context"], ssl.SSLContext)
    assert made == {"cafile": TLS["KAFKA_SSL_CAFILE"], "certfile": TLS["KAFKA_SSL_CERTFILE"],
                    "keyfile": TLS["KAFKA_SSL_KEYFILE"]}


def test_sasl_over_tls_in_both_libraries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("aiokafka.helpers.create_ssl_context", lambda **paths: ssl.create_default_context())
    security = KafkaSecurity(KAFKA_SECURITY_PROTOCOL="SASL_SSL", KAFKA_SSL_CAFILE="/ca.crt",  # type: ignore[call-arg]
                             KAFKA_SASL_MECHANISM="SCRAM-SHA-512", KAFKA_SASL_USERNAME="intake-relay",
                             KAFKA_SASL_PASSWORD="s3cret")
    config = kafka_clients.librdkafka_config("b:9094", "intake-relay", security)
    assert {k: config[k] for k in ("security.protocol", "ssl.ca.location", "sasl.mechanism", "sasl.username",
                                   "sasl.password")} == {
        "security.protocol": "SASL_SSL", "ssl.ca.location": "/ca.crt", "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "intake-relay", "sasl.password": "s3cret"}
    options = kafka_clients.aiokafka_options("b:9094", "intake-worker", security)
    assert (options["security_protocol"], options["sasl_mechanism"], options["sasl_plain_username"],
            options["sasl_plain_password"]) == ("SASL_SSL", "SCRAM-SHA-512", "intake-relay", "s3cret")
    assert "s3cret" not in repr(security)  # the password is a secret: never in a log line or a traceback


def test_incomplete_settings_are_refused_naming_the_variables() -> None:
    with pytest.raises(ValidationError, match="KAFKA_SSL_CERTFILE and KAFKA_SSL_KEYFILE"):
        KafkaSecurity(KAFKA_SECURITY_PROTOCOL="SSL", KAFKA_SSL_CERTFILE="/c.crt")  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD"):
        KafkaSecurity(KAFKA_SECURITY_PROTOCOL="SASL_SSL")  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="KAFKA_SECURITY_PROTOCOL"):
        KafkaSecurity(KAFKA_SECURITY_PROTOCOL="TLS")  # type: ignore[call-arg]


def test_the_factory_options_win_only_where_a_caller_asks() -> None:
    config = kafka_clients.librdkafka_config("b:9092", "ops-replay", **{"linger.ms": 5})
    assert config["linger.ms"] == 5 and config["security.protocol"] == "PLAINTEXT"


def test_no_kafka_client_is_made_outside_the_factory() -> None:
    """Every Producer/Consumer/AdminClient (either library) in refnet's code is constructed in kafka_clients."""
    factory = ROOT / "libs/platform/src/refnet_platform/kafka_clients.py"
    offenders = []
    for folder in ("libs", "services", "tools", "bench", "tests"):
        for path in (ROOT / folder).rglob("*.py"):
            if path == factory or ".venv" in path.parts:
                continue
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Call):
                    name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
                    if name in CLIENT_CLASSES:
                        offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} {name}(...)")
    assert offenders == []


def test_kafka_python_is_gone() -> None:
    for path in [ROOT / "constraints.txt", *ROOT.glob("**/pyproject.toml")]:
        if ".venv" not in path.parts and ".cache" not in path.parts:
            assert "kafka-python" not in path.read_text(), path
