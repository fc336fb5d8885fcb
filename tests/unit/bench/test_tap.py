"""The tap's timeline: a case's way to its first provider notice, split where the relays sent its events."""

from __future__ import annotations

from google.protobuf.timestamp_pb2 import Timestamp

from bench.tap import Tap
from refnet.common.v1.envelope_pb2 import EventEnvelope
from refnet.intake.v1.events_pb2 import CaseRegistered
from refnet.notifications.v1.events_pb2 import NotificationSent
from refnet.referral.v1.events_pb2 import ReferralRequested


def _record(event_id: str, payload: object, committed_s: float) -> bytes:
    envelope = EventEnvelope(id=event_id, type=payload.DESCRIPTOR.full_name,  # type: ignore[attr-defined]
                             time=Timestamp(seconds=int(committed_s), nanos=round(committed_s % 1 * 1e9)))
    envelope.data.Pack(payload)  # type: ignore[arg-type]
    return envelope.SerializeToString()


def test_a_case_path_is_its_commits_and_the_relays_sends_in_order() -> None:
    tap = Tap("127.0.0.1:9", case_worker_id="cw-1")
    tap._event(_record("e1", CaseRegistered(case_id="c1"), 100.000), sent=100.010)
    # Two referrals: the path goes through the first one referral committed, whichever was read first.
    tap._event(_record("e2", ReferralRequested(case_id="c1"), 100.050), sent=100.090)
    tap._event(_record("e3", ReferralRequested(case_id="c1"), 100.030), sent=100.060)
    assert tap.timeline.path("c1") is None  # no notice yet
    tap._event(_record("e4", NotificationSent(case_id="c1", role="provider"), 100.100), sent=100.200)
    tap._event(_record("e5", NotificationSent(case_id="c1", role="provider"), 100.080), sent=100.150)
    assert tap.timeline.path("c1") == (100.000, 100.010, 100.030, 100.060, 100.080)


def test_a_redelivered_event_changes_nothing() -> None:
    tap = Tap("127.0.0.1:9", case_worker_id="cw-1")
    tap._event(_record("e1", CaseRegistered(case_id="c1"), 100.0), sent=100.01)
    tap._event(_record("e1", CaseRegistered(case_id="c1"), 100.0), sent=105.0)  # sent again after a relay crash
    assert tap.timeline.published["c1"] == 100.01


def test_an_envelope_time_is_its_nanoseconds_in_seconds() -> None:
    # seconds + nanos / 1e9 rounds differently here: the tap's figures must stay the timestamp's own.
    stamp = Timestamp(seconds=1775241764, nanos=639020657)
    envelope = EventEnvelope(id="e1", type=CaseRegistered.DESCRIPTOR.full_name, time=stamp)
    envelope.data.Pack(CaseRegistered(case_id="c1", emergency=True))
    tap = Tap("127.0.0.1:9", case_worker_id="cw-1")
    tap._event(envelope.SerializeToString(), sent=1775241765.0)
    assert tap.timeline.committed["c1"] == stamp.ToNanoseconds() / 1e9
    assert tap.timeline.emergency == {"c1"}
