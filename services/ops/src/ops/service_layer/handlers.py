"""ops' handlers: one per command. Facts from events, spans, dead letters and the console's questions."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol

from ops.domain import commands
from ops.domain.model import (
    ESCALATED,
    EXPIRED,
    OPEN_STATUSES,
    DeadLetterRecord,
    DeadLetterView,
    Overdue,
    ProvinceRow,
    ReferralTrack,
    SlaPolicy,
    Trace,
    build_traces,
    overdue,
)
from ops.domain.report import CallFact, CaseFact, IndicatorReport, Scope, build_report
from ops.service_layer.unit_of_work import OpsUnitOfWork
from refnet_platform.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from refnet_platform.topics import BY_NAME

UowFactory = Callable[[], OpsUnitOfWork]


class DeadLetterSource(Protocol):
    def read(self, positions: dict[tuple[str, int], int]) -> list[DeadLetterRecord]: ...


class Replayer(Protocol):
    def publish(self, topic: str, key: bytes, value: bytes, traceparent: str) -> int: ...


def _now() -> datetime:
    return datetime.now(UTC)


def _count(work: OpsUnitOfWork, seen: commands.Seen) -> None:
    work.facts.count_event(seen.at.replace(second=0, microsecond=0), seen.stream, seen.province_code)


# Facts from events. Each commits with the inbox row, so a redelivered record changes nothing.

def count_event(cmd: commands.CountEvent, uow: UowFactory) -> None:
    with uow() as work:
        _count(work, cmd.seen)
        work.commit()


def record_case(cmd: commands.RecordCase, uow: UowFactory) -> None:
    with uow() as work:
        _count(work, cmd.seen)
        work.facts.add_case(CaseFact(cmd.case_id, cmd.seen.province_code, cmd.seen.at, cmd.case_types, cmd.is_child,
                                     cmd.reportable, cmd.seen.at if cmd.emergency else None,
                                     handling_line=cmd.handling_line, sex=cmd.sex, age_band=cmd.age_band,
                                     disability=cmd.disability, imported=cmd.imported))
        work.commit()


def record_emergency(cmd: commands.RecordEmergency, uow: UowFactory) -> None:
    with uow() as work:
        _count(work, cmd.seen)
        work.facts.set_case_time(cmd.case_id, "emergency_at", cmd.seen.at)
        work.commit()


def record_case_closed(cmd: commands.RecordCaseClosed, uow: UowFactory) -> None:
    with uow() as work:
        _count(work, cmd.seen)
        work.facts.set_case_time(cmd.case_id, "closed_at", cmd.seen.at)
        work.commit()


def forget_case(cmd: commands.ForgetCase, uow: UowFactory) -> None:
    with uow() as work:
        _count(work, cmd.seen)
        work.traces.forget([cmd.case_id, *work.facts.referral_ids_of(cmd.case_id)])
        work.commit()


def record_call(cmd: commands.RecordCall, uow: UowFactory) -> None:
    with uow() as work:
        _count(work, cmd.seen)
        work.facts.add_call(CallFact(cmd.call_id, cmd.seen.province_code, cmd.seen.at, cmd.topic, cmd.handling_line,
                                     cmd.channel, cmd.outcome, cmd.imported))
        work.commit()


def record_referral_requested(cmd: commands.RecordReferralRequested, uow: UowFactory, policy: SlaPolicy) -> None:
    with uow() as work:
        _count(work, cmd.seen)
        accept_by = cmd.accept_by or policy.accept_by(cmd.seen.at, cmd.risk_level, cmd.emergency)
        existing = work.facts.referral(cmd.referral_id)
        track = ReferralTrack(cmd.referral_id, cmd.case_id, cmd.seen.province_code, cmd.sector, cmd.provider_id,
                              cmd.emergency, cmd.seen.at, accept_by, cmd.start_by, provider_type=cmd.provider_type)
        if existing is not None:  # a status change overtook the request (another partition): keep what it said
            track.status, track.reason = existing.status, existing.reason
            track.accepted_at, track.started_at = existing.accepted_at, existing.started_at
            track.completed_at, track.escalated_at = existing.completed_at, existing.escalated_at
            track.failed_at = existing.failed_at
        work.facts.save_referral(track)
        work.commit()


def record_referral_status(cmd: commands.RecordReferralStatus, uow: UowFactory) -> None:
    with uow() as work:
        _count(work, cmd.seen)
        track = work.facts.referral(cmd.referral_id)
        if track is None:  # the request has not arrived yet: remember the status on a placeholder
            track = ReferralTrack(cmd.referral_id, "", cmd.seen.province_code, "other", "", False, cmd.seen.at,
                                  cmd.seen.at)
        track.move(cmd.status, cmd.seen.at, cmd.reason)
        work.facts.save_referral(track)
        work.commit()


def record_capacity(cmd: commands.RecordCapacity, uow: UowFactory) -> None:
    with uow() as work:
        _count(work, cmd.seen)
        work.facts.save_capacity(cmd.shelter_id, cmd.target_group, cmd.seen.province_code, cmd.capacity,
                                 cmd.reserved, cmd.occupied, cmd.seen.at)
        work.commit()


def record_stay(cmd: commands.RecordStay, uow: UowFactory) -> None:
    with uow() as work:
        _count(work, cmd.seen)
        work.facts.save_stay(cmd.referral_id, cmd.case_id, cmd.seen.province_code, cmd.shelter_id, cmd.state,
                             cmd.seen.at)
        work.commit()


# Traces.

def store_spans(cmd: commands.StoreSpans, uow: UowFactory) -> None:
    with uow() as work:
        work.traces.add(cmd.spans, _now())
        work.commit()


def prune_spans(cmd: commands.PruneSpans, uow: UowFactory) -> int:
    with uow() as work:
        pruned = work.traces.prune(cmd.older_than)
        work.commit()
        return pruned


def get_trace(cmd: commands.GetTrace, uow: UowFactory) -> list[Trace]:
    """A case id or any of its referrals' ids finds every trace of the case. Within a remit, only a case ops
    knows to be in one of its provinces has traces to show; any other looks exactly like one with none."""
    with uow() as work:
        case_id = work.facts.case_of(cmd.subject_id.strip())
        spans = []
        if cmd.within is None or work.facts.province_of_case(case_id) in cmd.within:
            subjects = {cmd.subject_id.strip(), case_id, *work.facts.referral_ids_of(case_id)}
            spans = work.traces.spans(work.traces.trace_ids(subjects))
    if not spans:
        raise NotFound(f"no trace mentions {cmd.subject_id!r} (yet)")
    return build_traces(spans, cmd.include_database)


# Dead letters.

def collect_dead_letters(cmd: commands.CollectDeadLetters, uow: UowFactory, source: DeadLetterSource) -> int:
    with uow() as work:
        positions = work.letters.positions()
    letters = source.read(positions)
    if letters:
        with uow() as work:
            for letter in letters:
                work.letters.add(letter)
            work.commit()
    return len(letters)


def list_dead_letters(cmd: commands.ListDeadLetters, uow: UowFactory) -> list[DeadLetterView]:
    with uow() as work:
        return work.letters.list(cmd.consumer, cmd.include_replayed, cmd.limit, cmd.within)


def pending_dead_letters(cmd: commands.PendingDeadLetters, uow: UowFactory) -> dict[str, int]:
    with uow() as work:
        return work.letters.pending_by_consumer(cmd.within)


def replay_dead_letter(cmd: commands.ReplayDeadLetter, uow: UowFactory, replayer: Replayer) -> dict[str, object]:
    """Re-publishes the original record, byte for byte, to its original topic, once. Its envelope id is
    unchanged, so a consumer that did handle it (the others on that topic) skips it through its inbox."""
    with uow() as work:
        letter = work.letters.get(cmd.letter_id, for_update=True)
        if letter is None or (cmd.within is not None and letter.province_code not in cmd.within):
            raise NotFound(f"dead letter {cmd.letter_id} does not exist")
        previous = work.letters.replay_of(cmd.letter_id)
        if previous is not None:
            raise AlreadyExists(f"dead letter {cmd.letter_id} was already replayed by {previous.actor} "
                                f"at {previous.at:%Y-%m-%d %H:%M:%S}")
        target = BY_NAME.get(letter.original_topic)
        if target is None or target.dead_letter:
            raise FailedPrecondition(f"dead letter {cmd.letter_id} names no topic it could go back to "
                                     f"({letter.original_topic!r})")
        if letter.consumer not in target.readers:
            # A letter names its topic itself: only a topic its consumer group reads is a way back, never
            # another service's stream (a forged or corrupted letter must not become a write anywhere).
            raise FailedPrecondition(f"dead letter {cmd.letter_id}: {letter.consumer} does not read "
                                     f"{letter.original_topic}; it is replayed only to a topic its consumer reads")
        started = time.perf_counter()
        offset = replayer.publish(letter.original_topic, letter.original_key, letter.original_value,
                                  letter.traceparent)
        took_ms = (time.perf_counter() - started) * 1000
        work.letters.record_replay(cmd.letter_id, cmd.actor or "unknown", _now(), letter.original_topic,
                                   letter.event_id, offset, took_ms)
        work.commit()
    return {"letter_id": cmd.letter_id, "topic": letter.original_topic, "offset": offset,
            "event_id": letter.event_id, "took_ms": round(took_ms, 1)}


# The console's questions.

def list_overdue(cmd: commands.ListOverdue, uow: UowFactory, policy: SlaPolicy) -> list[Overdue]:
    now = cmd.now or _now()
    with uow() as work:
        tracks = work.facts.referrals(cmd.province_code, statuses=OPEN_STATUSES, within=cmd.within)
    found = [o for t in tracks if (o := overdue(t, policy, now))]
    return sorted(found, key=lambda o: o.late_by, reverse=True)


def list_escalations(cmd: commands.ListEscalations, uow: UowFactory) -> list[ReferralTrack]:
    with uow() as work:
        return work.facts.escalated(cmd.province_code, cmd.limit, cmd.within)


def province_summary(cmd: commands.ProvinceSummary, uow: UowFactory, policy: SlaPolicy) -> list[ProvinceRow]:
    now = cmd.now or _now()
    with uow() as work:
        cases = work.facts.cases_by_province(cmd.since)
        events = work.facts.events_by_province(cmd.since)
        open_referrals = work.facts.open_referrals_by_province(OPEN_STATUSES)
        tracks = work.facts.referrals(statuses=OPEN_STATUSES)
        escalated = work.facts.escalated("", 10_000)
        beds = work.facts.beds_free()
    late: dict[str, int] = {}
    for t in tracks:
        if overdue(t, policy, now):
            late[t.province_code] = late.get(t.province_code, 0) + 1
    escalations: dict[str, int] = {}
    for t in escalated:
        if t.escalated_at and t.escalated_at >= cmd.since and t.status in (EXPIRED, ESCALATED):
            escalations[t.province_code] = escalations.get(t.province_code, 0) + 1
    codes = sorted(code for code in {*cases, *events, *open_referrals, *late, *escalations, *beds} - {""}
                   if cmd.within is None or code in cmd.within)
    return [ProvinceRow(code, cases.get(code, 0), events.get(code, 0), open_referrals.get(code, 0),
                        late.get(code, 0), escalations.get(code, 0), beds.get(code)) for code in codes]


def throughput(cmd: commands.Throughput, uow: UowFactory) -> dict[str, list[tuple[datetime, int]]]:
    """Events per minute per producing service since `since`, every minute present (zeros included)."""
    with uow() as work:
        rows = work.facts.throughput(cmd.since, cmd.province_code, cmd.within)
    start = cmd.since.replace(second=0, microsecond=0)
    minutes = int((_now() - start) / timedelta(minutes=1)) + 1
    axis = [start + timedelta(minutes=i) for i in range(minutes)]
    counts: dict[str, dict[datetime, int]] = {}
    for minute, stream, n in rows:
        counts.setdefault(stream, {})[minute] = n
    return {stream: [(m, by_minute.get(m, 0)) for m in axis] for stream, by_minute in sorted(counts.items())}


def beds_free(cmd: commands.BedsFree, uow: UowFactory) -> dict[str, int]:
    with uow() as work:
        free = work.facts.beds_free()
    return {code: n for code, n in free.items() if cmd.within is None or code in cmd.within}


def report(cmd: commands.BuildReport, uow: UowFactory) -> IndicatorReport:
    """The report by handling line (the national line 111 is national people's only) or by place."""
    period = cmd.period
    try:
        scope = Scope(cmd.by, cmd.province_code)
    except ValueError as err:
        raise InvalidArgument("by", str(err)) from None
    if cmd.within is not None and (not scope.province_code or scope.province_code not in cmd.within):
        raise NotFound(f"no report for {cmd.province_code or 'the whole country'} within this remit")
    with uow() as work:
        cases = work.facts.case_facts(period.end_before)
        calls = work.facts.call_facts(scope.code, period.start_at, period.end_before)
        referrals = work.facts.referral_facts(period.start_at, period.end_before)
        stays = work.facts.stay_facts(period.start_at, period.end_before)
    return build_report(scope, period, cases, calls, referrals, stays, _now())
