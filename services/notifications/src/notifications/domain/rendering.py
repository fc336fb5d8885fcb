"""What staff read about an event, and the messages that carry it: the context a notice is rendered from (built
only from validated ids and closed vocabularies), the templates, and one outbound message per channel of a
staff contact. No I/O but the templates, no protobuf."""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache, lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo

from jinja2 import Environment, FileSystemLoader, StrictUndefined, Template, select_autoescape
from markupsafe import escape

from notifications.domain.messages import (
    KNOWN_REASONS,
    KNOWN_SLAS,
    KNOWN_STEPS,
    SILENT_REASONS,
    Addressee,
    BedUpdate,
    Channel,
    EmergencyCase,
    Escalation,
    Event,
    InvalidEvent,
    Language,
    NoticeKind,
    Role,
    StatusChange,
    StepOverdue,
    Urgency,
    event_referral_id,
    event_service,
    event_urgency,
)
from refnet_platform.vocabulary import (
    ServiceType,
)

VIETNAM = ZoneInfo("Asia/Ho_Chi_Minh")
TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates"
NOTICE_NAMESPACE = uuid.UUID("6b0f6d43-52c5-4c3c-9d0e-7d6f3b1e5a10")
# Compiled once: every notice goes through them (re's own cache still costs a lookup per call).
_PLAIN_URL = re.compile(r"https?://[A-Za-z0-9.:\[\]-]+(/[A-Za-z0-9._~/-]*)?")
_PROVINCE = re.compile(r"[0-9]{2}")
_BLANK_LINES = re.compile(r"\n{3,}")


# --- what they read ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Links:
    """Where staff act. partner_portal: the partner portal's base URL; operator_console: the
    hotline operators' screen. Both are configuration, never taken from an event."""

    partner_portal: str
    operator_console: str
    partner_api: str = "refnet.referral.v1.ReferralService"

    def __post_init__(self) -> None:
        for name in ("partner_portal", "operator_console"):
            value = getattr(self, name)
            if not _PLAIN_URL.fullmatch(value):
                raise ValueError(f"{name} must be a plain http(s) URL without query, got {value!r}")

    def referral(self, referral_id: str) -> str:
        return f"{self.partner_portal.rstrip('/')}/referrals/{referral_id}"

    def case(self, case_id: str, referral_id: str = "") -> str:
        url = f"{self.operator_console.rstrip('/')}/cases/{case_id}"
        return f"{url}/referrals/{referral_id}" if referral_id else url


def short_ref(referral_id: str) -> str:
    """RF-1A2B3C4D: the last 8 hex digits of the referral's UUID (random in UUIDv4 and v7), so a
    partner can match it by eye against the referral ids in its own list or search for it."""
    return _short("RF-", _uuid(referral_id, "referral_id"))


def short_case_ref(case_id: str) -> str:
    return _short("CS-", _uuid(case_id, "case_id"))


def _short(prefix: str, canonical: str) -> str:
    return prefix + canonical[-8:].upper()


def _uuid(value: str, field_name: str) -> str:
    try:
        parsed = uuid.UUID(value)
    except (ValueError, AttributeError, TypeError):
        raise InvalidEvent(field_name, "is not a UUID") from None
    canonical = str(parsed)
    if value.lower() != canonical:
        raise InvalidEvent(field_name, "is not a canonical UUID")
    return canonical


def _province(value: str) -> str:
    if not _PROVINCE.fullmatch(value or ""):
        raise InvalidEvent("province_code", "is not a two-digit province code")
    return value


def _code(value: str, known: frozenset[str]) -> str:
    if not value:
        return ""
    return value if value in known else "other"


def _local_time(value: datetime | None, field_name: str) -> str:
    if value is None:
        return ""
    if value.tzinfo is None:
        raise InvalidEvent(field_name, "is a naive datetime")
    return value.astimezone(VIETNAM).strftime("%H:%M %d/%m/%Y")


