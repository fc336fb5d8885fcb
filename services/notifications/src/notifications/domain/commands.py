"""What notifications is asked to do: by events (Notify, NoteCase, ...), by its timer (DispatchDue) and by
its gRPC callers (ListNotices, ...). No I/O, no protobuf."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from notifications.domain.messages import EmergencyCase, Event, Language, Role
from refnet_platform.vocabulary import ServiceType

if TYPE_CHECKING:  # the api resolves the caller (certificate or person's token); the domain only passes it on
    from refnet_platform.caller import Caller


@dataclass(frozen=True)
class Notify:
    """A referral or bed event: tell whoever must act or know."""

    event: Event


@dataclass(frozen=True)
class NoteCase:
    """A case was registered: remember its case worker and what she consented to; an emergency case
    tells the province's supervisor."""

    case_id: str
    province_code: str
    case_worker_id: str
    consented: frozenset[ServiceType]
    emergency: EmergencyCase | None = None


@dataclass(frozen=True)
class NoteConsent:
    """Consent for a service became valid (a need added with consent, or consent given later)."""

    case_id: str
    service_type: ServiceType


@dataclass(frozen=True)
class WithdrawConsent:
    """service_type None: every service. Pending survivor notices about it stop."""

    case_id: str
    service_type: ServiceType | None


@dataclass(frozen=True)
class EraseCase:
    """The case's key was destroyed: drop its pending survivor notices and the text of its notices."""

    case_id: str


@dataclass(frozen=True)
class DispatchDue:
    """Send what is due, emergencies first. now: the clock (tests move it; None is the real time)."""

    now: datetime | None = None
    limit: int | None = None


@dataclass(frozen=True)
class Recipient:
    """A staff recipient as the directory names them. recipient_id: a provider id, a case worker's id,
    or, for a province's supervisors, the province code."""

    role: Role
    recipient_id: str
    language: Language
    email: str = ""
    phone: str = ""
    webhook_url: str = ""
    province_code: str = ""
    sector: str = ""


@dataclass(frozen=True)
class LoadDirectory:
    recipients: tuple[Recipient, ...]
    # (supervisor id, province code) as the directory lists them. Kept, but grants nothing: a supervisor
    # reads the province feeds of the provinces in their token.
    supervisors: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class ListNotices:
    caller: Caller
    recipient_id: str = ""
    case_id: str = ""
    page_size: int = 0
    before_sequence: int = 0  # deprecated on the wire: page_token, when given, wins
    page_token: str = ""


@dataclass(frozen=True)
class NoticesAfter:
    """The caller's notices with a sequence above after_sequence, oldest first (WatchNotices polls this).
    after_sequence None: none, only where the feed ends now (the stream's starting point)."""

    caller: Caller
    recipient_id: str = ""
    case_id: str = ""
    after_sequence: int | None = None
    limit: int = 100


# From the SMS door (entrypoints/sms_door.py), for a text the gateway delivered with a valid signature.


@dataclass(frozen=True)
class ReceiveSms:
    """Handle one text once (message_id is the gateway's: the idempotency key)."""

    message_id: str
    sender: str  # as the gateway gave it: never logged or stored in clear
    text: str
    received_at: datetime


@dataclass(frozen=True)
class RecordSmsReply:
    """What the gateway said to the reply of a text."""

    message_id: str
    status: str  # the delivery outcome's code: sent, transient, permanent
