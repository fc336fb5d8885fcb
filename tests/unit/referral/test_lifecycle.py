"""The referral lifecycle and the SLA deadlines. Pure domain."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import product

import pytest

from referral.domain.model import ALLOWED, Case, ConsentState, Need, Referral, Status, Survivor
from referral.domain.sla import SlaPolicy, Window
from refnet_platform.errors import FailedPrecondition
from refnet_platform.vocabulary import RiskLevel, ServiceType

NOW = datetime(2026, 3, 3, 3, 0, tzinfo=UTC)
POLICY = SlaPolicy(emergency=Window(timedelta(minutes=15), timedelta(hours=1)),
                   high=Window(timedelta(hours=2), timedelta(hours=24)),
                   medium=Window(timedelta(hours=24), timedelta(days=3)),
                   low=Window(timedelta(days=3), timedelta(days=7)))


def referral(status: Status = Status.REQUESTED) -> Referral:
    return Referral("r1", "c1", "n1", ServiceType.LEGAL_AID, "p1", "22", status, False, RiskLevel.MEDIUM, "w1", NOW,
                    accept_by=NOW + timedelta(hours=24), start_by=NOW + timedelta(days=3))


def case(risk: RiskLevel = RiskLevel.MEDIUM, emergency: bool = False, child_deadline: datetime | None = None) -> Case:
    return Case("c1", "22", "06673", Survivor(), risk, emergency, "w1", child_deadline)


HAPPY_PATH = [Status.ACCEPTED, Status.IN_SERVICE, Status.COMPLETED]
EXPECTED = {
    Status.REQUESTED: {Status.ACCEPTED, Status.REJECTED, Status.CANCELLED, Status.EXPIRED},
    Status.ACCEPTED: {Status.IN_SERVICE, Status.CANCELLED, Status.FAILED, Status.EXPIRED},
    Status.IN_SERVICE: {Status.COMPLETED, Status.FAILED, Status.CANCELLED},
    Status.EXPIRED: {Status.ESCALATED},
}


def test_requested_accepted_in_service_completed() -> None:
    r = referral()
    for step, status in enumerate(HAPPY_PATH, start=1):
        previous = r.move_to(status, "", NOW + timedelta(minutes=step))
        assert r.status is status and r.version == 1 + step
        assert previous is [Status.REQUESTED, *HAPPY_PATH][step - 1]
    assert r.updated_at == NOW + timedelta(minutes=3)


@pytest.mark.parametrize(("start", "target"), list(product(Status, Status)))
def test_every_other_transition_is_a_failed_precondition(start: Status, target: Status) -> None:
    r = referral(start)
    if target in EXPECTED.get(start, set()):
        r.move_to(target, "why", NOW)
        assert (r.status, r.reason) == (target, "why")
    else:
        with pytest.raises(FailedPrecondition, match=f"is {start}; it cannot become {target}"):
            r.move_to(target, "", NOW)
        assert r.status is start and r.version == 1


def test_the_table_is_the_issue_s_lifecycle() -> None:
    assert {k: set(v) for k, v in ALLOWED.items()} == EXPECTED
    terminal = {Status.COMPLETED, Status.REJECTED, Status.CANCELLED, Status.ESCALATED, Status.FAILED}
    assert terminal.isdisjoint(ALLOWED)


def test_the_timer_watches_accept_by_then_start_by_then_nothing() -> None:
    r = referral()
    assert r.due_at == r.accept_by and r.missed_sla == ("accept", "not_accepted_in_time")
    r.move_to(Status.ACCEPTED, "", NOW)
    assert r.accept_by is None and r.due_at == r.start_by and r.missed_sla[0] == "start"
    r.move_to(Status.IN_SERVICE, "", NOW)
    assert r.start_by is None and r.due_at is None


@pytest.mark.parametrize(("risk", "emergency", "accept", "start"), [
    (RiskLevel.LOW, True, timedelta(minutes=15), timedelta(hours=1)),
    (RiskLevel.HIGH, False, timedelta(hours=2), timedelta(hours=24)),
    (RiskLevel.MEDIUM, False, timedelta(hours=24), timedelta(days=3)),
    (RiskLevel.LOW, False, timedelta(days=3), timedelta(days=7)),
])
def test_deadlines_by_risk(risk: RiskLevel, emergency: bool, accept: timedelta, start: timedelta) -> None:
    assert POLICY.deadlines(case(risk, emergency), NOW) == (NOW + accept, NOW + start)


def test_a_child_at_serious_risk_caps_both_deadlines_at_twelve_hours() -> None:
    deadline = NOW + timedelta(hours=12)
    assert POLICY.deadlines(case(RiskLevel.HIGH, child_deadline=deadline), NOW) == (NOW + timedelta(hours=2), deadline)
    assert POLICY.deadlines(case(RiskLevel.LOW, child_deadline=deadline), NOW) == (deadline, deadline)


def test_deadlines_only_come_forward() -> None:
    r = referral()
    assert r.tighten(NOW + timedelta(minutes=15), NOW + timedelta(hours=1), emergency=True, now=NOW)
    assert (r.accept_by, r.start_by, r.emergency) == (NOW + timedelta(minutes=15), NOW + timedelta(hours=1), True)
    assert not r.tighten(NOW + timedelta(days=3), NOW + timedelta(days=7), emergency=False, now=NOW)
    assert r.emergency


def test_consent_is_valid_until_withdrawn_or_expired() -> None:
    need = Need("n1", "c1", ServiceType.SHELTER)
    assert not need.consent_valid(NOW)
    assert need.give("c-01", frozenset(), NOW + timedelta(days=1), at_registration=True)
    assert need.consent_valid(NOW) and not need.consent_valid(NOW + timedelta(days=1))
    assert need.withdraw("c-01")
    assert not need.give("c-00", frozenset(), None, at_registration=True)  # a late registration
    assert need.consent is ConsentState.WITHDRAWN and not need.consent_valid(NOW)


def test_consent_events_out_of_order_end_in_the_right_state() -> None:
    # Intake's consent ids sort by time (UUIDv7); here "c-01" < "c-02".
    late_regrant = Need("n1", "c1", ServiceType.SHELTER)
    assert late_regrant.withdraw("c-02")  # the withdrawal of c-02 overtook...
    assert not late_regrant.give("c-02", frozenset(), None)  # ...c-02 itself: it stays withdrawn
    assert late_regrant.consent is ConsentState.WITHDRAWN
    stale_withdrawal = Need("n2", "c1", ServiceType.SHELTER)
    assert stale_withdrawal.give("c-02", frozenset({"police"}), None)  # a new consent overtook...
    assert not stale_withdrawal.withdraw("c-01")  # ...the withdrawal of the one before it
    assert stale_withdrawal.consent_valid(NOW) and stale_withdrawal.sectors == {"police"}
    assert stale_withdrawal.withdraw("c-02") and not stale_withdrawal.consent_valid(NOW)
    assert stale_withdrawal.give("c-03", frozenset(), None) and stale_withdrawal.consent_valid(NOW)