def context_for(event: Event, addressee: Addressee, links: Links) -> dict[str, object]:
    """The whole of what a template may see. Survivor notices see nothing about the event at all."""
    if addressee.kind.for_survivor:
        return {}
    ctx: dict[str, object] = {
        "urgency": str(event_urgency(event)),
        "province": _province(event.province_code),
    }
    if isinstance(event, StepOverdue):
        case_id = _uuid(event.case_id, "case_id")
        ctx.update(case_ref=_short("CS-", case_id), step=_code(event.step, KNOWN_STEPS),
                   deadline=_local_time(event.due_at, "due_at"), action_url=links.case(case_id))
        return ctx
    if isinstance(event, EmergencyCase):
        case_id = _uuid(event.case_id, "case_id")
        ctx.update(
            case_ref=_short("CS-", case_id),
            referral_count=max(0, int(event.referral_count)),
            action_url=links.case(case_id),
        )
        return ctx

    referral_id = _uuid(event.referral_id, "referral_id")
    case_id = _uuid(event.case_id, "case_id")
    service = event_service(event)
    ctx.update(
        ref=_short("RF-", referral_id),
        referral_id=referral_id,
        service=str(service) if service is not None else "",
    )
    if addressee.role is Role.PROVIDER:
        ctx["action_url"] = links.referral(referral_id)
        ctx["partner_api"] = links.partner_api
    else:
        ctx["case_ref"] = _short("CS-", case_id)
        ctx["action_url"] = links.case(case_id, referral_id)

    if isinstance(event, StatusChange):
        reason = _code(event.reason, KNOWN_REASONS)
        if addressee.role is Role.PROVIDER and reason in SILENT_REASONS:
            reason = ""  # a provider needs to know it is off, not what the survivor decided
        ctx.update(
            from_status=str(event.from_status) if event.from_status is not None else "",
            to_status=str(event.to_status),
            reason=reason,
        )
    elif isinstance(event, Escalation):
        ctx.update(
            reason=_code(event.reason, KNOWN_REASONS),
            sla=_code(event.sla, KNOWN_SLAS) or ("other" if event.sla_breached else ""),
            deadline=_local_time(event.deadline, "deadline"),
            rerouted=bool(event.rerouted),
        )
    elif isinstance(event, BedUpdate):
        ctx.update(
            reason=_code(event.reason, KNOWN_REASONS), hold_until=_local_time(event.hold_until, "hold_until")
        )
    return ctx


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str  # e-mail body, in-app body, webhook text
    sms: str  # one short line
    html: str  # e-mail alternative, autoescaped


@lru_cache(maxsize=1)
def template_environment() -> Environment:
    # auto_reload off: the templates ship with the code and never change under a running process, and
    # checking each one's modification time at every get_template was a stat per template per notice.
    return Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        undefined=StrictUndefined,
        autoescape=select_autoescape(
            enabled_extensions=("html.j2",), default_for_string=False, default=False
        ),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
        auto_reload=False,
    )


@dataclass(frozen=True)
class _Templates:
    notice: Template
    labels: object  # the language's _labels.j2 module
    email: Template


@cache
def _templates(kind: NoticeKind, language: Language) -> _Templates:
    env = template_environment()
    return _Templates(env.get_template(f"{language}/{kind}.j2"), env.get_template(f"{language}/_labels.j2").module,
                      env.get_template(f"{language}/_email.html.j2"))


# What differs from one event to the next and the templates only print: ids, links and times. A notice is
# rendered once per kind, language and the rest of its context (closed vocabularies: a few hundred shapes) with
# a mark where each of these goes, and each event's values are put in the marks' place (escaped in the HTML, as
# autoescape does): the templates are not run again for every referral.
_PER_EVENT = ("referral_id", "ref", "case_ref", "action_url", "deadline", "hold_until")
_MARKS = {name: f"\ue000{name}\ue001" for name in _PER_EVENT}  # private use: in no template or value
_SHAPES: dict[tuple[object, ...], Rendered | None] = {}  # None: the marks do not stand for the values there
_MAX_SHAPES = 4096
_UNSEEN = Rendered("", "", "", "")


def render(kind: NoticeKind, language: Language, context: Mapping[str, object], *, html: bool = True) -> Rendered:
    """Render ``{language}/{kind}.j2`` (blocks subject, text, sms) and, unless html is False (nobody is
    e-mailed), the HTML e-mail layout."""
    # A value with whitespace to fold (a line break, two spaces) is rendered with the rest of the context.
    per_event = {name: value for name in _PER_EVENT
                 if isinstance(value := context.get(name), str) and value and value == " ".join(value.split())}
    if not per_event:
        return _render(kind, language, context, html)
    key = (kind, language, html, tuple(per_event),
           tuple((name, value) for name, value in context.items() if name not in per_event))
    shape = _SHAPES.get(key, _UNSEEN)
    if shape is _UNSEEN:
        rendered = _render(kind, language, context, html)
        marked = _render(kind, language, {**context, **{name: _MARKS[name] for name in per_event}}, html)
        if len(_SHAPES) >= _MAX_SHAPES:
            _SHAPES.clear()
        # Kept only if filling it in gives what the templates give: a template that did more with a value than
        # print it is run for every event, as before.
        _SHAPES[key] = marked if _fill(marked, per_event) == rendered else None
        return rendered
    if shape is None:
        return _render(kind, language, context, html)
    return _fill(shape, per_event)


def _fill(shape: Rendered, values: Mapping[str, str]) -> Rendered:
    def put(marked: str, values: Mapping[str, str]) -> str:
        for name, value in values.items():
            marked = marked.replace(_MARKS[name], value)
        return marked
    escaped = {name: str(escape(value)) for name, value in values.items()} if shape.html else values
    return Rendered(subject=put(shape.subject, values), text=put(shape.text, values), sms=put(shape.sms, values),
                    html=put(shape.html, escaped))


