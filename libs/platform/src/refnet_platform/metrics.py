"""What every refnet process measures, on its Prometheus endpoint (see health_http), and the ids its spans carry.

Label values are topics, event types, gRPC methods, status codes, province codes and coded kinds: never
personal data, and never unbounded ids (a case id is a span attribute, not a label).
"""

from __future__ import annotations

import threading
import time
from functools import lru_cache

from prometheus_client import Counter, Gauge, Histogram
from sqlalchemy import Engine, func, select

from refnet_platform.clock import system_clock
from refnet_platform.engine import read_connection
from refnet_platform.tables import outbox

EVENTS_CONSUMED = Counter(
    "refnet_events_consumed_total", "Kafka records a worker took off a topic, by outcome "
    "(handled, duplicate, unknown_type, dead_lettered)", ["topic", "type", "outcome"])
EVENTS_PRODUCED = Counter("refnet_events_produced_total", "Outbox rows a relay published", ["topic", "type"])
HANDLING_SECONDS = Histogram(
    "refnet_event_handling_seconds", "Time to handle one record, retries included", ["topic", "type"],
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
RETRIES = Counter("refnet_event_retries_total", "Handler attempts that failed and were retried", ["topic", "type"])
DEAD_LETTERS = Counter("refnet_dead_letters_total", "Records sent to the dead-letter topic", ["topic", "type"])
CONSUMER_LAG = Gauge("refnet_consumer_lag", "Records on the partition not yet consumed by this worker's group",
                     ["group", "topic", "partition"])
OUTBOX_BACKLOG = Gauge("refnet_outbox_backlog", "Outbox rows not yet published")
OUTBOX_OLDEST_AGE = Gauge("refnet_outbox_oldest_age_seconds", "Age of the oldest unpublished outbox row (0 if none)")
RELAY_ACTIVE = Gauge("refnet_relay_active", "1 while this relay holds its service's publishing lease, 0 on standby")
LOOP_HEARTBEAT = Gauge("refnet_loop_heartbeat_timestamp_seconds", "When the worker or relay loop last went round")
SLA_BREACHES = Counter("refnet_sla_breaches_total", "Deadlines missed, by province and coded kind",
                       ["province", "kind"])
ESCALATIONS = Counter("refnet_escalations_total", "Escalations raised, by province and coded kind",
                      ["province", "kind"])
GRPC_REQUESTS = Counter("refnet_grpc_requests_total", "gRPC calls handled, by method and status code",
                        ["method", "code"])
GRPC_SECONDS = Histogram("refnet_grpc_request_seconds", "gRPC call latency", ["method"],
                         buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))


# The per-record children of a worker or relay, looked up once: labels() takes a lock and builds a key at every call.
@lru_cache(maxsize=4096)
def consumed(topic: str, event_type: str, outcome: str) -> Counter:
    return EVENTS_CONSUMED.labels(topic, event_type, outcome)


@lru_cache(maxsize=4096)
def produced(topic: str, event_type: str) -> Counter:
    return EVENTS_PRODUCED.labels(topic, event_type)


@lru_cache(maxsize=4096)
def handling_seconds(topic: str, event_type: str) -> Histogram:
    return HANDLING_SECONDS.labels(topic, event_type)


def sla_breached(province_code: str, kind: str) -> None:
    """A service's timer found a deadline missed, e.g. kind="accept_by"."""
    SLA_BREACHES.labels(province_code or "unknown", kind).inc()


def escalated(province_code: str, kind: str) -> None:
    """A service escalated something, e.g. kind="referral_expired"."""
    ESCALATIONS.labels(province_code or "unknown", kind).inc()


_last_beat: float | None = None
# Each loop's own last beat, by its thread's name: a worker and a relay co-hosted in one process (runtime.cohost)
# each answer for their own loop, so one going round cannot hide the other's hang.
_beats: dict[str, float] = {}


def heartbeat() -> None:
    """The worker or relay loop went round: liveness (health_http) fails when this stops."""
    global _last_beat
    _last_beat = time.time()
    _beats[threading.current_thread().name] = _last_beat
    LOOP_HEARTBEAT.set(_last_beat)


def seconds_since_heartbeat(thread: str | None = None) -> float | None:
    """None until the loop (the one on `thread`, else any) first went round."""
    beat = _beats.get(thread) if thread else _last_beat
    return time.time() - beat if beat else None


def subject_ids(subject: str) -> dict[str, str]:
    """Span attributes from an envelope subject: "case/<id>" -> refnet.case_id, "referral/<id>" -> refnet.referral_id.
    Ids only, so a case's whole trace can be found by its id."""
    kind, _, ident = subject.partition("/")
    if ident and kind in ("case", "referral", "shelter"):
        return {f"refnet.{kind}_id": ident}
    return {}


def watch_outbox(engine: Engine) -> None:
    """The relay's backlog gauges, computed from the outbox table when scraped."""
    def backlog() -> float:
        with read_connection(engine) as conn:
            return float(conn.execute(select(func.count()).where(outbox.c.sent_at.is_(None))).scalar_one())

    def oldest_age() -> float:
        with read_connection(engine) as conn:
            oldest = conn.execute(select(func.min(outbox.c.created_at)).where(outbox.c.sent_at.is_(None))).scalar()
        if oldest is None:
            return 0.0
        if oldest.tzinfo is None:  # SQLite hands back naive datetimes
            oldest = oldest.replace(tzinfo=system_clock().tzinfo)
        return max(float((system_clock() - oldest).total_seconds()), 0.0)

    OUTBOX_BACKLOG.set_function(backlog)
    OUTBOX_OLDEST_AGE.set_function(oldest_age)


def grpc_call_done(method: str, code: str, started: float) -> None:
    """A gRPC call ended with the status code named `code`; `started`: its time.perf_counter() at the start."""
    GRPC_REQUESTS.labels(method, code).inc()
    GRPC_SECONDS.labels(method).observe(time.perf_counter() - started)
