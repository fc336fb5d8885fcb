from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

# Created by 0001_initial.
metadata = MetaData()

notices = Table(
    "notices", metadata,
    Column("notice_id", String(36), primary_key=True),
    Column("source_event_id", String(36), nullable=False),
    Column("recipient_id", String(100), nullable=False, index=True),
    Column("channel", String(20), nullable=False),
    Column("subject", String(300), nullable=False),
    Column("body", Text, nullable=False),
    Column("referral_id", String(36), nullable=False),
    Column("case_id", String(36), nullable=False, index=True),
    Column("province_code", String(10), nullable=False),
    Column("status", String(20), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    # Exactly one notice per (event, recipient, channel), however often the event is delivered.
    UniqueConstraint("source_event_id", "recipient_id", "channel", name="uq_notice_once"),
)

# Created by 0002_delivery: each notice's delivery, the in-app feed, the directory's recipients, what the
# worker remembers of cases and referrals, and the dead letters still to publish.
delivery_metadata = MetaData()

deliveries = Table(
    "deliveries", delivery_metadata,
    Column("notice_id", String(36), primary_key=True),  # = notices.notice_id
    Column("lane", String(20), nullable=False),  # the channel, or "survivor"
    Column("role", String(20), nullable=False),
    Column("kind", String(40), nullable=False),
    Column("priority", Integer, nullable=False),  # 0 emergency, 1 high, 2 routine
    Column("language", String(5), nullable=False),
    # Staff only: a survivor's address is never stored (read from intake at each send).
    Column("address", String(500), nullable=False),
    Column("html", Text, nullable=False),
    Column("payload", Text, nullable=False),  # webhook JSON
    Column("service_type", String(40), nullable=False),
    Column("sector", String(40), nullable=False),  # survivor: the provider's sector, for intake's consent check
    Column("status", String(20), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", DateTime(timezone=True), nullable=True),
    # A dispatch round's claim: nobody else tries it before then.
    Column("lease_until", DateTime(timezone=True), nullable=True),
    Column("detail", String(300), nullable=False),
    # The event's flow and trace, so the send and its status events join the case's one trace.
    Column("correlation_id", String(36), nullable=False),
    Column("traceparent", String(55), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index("ix_deliveries_due", "lane", "status", "priority", "next_attempt_at"),
)

# The in-app feed: a notice appears here when its in-app delivery is made; sequence orders each feed.
feed = Table(
    "feed", delivery_metadata,
    Column("sequence", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("notice_id", String(36), nullable=False, unique=True),
    Column("role", String(20), nullable=False),
    Column("recipient_id", String(100), nullable=False),
    Column("case_id", String(36), nullable=False),
    Column("published_at", DateTime(timezone=True), nullable=False),
    Index("ix_feed_recipient", "role", "recipient_id", "sequence"),
)

recipients = Table(
    "recipients", delivery_metadata,
    Column("role", String(20), primary_key=True),
    Column("recipient_id", String(100), primary_key=True),
    Column("language", String(5), nullable=False),
    Column("email", String(300), nullable=False),
    Column("phone", String(30), nullable=False),
    Column("webhook_url", String(500), nullable=False),
    Column("province_code", String(10), nullable=False),
    Column("sector", String(40), nullable=False),
)

supervisors = Table(
    "supervisors", delivery_metadata,
    Column("supervisor_id", String(100), primary_key=True),
    Column("province_code", String(10), nullable=False),
)

cases = Table(
    "cases", delivery_metadata,
    Column("case_id", String(36), primary_key=True),
    Column("province_code", String(10), nullable=False),
    Column("case_worker_id", String(100), nullable=False),
)

referrals = Table(
    "referrals", delivery_metadata,
    Column("referral_id", String(36), primary_key=True),
    Column("case_id", String(36), nullable=False, index=True),
    Column("case_worker_id", String(100), nullable=False),
    Column("provider_id", String(100), nullable=False),
    Column("service_type", String(40), nullable=False),
    Column("priority", Integer, nullable=False),
    Column("province_code", String(10), nullable=False),
)

# The services a survivor consented to (intake has the last word at send time).
consents = Table(
    "consents", delivery_metadata,
    Column("case_id", String(36), primary_key=True),
    Column("service_type", String(40), primary_key=True),
)

dead_letters = Table(
    "dead_letters", delivery_metadata,
    Column("notice_id", String(36), primary_key=True),
    Column("lane", String(20), nullable=False),
    Column("recipient_id", String(100), nullable=False),
    Column("role", String(20), nullable=False),
    Column("kind", String(40), nullable=False),
    Column("referral_id", String(36), nullable=False),
    Column("case_id", String(36), nullable=False),
    Column("province_code", String(10), nullable=False),
    Column("source_event_id", String(36), nullable=False),
    Column("emergency", Boolean, nullable=False),
    Column("reason", String(40), nullable=False),
    Column("detail", String(300), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("failed_at", DateTime(timezone=True), nullable=False),
    Column("published_at", DateTime(timezone=True), nullable=True, index=True),
)

# Created by sms_0001: every text the SMS gateway delivered, once per gateway message id (the idempotency key).
# The sender only as a keyed hash and the text not at all: what was done is the outcome code.
inbound_metadata = MetaData()

inbound_sms = Table(
    "inbound_sms", inbound_metadata,
    Column("message_id", String(128), primary_key=True),
    Column("sender_key", String(64), nullable=False, index=True),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("handled_at", DateTime(timezone=True), nullable=True),
    # received (being handled), then the outcome's code (applied, unknown_sender, duplicate...).
    Column("outcome", String(40), nullable=False),
    Column("reply", String(40), nullable=False, server_default=""),
    Column("reply_status", String(20), nullable=False, server_default=""),
)
