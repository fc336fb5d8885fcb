"""The topic registry against the protos and the services: names, types, single writers."""

from __future__ import annotations

import importlib
import re
import subprocess
from pathlib import Path

import pytest
from google.protobuf import descriptor_pool

from refnet_platform.topics import TOPICS, Topic, dead_letter_topic, read_by, urgent_lane

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("intake", "referral", "shelter", "notifications")
NAME = re.compile(r"^[a-z]+\.[a-z][a-z-]*\.v\d+$")


def _import_all_protos() -> None:
    for path in (ROOT / "proto" / "gen" / "refnet").rglob("*_pb2.py"):
        module = ".".join(path.relative_to(ROOT / "proto" / "gen").with_suffix("").parts)
        importlib.import_module(module)


@pytest.mark.parametrize("topic", TOPICS, ids=lambda t: t.name)
def test_every_topic_is_named_keyed_and_typed(topic: Topic) -> None:
    _import_all_protos()
    assert NAME.match(topic.name), topic.name
    assert topic.partitions >= 1 and topic.key and topic.readers
    pool = descriptor_pool.Default()
    for type_name in topic.message_types:
        assert pool.FindMessageTypeByName(type_name), type_name


def test_event_topics_have_their_owner_as_the_one_writer() -> None:
    for topic in TOPICS:
        if topic.dead_letter:
            assert topic.writer == f"{topic.owner}-worker"
        elif topic.command:
            # A command topic: its owner is the one reader.
            assert topic.readers == (f"{topic.owner}-worker",), topic.name
        else:
            assert topic.writer == f"{topic.owner}-relay", topic.name


def test_every_urgent_lane_mirrors_its_stream() -> None:
    for topic in TOPICS:
        if topic.urgent:
            normal = topic.name.replace("-urgent", "")
            assert urgent_lane(normal) == topic.name
            twin = next(t for t in TOPICS if t.name == normal)
            assert (twin.message_types, twin.key, twin.writer) == (topic.message_types, topic.key, topic.writer)


@pytest.mark.parametrize("service", [*SERVICES, "ops"])
def test_each_worker_subscribes_to_what_the_registry_says_it_reads(service: str) -> None:
    worker = importlib.import_module(f"{service}.entrypoints.worker")
    assert sorted(worker.TOPICS) == sorted(t.name for t in read_by(f"{service}-worker") if not t.dead_letter)
    assert dead_letter_topic(service) == f"{service}.dlq.v1"


def test_protos_pass_buf_lint() -> None:
    result = subprocess.run([str(ROOT / "scripts" / "buf.sh"), "lint", "proto"], cwd=ROOT, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
