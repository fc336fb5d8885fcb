"""The SMS door: each text the gateway delivered (signature checked by the entrypoint) is handled once, by its
gateway message id, and answered, if at all, in the sender's language through the same SMS gateway.

Who the sender is, is never decided here: the service that owns the record is asked with the number (shelter:
its staff phones; referral: providers' duty phones; intake: the numbers survivors gave, found by a keyed hash).
A number no owner knows gets no reply and leaves only a counter. A survivor's number is answered only to
confirm STOP or START, once, neutrally; nothing else is ever sent to it from here. Numbers and texts appear in
no log, metric, span or row: the row keeps a keyed hash of the number and the outcome's code.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from prometheus_client import Counter

from notifications.domain import commands
from notifications.domain.inbound_sms import (
    MAX_TEXT_CHARS,
    PROVIDER_KEYWORDS,
    SHELTER_KEYWORDS,
    Keyword,
    Parsed,
    ParseError,
    Reply,
    SenderLimit,
    beds_form,
    counts_text,
    keyword_word,
    parse,
    reason_word,
    reasons_text,
    render,
    reply_language,
)
from notifications.domain.messages import Channel, Language
from notifications.service_layer.unit_of_work import NotificationsUnitOfWork
from refnet_platform.clock import Clock
from refnet_platform.errors import InvalidArgument
from refnet_platform.phone import normalise_phone
from refnet_platform.vocabulary import DeclineReason, TargetGroup

log = logging.getLogger(__name__)

UowFactory = Callable[[], NotificationsUnitOfWork]
INBOUND = Counter("refnet_sms_inbound_total", "Texts the SMS door received, by outcome (codes only)", ["outcome"])
REPLY_NAMESPACE = uuid.UUID("6b1f3c52-6f1d-4c1e-9a55-0a7f1c2d9e10")


class Outcome(StrEnum):
    APPLIED = "applied"  # a staff report or answer went through
    NOT_APPLIED = "not_applied"  # understood, refused by the owner (the reply says why)
    NOT_UNDERSTOOD = "not_understood"  # from a known sender; the reply shows the right form
    STOPPED = "stopped"
    STARTED = "started"
    UNCHANGED = "unchanged"  # STOP when already stopped (START when not): confirmed once, so no reply
    UNKNOWN_SENDER = "unknown_sender"
    DUPLICATE = "duplicate"
    RATE_LIMITED = "rate_limited"
    TOO_LONG = "too_long"
    OWNER_UNAVAILABLE = "owner_unavailable"  # not recorded: the gateway is told to retry


class OwnerUnavailable(Exception):
    """The owning service did not answer: the text is recorded, unanswered (the gateway's retry is a duplicate)."""


@dataclass(frozen=True)
class ShelterAnswer:
    language: str
    free: list[tuple[TargetGroup, int]]  # the shelter's pools after the report
    problem: str = ""  # shelter's SmsReportProblem code, "" when applied


@dataclass(frozen=True)
class ProviderAnswer:
    language: str
    problem: str = ""  # "unknown_reference", "not_open"; "" when applied


@dataclass(frozen=True)
class SurvivorAnswer:
    changed: bool  # False: already stopped (or never stopped, for START)
    case_ids: list[str] = field(default_factory=list)


class SmsOwners(Protocol):
    """The owners of who a number is. Each answers None for a number it does not know."""

    def shelter_report(self, sender: str, parsed: Parsed | None) -> ShelterAnswer | None: ...

    def provider_answer(self, sender: str, message_id: str, parsed: Parsed | None) -> ProviderAnswer | None: ...

    def survivor_preference(self, sender: str, stop: bool) -> SurvivorAnswer | None: ...


@dataclass
class SmsDoor:
    owners: SmsOwners
    sender_key: Callable[[str], str]  # keyed hash of a normalised number
    limit: SenderLimit
    # A survivor is answered in the language of her notices (which told her to reply STOP), whatever word she used.
    survivor_language: Language = Language.VI
    monotonic: Callable[[], float] = time.monotonic


def sender_hasher(key: bytes) -> Callable[[str], str]:
    def sender_key(number: str) -> str:
        return hmac.new(key, normalise_phone(number).encode(), hashlib.sha256).hexdigest()[:32]

    return sender_key


@dataclass(frozen=True)
class SmsReply:
    """The answer to one text, sent by the SMS gateway adapter. reference: derived from the gateway's message id,
    so a retried send is one SMS (the gateway's Idempotency-Key)."""

    reference: str
    to: str
    text: str
    kind: Reply
    language: Language
    for_survivor: bool


@dataclass(frozen=True)
class Handled:
    outcome: Outcome
    reply: SmsReply | None = None


def receive_sms(cmd: commands.ReceiveSms, uow: UowFactory, door: SmsDoor, clock: Clock) -> Handled:
    _validate(cmd)
    key = door.sender_key(cmd.sender)
    with uow() as work:
        first = work.inbound.claim(cmd.message_id, key, cmd.received_at)
        work.commit()
    if not first:
        return _done(cmd, Outcome.DUPLICATE, None, uow, clock, record=False)
    if not door.limit.allow(key, door.monotonic()):
        return _done(cmd, Outcome.RATE_LIMITED, None, uow, clock)
    if len(cmd.text) > MAX_TEXT_CHARS:
        return _done(cmd, Outcome.TOO_LONG, None, uow, clock)
    parsed = parse(cmd.text)
    try:
        if parsed.keyword in (Keyword.STOP, Keyword.START):
            return _survivor(cmd, parsed, door, uow, clock)
        outcome, reply_kind, text, language = _staff(cmd, parsed, door)
    except OwnerUnavailable:
        return _done(cmd, Outcome.OWNER_UNAVAILABLE, None, uow, clock)
    if reply_kind is None:
        return _done(cmd, outcome, None, uow, clock)
    return _done(cmd, outcome, _reply(cmd, reply_kind, text, language, survivor=False), uow, clock)


def record_reply(cmd: commands.RecordSmsReply, uow: UowFactory) -> None:
    with uow() as work:
        work.inbound.reply_sent(cmd.message_id, cmd.status)
        work.commit()


def _validate(cmd: commands.ReceiveSms) -> None:
    if not cmd.message_id or len(cmd.message_id) > 128:
        raise InvalidArgument("message_id", "required, at most 128 characters")
    if not cmd.sender:
        raise InvalidArgument("from", "required")


def _survivor(cmd: commands.ReceiveSms, parsed: Parsed, door: SmsDoor, uow: UowFactory, clock: Clock) -> Handled:
    stop = parsed.keyword is Keyword.STOP
    answer = door.owners.survivor_preference(cmd.sender, stop)
    if answer is None:
        return _done(cmd, Outcome.UNKNOWN_SENDER, None, uow, clock)
    if stop:
        # At once: her SMS still due here are cancelled now, before intake's record reaches any later send.
        with uow() as work:
            for case_id in answer.case_ids:
                work.notices.cancel([due for due in work.notices.open_for_survivor(case_id)
                                     if due.message.channel is Channel.SMS], "sms_stopped", clock())
            work.commit()
    if not answer.changed:
        return _done(cmd, Outcome.UNCHANGED, None, uow, clock)
    language = door.survivor_language
    kind = Reply.STOPPED if stop else Reply.STARTED
    return _done(cmd, Outcome.STOPPED if stop else Outcome.STARTED,
                 _reply(cmd, kind, render(language, kind), language, survivor=True), uow, clock)


def _staff(cmd: commands.ReceiveSms, parsed: Parsed, door: SmsDoor
           ) -> tuple[Outcome, Reply | None, str, Language]:
    """A shelter's or a provider's text: the owner decides who the number is, and applies what is understood."""
    owners = door.owners
    if parsed.keyword in SHELTER_KEYWORDS or parsed.keyword is None:
        shelter = owners.shelter_report(cmd.sender, parsed if parsed.understood else None)
        if shelter is not None:
            return _shelter_reply(parsed, shelter)
    if parsed.keyword in PROVIDER_KEYWORDS or parsed.keyword is None:
        provider = owners.provider_answer(cmd.sender, cmd.message_id, parsed if parsed.understood else None)
        if provider is not None:
            return _provider_reply(parsed, provider)
    return Outcome.UNKNOWN_SENDER, None, "", Language.VI


_SHELTER_PROBLEMS = {"pool_required": Reply.POOL_REQUIRED, "unknown_pool": Reply.UNKNOWN_POOL,
                     "too_many_beds": Reply.TOO_MANY_BEDS, "unknown_reference": Reply.UNKNOWN_REFERENCE,
                     "not_held": Reply.NOT_HELD, "not_arrived": Reply.NOT_ARRIVED}
_PARSE_REPLIES = {ParseError.MISSING_COUNT: Reply.BAD_BEDS, ParseError.BAD_COUNT: Reply.BAD_BEDS,
                  ParseError.UNKNOWN_POOL: Reply.UNKNOWN_POOL, ParseError.REPEATED_POOL: Reply.BAD_BEDS,
                  ParseError.MISSING_REFERENCE: Reply.BAD_REFERENCE, ParseError.BAD_REFERENCE: Reply.BAD_REFERENCE,
                  ParseError.EXTRA_WORDS: Reply.BAD_REFERENCE, ParseError.MISSING_REASON: Reply.UNKNOWN_REASON,
                  ParseError.UNKNOWN_REASON: Reply.UNKNOWN_REASON}


def _shelter_reply(parsed: Parsed, shelter: ShelterAnswer) -> tuple[Outcome, Reply | None, str, Language]:
    language = reply_language(parsed, shelter.language)
    keyword = parsed.keyword or Keyword.BEDS
    values = {"form": beds_form([g for g, _ in shelter.free], language), "counts": counts_text(shelter.free, language),
              "ref": parsed.reference or "RF-xxxxxxxx", "keyword": keyword_word(keyword, language)}
    if parsed.keyword is None:
        kind, outcome = Reply.HELP_SHELTER, Outcome.NOT_UNDERSTOOD
    elif parsed.error is not None:
        kind, outcome = _PARSE_REPLIES[parsed.error], Outcome.NOT_UNDERSTOOD
    elif shelter.problem:
        kind, outcome = _SHELTER_PROBLEMS.get(shelter.problem, Reply.HELP_SHELTER), Outcome.NOT_APPLIED
    else:
        kind = {Keyword.BEDS: Reply.BEDS_SET, Keyword.ARRIVED: Reply.ARRIVED, Keyword.LEFT: Reply.LEFT}[keyword]
        outcome = Outcome.APPLIED
    return outcome, kind, render(language, kind, **values), language


def _provider_reply(parsed: Parsed, provider: ProviderAnswer) -> tuple[Outcome, Reply | None, str, Language]:
    language = reply_language(parsed, provider.language)
    keyword = parsed.keyword or Keyword.ACCEPT
    reason = parsed.reason
    values = {"ref": parsed.reference or "RF-xxxxxxxx", "keyword": keyword_word(keyword, language),
              "reasons": reasons_text(language),
              "reason": reason_word(reason, language) if isinstance(reason, DeclineReason) else ""}
    if parsed.keyword is None:
        kind, outcome = Reply.HELP_PROVIDER, Outcome.NOT_UNDERSTOOD
    elif parsed.error is not None:
        kind, outcome = _PARSE_REPLIES.get(parsed.error, Reply.HELP_PROVIDER), Outcome.NOT_UNDERSTOOD
    elif provider.problem:
        kind = Reply.UNKNOWN_REFERENCE if provider.problem == "unknown_reference" else Reply.NOT_OPEN
        outcome = Outcome.NOT_APPLIED
    else:
        kind = Reply.ACCEPTED if keyword is Keyword.ACCEPT else Reply.DECLINED
        outcome = Outcome.APPLIED
    return outcome, kind, render(language, kind, **values), language


def _reply(cmd: commands.ReceiveSms, kind: Reply, text: str, language: Language, survivor: bool) -> SmsReply:
    return SmsReply(str(uuid.uuid5(REPLY_NAMESPACE, cmd.message_id)), cmd.sender, text, kind, language, survivor)


def _done(cmd: commands.ReceiveSms, outcome: Outcome, reply: SmsReply | None, uow: UowFactory, clock: Clock,
          record: bool = True) -> Handled:
    if record:
        with uow() as work:
            if outcome in _FORGOTTEN:
                work.inbound.release(cmd.message_id)
            else:
                work.inbound.finish(cmd.message_id, str(outcome), str(reply.kind) if reply else "", clock())
            work.commit()
    INBOUND.labels(str(outcome)).inc()
    if outcome is not Outcome.UNKNOWN_SENDER:  # a number no one knows leaves only the count
        log.info("sms received", extra={"fields": {"message_id": cmd.message_id[:128], "outcome": str(outcome),
                                                   "replied": reply is not None}})
    return Handled(outcome, reply)


# Not kept: an owner that did not answer (so the gateway's retry is handled), and a number no owner knows (it
# leaves only the count; a repeat of it changes nothing either).
_FORGOTTEN = frozenset({Outcome.OWNER_UNAVAILABLE, Outcome.UNKNOWN_SENDER})


__all__: Sequence[str] = ("Handled", "Outcome", "OwnerUnavailable", "ProviderAnswer", "ShelterAnswer", "SmsDoor",
                          "SmsOwners", "SmsReply", "SurvivorAnswer", "receive_sms", "record_reply", "sender_hasher")
