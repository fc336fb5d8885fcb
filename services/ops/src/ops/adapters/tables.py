"""ops' own tables: facts learnt from events (ids, codes, times), spans, dead letters and the replay audit."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
)

metadata = MetaData()


def _id() -> Column[int]:
    return Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)


cases = Table(
    "cases", metadata,
    Column("case_id", String(36), primary_key=True),
    Column("province_code", String(8), nullable=False, index=True),
    Column("registered_at", DateTime(timezone=True), nullable=False, index=True),
    Column("case_types", String(400), nullable=False),  # comma-separated codes
    Column("is_child", Boolean, nullable=False),
    Column("reportable", Boolean, nullable=False),
    Column("emergency_at", DateTime(timezone=True)),
    Column("closed_at", DateTime(timezone=True)),
    # Added by reports_0002: the line that handled it, the survivor as codes, from before refnet.
    Column("handling_line", String(8), nullable=False, server_default="", index=True),
    Column("sex", String(20), nullable=False, server_default="unknown"),
    Column("age_band", String(20), nullable=False, server_default="unknown"),
    Column("disability", String(10), nullable=False, server_default="unknown"),
    Column("imported", Boolean, nullable=False, server_default=false()),
)

calls = Table(
    "calls", metadata,
    Column("call_id", String(36), primary_key=True),
    Column("province_code", String(8), nullable=False, index=True),
    Column("topic", String(60), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False, index=True),
    # Added by reports_0002.
    Column("handling_line", String(8), nullable=False, server_default=""),
    Column("channel", String(40), nullable=False, server_default="unknown"),
    Column("outcome", String(40), nullable=False, server_default="unknown"),
    Column("imported", Boolean, nullable=False, server_default=false()),
)

referrals = Table(
    "referrals", metadata,
    Column("referral_id", String(36), primary_key=True),
    Column("case_id", String(36), nullable=False, index=True),
    Column("province_code", String(8), nullable=False, index=True),
    Column("sector", String(40), nullable=False),
    Column("provider_id", String(100), nullable=False),
    Column("emergency", Boolean, nullable=False),
    Column("requested_at", DateTime(timezone=True), nullable=False),
    Column("accept_by", DateTime(timezone=True), nullable=False),
    Column("start_by", DateTime(timezone=True)),
    Column("status", String(20), nullable=False, index=True),
    Column("accepted_at", DateTime(timezone=True)),
    Column("started_at", DateTime(timezone=True)),
    Column("completed_at", DateTime(timezone=True)),
    Column("escalated_at", DateTime(timezone=True), index=True),
    Column("reason", String(60), nullable=False, default=""),
    # Added by reports_0002.
    Column("provider_type", String(40), nullable=False, server_default=""),
    Column("failed_at", DateTime(timezone=True)),
)

beds = Table(
    "beds", metadata,
    Column("shelter_id", String(100), primary_key=True),
    Column("target_group", String(40), primary_key=True),
    Column("province_code", String(8), nullable=False, index=True),
    Column("capacity", Integer, nullable=False),
    Column("reserved", Integer, nullable=False),
    Column("occupied", Integer, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

stays = Table(
    "stays", metadata,
    Column("referral_id", String(36), primary_key=True),
    Column("case_id", String(36), nullable=False, default=""),
    Column("province_code", String(8), nullable=False),
    Column("shelter_id", String(100), nullable=False),
    Column("state", String(20), nullable=False),
    Column("occupied_at", DateTime(timezone=True)),
    Column("released_at", DateTime(timezone=True)),  # added by reports_0002
)

# Events per minute, per producing service and province: the console's throughput charts.
throughput = Table(
    "throughput", metadata,
    Column("minute", DateTime(timezone=True), primary_key=True),
    Column("stream", String(40), primary_key=True),
    Column("province_code", String(8), primary_key=True),
    Column("events", Integer, nullable=False),
)

spans = Table(
    "spans", metadata,
    Column("trace_id", String(32), primary_key=True),
    Column("span_id", String(16), primary_key=True),
    Column("parent_span_id", String(16), nullable=False),
    Column("service", String(100), nullable=False),
    Column("name", String(300), nullable=False),
    Column("kind", String(20), nullable=False),
    Column("start_ns", BigInteger, nullable=False),
    Column("end_ns", BigInteger, nullable=False),
    Column("status", String(20), nullable=False),
    Column("attributes", Text, nullable=False),  # JSON of the kept attributes
    Column("received_at", DateTime(timezone=True), nullable=False, index=True),
)

# Which traces touched which case or referral (from the spans' refnet.case_id / refnet.referral_id).
trace_subjects = Table(
    "trace_subjects", metadata,
    Column("subject_id", String(36), primary_key=True),
    Column("trace_id", String(32), primary_key=True),
    Index("ix_trace_subjects_trace", "trace_id"),
)

dead_letters = Table(
    "dead_letters", metadata,
    _id(),
    Column("dlq_topic", String(200), nullable=False),
    Column("dlq_partition", Integer, nullable=False),
    Column("dlq_offset", BigInteger, nullable=False),
    Column("consumer", String(100), nullable=False, index=True),
    Column("original_topic", String(200), nullable=False),
    Column("original_partition", Integer, nullable=False),
    Column("original_offset", BigInteger, nullable=False),
    Column("original_key", LargeBinary, nullable=False),
    Column("original_value", LargeBinary, nullable=False),
    Column("error", Text, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("failed_at", DateTime(timezone=True), nullable=False),
    # A dead letter's ids come from whatever record failed, possibly malformed: any length is kept.
    Column("event_id", Text, nullable=False),
    Column("event_type", Text, nullable=False),
    Column("traceparent", Text, nullable=False),
    UniqueConstraint("dlq_topic", "dlq_partition", "dlq_offset"),
)

# Where ops has read each dead-letter partition up to.
dlq_positions = Table(
    "dlq_positions", metadata,
    Column("topic", String(200), primary_key=True),
    Column("partition", Integer, primary_key=True),
    Column("next_offset", BigInteger, nullable=False),
)

# The replay audit: append-only, one row per letter (the unique letter id makes a second replay impossible).
replays = Table(
    "replays", metadata,
    _id(),
    Column("letter_id", BigInteger, nullable=False, unique=True),
    Column("actor", String(100), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("original_topic", String(200), nullable=False),
    Column("event_id", String(36), nullable=False),
    Column("published_offset", BigInteger, nullable=False),
    Column("took_ms", Float, nullable=False),
)