def _render(kind: NoticeKind, language: Language, context: Mapping[str, object], html: bool) -> Rendered:
    templates = _templates(kind, language)
    template = templates.notice
    blocks = template.new_context({**context, "L": templates.labels})  # one context for the three blocks
    subject = " ".join("".join(template.blocks["subject"](blocks)).split())
    text = "\n".join(line.rstrip() for line in "".join(template.blocks["text"](blocks)).strip().splitlines())
    text = _BLANK_LINES.sub("\n\n", text)
    sms = " ".join("".join(template.blocks["sms"](blocks)).split())
    page = templates.email.render(
        subject=subject,
        paragraphs=[p.splitlines() for p in text.split("\n\n")],
        action_url=str(context.get("action_url", "")),
        L=templates.labels,
    ) if html else ""
    return Rendered(subject=subject, text=text, sms=sms, html=page)


@cache
def render_fixed(kind: NoticeKind, language: Language) -> Rendered:
    """A notice that sees nothing of its event (a survivor's): the same text every time, rendered once."""
    return render(kind, language, {})


# --- outbound messages -------------------------------------------------------------------------


@dataclass(frozen=True)
class Endpoint:
    channel: Channel
    address: str  # e-mail address, phone number, webhook URL, or in-app inbox id


@dataclass(frozen=True)
class Contact:
    """A staff recipient as the directory resolves it (provider duty contact, case worker,
    supervisor): their language and their endpoints, in order of preference."""

    recipient_id: str
    language: Language
    endpoints: tuple[Endpoint, ...]


@dataclass(frozen=True)
class OutboundMessage:
    """One notice for one recipient on one channel. notice_id is deterministic in
    (event, role, recipient, channel): a redelivered event yields the same id, so storing it under
    a unique key gives exactly one notice however often the event arrives."""

    notice_id: str
    event_id: str
    kind: NoticeKind
    role: Role
    recipient_id: str
    channel: Channel
    address: str
    language: Language
    subject: str
    body: str
    html: str = ""
    payload: Mapping[str, str] = field(default_factory=dict)  # webhook JSON (no personal data)
    priority: int = Urgency.ROUTINE.priority
    not_before: datetime | None = None  # set for survivor messages deferred to her safe window
    case_id: str = ""
    referral_id: str = ""
    province_code: str = ""
    service_type: ServiceType | None = None

    @property
    def for_survivor(self) -> bool:
        return self.role is Role.SURVIVOR


def notice_id(event_id: str, role: Role, recipient_id: str, channel: Channel | str) -> str:
    """Deterministic: the same (event, role, recipient, channel) always gives the same id."""
    return str(uuid.uuid5(NOTICE_NAMESPACE, f"{event_id}|{role}|{recipient_id}|{channel}"))


_PAYLOAD_KEYS = (
    "ref", "referral_id", "case_ref", "service", "urgency", "province", "from_status", "to_status",
    "reason", "sla", "deadline", "hold_until", "action_url", "partner_api", "step",
)


def staff_messages(
    event: Event, addressee: Addressee, contact: Contact, links: Links
) -> list[OutboundMessage]:
    """One message per channel the contact has (the first endpoint of each channel), rendered in
    the contact's language. Raises InvalidEvent for a malformed id, ValueError for a survivor."""
    if addressee.role is Role.SURVIVOR or addressee.kind.for_survivor:
        raise ValueError("survivor messages go through safe_contact.survivor_message")
    context = context_for(event, addressee, links)
    emailed = any(e.channel is Channel.EMAIL and e.address for e in contact.endpoints)
    rendered = render(addressee.kind, contact.language, context, html=emailed)
    payload_base = {k: str(context[k]) for k in _PAYLOAD_KEYS if k in context and context[k] != ""}
    messages: list[OutboundMessage] = []
    used: set[Channel] = set()
    for endpoint in contact.endpoints:
        if endpoint.channel in used or not endpoint.address:
            continue
        used.add(endpoint.channel)
        nid = notice_id(event.event_id, addressee.role, addressee.recipient_id, endpoint.channel)
        payload: dict[str, str] = {}
        if endpoint.channel is Channel.WEBHOOK:
            payload = {
                "notice_id": nid,
                "kind": str(addressee.kind),
                "language": str(contact.language),
                **payload_base,
                "subject": rendered.subject,
                "text": rendered.text,
            }
        messages.append(
            OutboundMessage(
                notice_id=nid,
                event_id=event.event_id,
                kind=addressee.kind,
                role=addressee.role,
                recipient_id=addressee.recipient_id,
                channel=endpoint.channel,
                address=endpoint.address,
                language=contact.language,
                subject=rendered.subject,
                body=rendered.sms if endpoint.channel is Channel.SMS else rendered.text,
                html=rendered.html if endpoint.channel is Channel.EMAIL else "",
                payload=payload,
                priority=event_urgency(event).priority,
                case_id=event.case_id,
                referral_id=event_referral_id(event),
                province_code=event.province_code,
                service_type=event_service(event),
            )
        )
    return messages


def by_priority(messages: Sequence[OutboundMessage]) -> list[OutboundMessage]:
    """Emergencies first; otherwise in the order given (stable)."""
    return sorted(messages, key=lambda m: m.priority)
