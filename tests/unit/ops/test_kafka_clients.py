"""ops' own Kafka clients (dead-letter reader, replayer, inspector) connect as every refnet client does: with
mutual TLS when KAFKA_SECURITY_PROTOCOL=SSL (the only listener on Kubernetes), in plain text otherwise."""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from ops.adapters import kafka
from refnet_platform import kafka_security

TLS = {"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_CAFILE": "/etc/refnet/kafka/ca/ca.crt",
       "KAFKA_SSL_CERTFILE": "/etc/refnet/kafka/user/user.crt", "KAFKA_SSL_KEYFILE": "/etc/refnet/kafka/user/user.key"}


class FakeClient:
    """Stands in for kafka-python's consumer, producer and admin client: records how it was made."""

    made: list[tuple[str, dict[str, Any]]] = []

    def __init__(self, **options: Any) -> None:
        self.made.append((type(self).__name__, options))

    def partitions_for_topic(self, topic: str) -> set[int]:
        return set()

    def end_offsets(self, partitions: list[Any], timeout_ms: int) -> dict[Any, int]:
        return {}

    def send(self, topic: str, **record: Any) -> Any:
        return SimpleNamespace(get=lambda timeout: SimpleNamespace(offset=7))

    def describe_topics(self, names: list[str]) -> list[dict[str, Any]]:
        return []


class Consumer(FakeClient): ...


class Producer(FakeClient): ...


class Admin(FakeClient): ...


@pytest.fixture
def made(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[str, dict[str, Any]]]]:
    monkeypatch.setattr(kafka, "KafkaConsumer", Consumer)
    monkeypatch.setattr(kafka, "KafkaProducer", Producer)
    monkeypatch.setattr(kafka, "KafkaAdminClient", Admin)
    monkeypatch.setattr(FakeClient, "made", [])
    for name in TLS:
        monkeypatch.delenv(name, raising=False)
    kafka_security._security.cache_clear()
    yield FakeClient.made
    kafka_security._security.cache_clear()


def use_every_client() -> None:
    assert kafka.DeadLetterSource("broker:9093").read({}) == []
    assert kafka.Replayer("broker:9093").publish("intake.cases.v1", b"22", b"record", "") == 7
    assert [t.partitions for t in kafka.KafkaInspector("broker:9093").topics()]


def test_every_client_connects_with_the_process_certificate_under_tls(
        made: list[tuple[str, dict[str, Any]]], monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in TLS.items():
        monkeypatch.setenv(name, value)
    use_every_client()
    assert [kind for kind, _ in made] == ["Consumer", "Producer", "Admin"]
    for kind, options in made:
        assert options["bootstrap_servers"] == "broker:9093"
        assert (options["security_protocol"], options["ssl_cafile"], options["ssl_certfile"],
                options["ssl_keyfile"]) == ("SSL", TLS["KAFKA_SSL_CAFILE"], TLS["KAFKA_SSL_CERTFILE"],
                                            TLS["KAFKA_SSL_KEYFILE"]), kind


def test_clients_speak_plain_text_when_no_tls_is_configured(made: list[tuple[str, dict[str, Any]]]) -> None:
    use_every_client()
    assert len(made) == 3
    assert not [options for _, options in made if "security_protocol" in options or "ssl_cafile" in options]
