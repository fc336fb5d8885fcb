"""The topic registry: every Kafka topic refnet uses, its key, partitions and allowed types.

Topics are created from this list (broker auto-create stays off), the Strimzi KafkaTopics and
KafkaUser ACLs under deploy/k8s are generated from it, and contract tests check it against proto/.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

DAY_MS = 24 * 60 * 60 * 1000


@dataclass(frozen=True)
class Topic:
    name: str
    key: str  # what the record key is: "province_code", "shelter_id", ...
    partitions: int
    writer: str  # the one process (service-role) that produces to it
    readers: tuple[str, ...]
    message_types: tuple[str, ...]  # full proto names allowed as envelope payloads
    retention_ms: int = 14 * DAY_MS
    urgent: bool = False  # a priority lane: consumers drain it before the normal lane
    dead_letter: bool = False
    command: bool = False  # a command topic: many may send, its owner alone reads

    @property
    def owner(self) -> str:
        return self.name.split(".", 1)[0]


def _dlq(consumer: str) -> Topic:
    return Topic(
        name=f"{consumer}.dlq.v1",
        key="original_key",
        partitions=1,
        writer=f"{consumer}-worker",
        readers=("ops-worker",),
        message_types=("refnet.common.v1.DeadLetter",),
        retention_ms=90 * DAY_MS,
        dead_letter=True,
    )


CASE_EVENTS = (
    "refnet.intake.v1.CaseRegistered",
    "refnet.intake.v1.NeedAdded",
    "refnet.intake.v1.RiskUpdated",
    "refnet.intake.v1.ConsentGiven",
    "refnet.intake.v1.ConsentWithdrawn",
    "refnet.intake.v1.CaseClosed",
    "refnet.intake.v1.CaseErased",
    "refnet.intake.v1.CallLogged",
    # Case work (intake's CaseWorkService and its step timer): ids and codes only.
    "refnet.intake.v1.CaseAssessed",
    "refnet.intake.v1.CasePlanRecorded",
    "refnet.intake.v1.FollowUpRecorded",
    "refnet.intake.v1.CaseReviewed",
    "refnet.intake.v1.CaseReassigned",
    "refnet.intake.v1.CaseStepChanged",
    "refnet.intake.v1.CaseStepOverdue",
)
REFERRAL_EVENTS = (
    "refnet.referral.v1.ReferralRequested",
    "refnet.referral.v1.ReferralStatusChanged",
    "refnet.referral.v1.ReferralEscalated",
    "refnet.referral.v1.ReferralProgressReported",
)
BED_COMMANDS = (
    "refnet.shelter.v1.ReserveBed",
    "refnet.shelter.v1.ReleaseBed",
)
BED_EVENTS = (
    "refnet.shelter.v1.CapacityChanged",
    "refnet.shelter.v1.BedReserved",
    "refnet.shelter.v1.BedReservationRejected",
    "refnet.shelter.v1.BedOccupied",
    "refnet.shelter.v1.BedReleased",
    "refnet.shelter.v1.HoldExpired",
)
NOTIFICATION_EVENTS = (
    "refnet.notifications.v1.NotificationSent",
    "refnet.notifications.v1.NotificationDelivered",
    "refnet.notifications.v1.NotificationFailed",
)

TOPICS: tuple[Topic, ...] = (
    Topic("intake.cases.v1", "province_code", 6, "intake-relay",
          ("referral-worker", "notifications-worker", "ops-worker"), CASE_EVENTS),
    Topic("intake.cases-urgent.v1", "province_code", 3, "intake-relay",
          ("referral-worker", "notifications-worker", "ops-worker"), CASE_EVENTS, urgent=True),
    Topic("referral.referrals.v1", "province_code", 6, "referral-relay",
          ("intake-worker", "notifications-worker", "ops-worker"), REFERRAL_EVENTS),
    Topic("referral.referrals-urgent.v1", "province_code", 3, "referral-relay",
          ("intake-worker", "notifications-worker", "ops-worker"), REFERRAL_EVENTS, urgent=True),
    # A command topic: written by referral, read only by its owner, shelter.
    Topic("shelter.bed-commands.v1", "shelter_id", 6, "referral-relay",
          ("shelter-worker",), BED_COMMANDS, command=True),
    # shelter-api reads it too, without a consumer group, to feed WatchAvailability on every replica.
    Topic("shelter.beds.v1", "province_code", 6, "shelter-relay",
          ("referral-worker", "notifications-worker", "ops-worker", "shelter-api"), BED_EVENTS),
    Topic("notifications.deliveries.v1", "province_code", 6, "notifications-relay",
          ("ops-worker",), NOTIFICATION_EVENTS),
    _dlq("intake"),
    _dlq("referral"),
    _dlq("shelter"),
    _dlq("notifications"),
    _dlq("ops"),
)

BY_NAME: dict[str, Topic] = {t.name: t for t in TOPICS}

# The operations console is the one Kafka client beyond the writers and readers above: it describes
# every topic and every reader's consumer group (sizes, lag), and replays a dead letter, unchanged, to
# the topic it came from (see replayable). Each topic's writer of record stays the one above.
OPS_CONSOLE = "ops-console"


def topic(name: str) -> Topic:
    try:
        return BY_NAME[name]
    except KeyError:
        raise KeyError(f"topic {name!r} is not in the registry") from None


def urgent(name: str) -> bool:
    """Whether `name` is a registered priority lane."""
    registered = BY_NAME.get(name)
    return registered is not None and registered.urgent


def urgent_lane(name: str) -> str:
    """The priority-lane twin of a stream topic: intake.cases.v1 -> intake.cases-urgent.v1."""
    stem, version = name.rsplit(".", 1)
    lane = f"{stem}-urgent.{version}"
    return topic(lane).name


def read_by(process: str) -> tuple[Topic, ...]:
    return tuple(t for t in TOPICS if process in t.readers)


def consumed_by(process: str) -> list[str]:
    """The topics a worker subscribes to: all it reads but the dead-letter topics (ops collects those on a timer)."""
    return [t.name for t in read_by(process) if not t.dead_letter]


def written_by(process: str) -> tuple[Topic, ...]:
    return tuple(t for t in TOPICS if t.writer == process)


def dead_letter_topic(service: str) -> str:
    return topic(f"{service}.dlq.v1").name


def replayable(topics: Iterable[Topic] = TOPICS) -> tuple[Topic, ...]:
    """Where a dead letter can go back to (the console writes there): the topics a dead-lettering consumer reads."""
    topics = tuple(topics)
    dead_lettering = {t.writer for t in topics if t.dead_letter}
    return tuple(t for t in topics if not t.dead_letter and dead_lettering & set(t.readers))
