"""Need to know: a service reads her contact only for a referral intake's own record shows accepted,
and only what both her consent and the service's purpose allow. Every refusal on a case is audited."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import text

from intake.adapters.crypto import generate_key_b64
from intake.adapters.tables import CASE_COLUMNS_CASEWORK, contact_phones, referrals
from intake.bootstrap import bootstrap
from intake.config import MIGRATIONS, Settings
from intake.domain import commands
from intake.domain.contact_reads import CONTACT_PURPOSES
from intake.domain.model import ConsentGiver, ConsentTerms, NeedSpec, SafeTime
from refnet_platform.caller import Role, machine
from refnet_platform.engine import make_engine
from refnet_platform.errors import FailedPrecondition, NotFound, PermissionDenied, Unavailable
from refnet_platform.migrations import migrate
from refnet_platform.requests import SHARED, request_metadata, requests
from refnet_platform.vocabulary import ServiceType

PROVIDER = "qn-police-baichay"
EVERYTHING = ConsentTerms(ConsentGiver.SURVIVOR, ("name", "phone", "address", "safe_contact"), ("police",))
SAFE = (SafeTime((1, 3), "21:00", "22:30"),)


def read(intake: Any, case_id: str, *, caller: Any = None, referral_id: str = "ref-1", recipient_id: str = PROVIDER,
         service: ServiceType = ServiceType.POLICE_PROTECTION, purpose: str = "provider_accepted_referral") -> Any:
    return intake.handle(commands.GetCaseContact(caller or intake.service, case_id, referral_id, recipient_id, "police",
                                                 service, purpose))


def notice(intake: Any, case_id: str, referral_id: str = "ref-1") -> Any:
    """As notifications asks today: recipient_id "notifications", purpose "survivor_notice"."""
    return read(intake, case_id, caller=intake.notifications, referral_id=referral_id, recipient_id="notifications",
                purpose="survivor_notice")


def audit_rows(intake: Any) -> list[dict[str, Any]]:
    with intake.engine.connect() as conn:
        return [dict(r) for r in conn.execute(text("SELECT * FROM audit_log ORDER BY audit_id")).mappings()]


@pytest.fixture
def case(intake: Any) -> Any:
    contact = replace(intake.register_command().contact, safe_times=SAFE)
    return intake.register(contact=contact, needs=[NeedSpec(ServiceType.POLICE_PROTECTION, consent=EVERYTHING),
                                                   NeedSpec(ServiceType.LEGAL_AID, consented=True)])


def refused_as_missing(intake: Any, case_id: str, **request: Any) -> None:
    with pytest.raises(NotFound) as refused:
        read(intake, case_id, **request)
    assert type(refused.value) is NotFound and str(refused.value) == f"case {case_id} not found"


def test_a_made_up_referral_is_refused_as_a_missing_case_and_audited(intake: Any, case: Any) -> None:
    refused_as_missing(intake, case.case_id, referral_id="ref-made-up")
    with pytest.raises(NotFound) as missing:
        read(intake, "no-such-case", referral_id="ref-made-up")
    assert str(missing.value) == "case no-such-case not found"
    [row] = audit_rows(intake)  # the missing case leaves no row: there is no case to account for
    assert (row["action"], row["actor_id"], row["actor_role"], row["referral_id"], row["case_id"]) == (
        "contact_refused", "referral", "service", "ref-made-up", case.case_id)
    assert row["detail"] == "not found: no such referral on this case"


def test_a_referral_not_yet_accepted_is_refused_and_audited(intake: Any, case: Any) -> None:
    intake.refer(case)  # requested only
    with pytest.raises(Unavailable, match="not accepted on intake's record yet"):
        read(intake, case.case_id)
    with pytest.raises(Unavailable):
        notice(intake, case.case_id)
    assert [r["action"] for r in audit_rows(intake)] == ["contact_refused"] * 2


def test_an_accepted_referral_is_answered_for_its_provider_then_no_more_once_over(intake: Any, case: Any) -> None:
    intake.refer(case, "accepted")
    contact, categories = read(intake, case.case_id)
    assert categories == ("name", "phone", "address", "safe_contact")
    assert (contact.name, contact.address, contact.safe_contact_note, contact.safe_times) == (
        "Trần Thị Mẫu", "Tổ 5, khu 3", "after 18:00", SAFE)
    intake.handle(commands.RecordReferral(case.case_id, "", "ref-1", "in_service", ""))
    assert read(intake, case.case_id)[0].phone == "0912 345 678"
    intake.handle(commands.RecordReferral(case.case_id, "", "ref-1", "completed", ""))
    with pytest.raises(FailedPrecondition, match="ref-1 is completed"):
        read(intake, case.case_id)
    assert [r["action"] for r in audit_rows(intake)] == ["contact_read", "contact_read", "contact_refused"]


def test_only_the_referrals_own_provider_case_and_service_are_answered(intake: Any, case: Any) -> None:
    intake.refer(case, "accepted")
    other_case = intake.register()
    refused_as_missing(intake, case.case_id, recipient_id="qn-police-halong")  # another agency
    refused_as_missing(intake, other_case.case_id)  # a real referral, on another case
    refused_as_missing(intake, case.case_id, service=ServiceType.LEGAL_AID)  # consented, but not this referral's
    details = [r["detail"] for r in audit_rows(intake)]
    assert details == ["not found: the recipient is not the referral's provider",
                       "not found: no such referral on this case",
                       "not found: the referral is not for legal_aid"]


def test_a_referral_declined_or_never_accepted_is_refused(intake: Any, case: Any) -> None:
    intake.refer(case, "rejected")
    with pytest.raises(FailedPrecondition, match="never accepted"):
        read(intake, case.case_id)
    with pytest.raises(FailedPrecondition, match="never accepted"):
        notice(intake, case.case_id)  # declined before anyone accepted: nothing to tell her


def test_a_survivor_notice_reads_her_safe_phone_and_times_never_her_name_or_address(intake: Any, case: Any) -> None:
    intake.refer(case, "accepted")
    contact, categories = notice(intake, case.case_id)
    assert categories == ("phone", "safe_times")
    assert (contact.phone, contact.phone_is_safe, contact.safe_times) == ("0912 345 678", True, SAFE)
    assert (contact.name, contact.address, contact.safe_contact_note) == ("", "", "")
    [row] = audit_rows(intake)
    assert (row["action"], row["actor_id"], row["purpose"], row["detail"]) == (
        "contact_read", "notifications", "survivor_notice", "phone,safe_times")


def test_a_survivor_notice_still_reads_when_an_accepted_referral_falls_through(intake: Any, case: Any) -> None:
    # "Your appointment changed": the referral expired after acceptance and the need went on to another provider.
    intake.refer(case, "accepted", "expired", "escalated")
    intake.refer(case, referral_id="ref-2", provider_id="qn-police-halong")
    assert notice(intake, case.case_id)[0].phone == "0912 345 678"
    with pytest.raises(FailedPrecondition, match="ref-1 is escalated"):
        read(intake, case.case_id)  # but its provider reads no more


def test_a_survivor_notice_reads_nothing_the_consent_does_not_cover(intake: Any) -> None:
    name_and_address = ConsentTerms(ConsentGiver.SURVIVOR, ("name", "address"), ("police",))
    case = intake.register(needs=[NeedSpec(ServiceType.POLICE_PROTECTION, consent=name_and_address)])
    intake.refer(case, "accepted")
    with pytest.raises(PermissionDenied, match="nothing the survivor_notice purpose reads"):
        notice(intake, case.case_id)
    assert read(intake, case.case_id)[1] == ("name", "address")  # the provider's purpose covers them
    assert [r["action"] for r in audit_rows(intake)] == ["contact_refused", "contact_read"]


@pytest.mark.parametrize(("service", "purpose"), [
    ("shelter", "provider_accepted_referral"),  # a refnet service with no purpose here
    ("ops", "survivor_notice"),
    ("notifications", "provider_accepted_referral"),  # a purpose that is not its own
    ("referral", "survivor_notice"),
    ("referral", "research"),
])
def test_an_unknown_service_or_purpose_is_refused_as_a_missing_case(intake: Any, case: Any, service: str,
                                                                     purpose: str) -> None:
    intake.refer(case, "accepted")
    refused_as_missing(intake, case.case_id, caller=machine(service, Role.SERVICE), purpose=purpose)
    [row] = audit_rows(intake)
    assert (row["action"], row["actor_id"], row["detail"]) == (
        "contact_refused", service, f"not found: {service} has no purpose {purpose}")


def test_the_purposes_never_give_notifications_her_name_or_address() -> None:
    for purpose in CONTACT_PURPOSES["notifications"].values():
        assert not purpose.categories & {"name", "address", "safe_contact"}


def test_the_record_keeps_what_the_events_said_in_any_order(intake: Any, case: Any) -> None:
    police = case.needs[0].need_id
    intake.handle(commands.RecordReferral(case.case_id, police, "ref-1", "requested", PROVIDER))
    intake.handle(commands.RecordReferral(case.case_id, "", "ref-1", "accepted", "someone-else"))
    intake.handle(commands.RecordReferral(case.case_id, police, "ref-1", "requested", PROVIDER))  # redelivered late
    intake.handle(commands.RecordReferral("another-case", "", "ref-1", "cancelled", PROVIDER))  # not its case
    intake.handle(commands.RecordReferral(case.case_id, "", "ref-never-requested", "accepted", PROVIDER))
    with intake.engine.connect() as conn:
        rows = conn.execute(referrals.select()).mappings().all()
    assert [(r["referral_id"], r["need_id"], r["provider_id"], r["status"], r["accepted"]) for r in rows] == [
        ("ref-1", police, PROVIDER, "accepted", True)]


# Columns revisions after 0005 add to `cases` (reports_0006).
LATER_CASE_COLUMNS = ("reporting_consent BOOLEAN NOT NULL DEFAULT 1", "handling_line VARCHAR(10)",
                      "disability VARCHAR(10)", "imported BOOLEAN NOT NULL DEFAULT 0")


def test_migration_0004_records_the_referrals_the_needs_already_hold(intake: Any, tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'before.db'}")
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0003")
        request_metadata.create_all(conn)  # today's code keeps request ids there; put back below as 0003 kept them
        for column in CASE_COLUMNS_CASEWORK:  # today's code writes them too; dropped below, as 0003 had none
            conn.execute(text(f"ALTER TABLE cases ADD COLUMN {column} VARCHAR"))
        for column in LATER_CASE_COLUMNS:  # today's code writes them too; dropped again below, before migrating
            conn.execute(text(f"ALTER TABLE cases ADD COLUMN {column}"))
        contact_phones.create(conn)  # and the hashes of numbers (from sms_0001): dropped below
    bus = bootstrap(Settings(master_key=generate_key_b64()), engine)
    statuses = ["in_service", "expired", "failed", "requested"]
    cases = [bus.handle(intake.register_command())[0] for _ in statuses]
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO client_requests (client_request_id, operation, case_id, result_id, created_at) "
                          "SELECT request_id, operation, NULLIF(subject_id, ''), result_id, created_at FROM requests"))
        conn.execute(text("DROP TABLE requests"))
        for column in CASE_COLUMNS_CASEWORK:
            conn.execute(text(f"ALTER TABLE cases DROP COLUMN {column}"))
        for column in LATER_CASE_COLUMNS:
            conn.execute(text(f"ALTER TABLE cases DROP COLUMN {column.split()[0]}"))
        conn.execute(text("DROP TABLE contact_phones"))
        for case, status in zip(cases, statuses, strict=True):
            conn.execute(text("UPDATE needs SET referral_id = :r, referral_status = :s, provider_id = :p "
                              "WHERE need_id = :n"), dict(r=f"ref-{status}", s=status, p=PROVIDER,
                                                         n=case.needs[0].need_id))
    migrate(engine, MIGRATIONS)
    with engine.connect() as conn:
        rows = {r["referral_id"]: r for r in conn.execute(referrals.select()).mappings()}
        moved = {(r["scope"], r["operation"], r["result_id"]) for r in conn.execute(requests.select()).mappings()}
    engine.dispose()
    assert {ref: (r["status"], r["accepted"]) for ref, r in rows.items()} == {
        "ref-in_service": ("in_service", True), "ref-expired": ("expired", False),  # accepted first? unknown: no
        "ref-failed": ("failed", True), "ref-requested": ("requested", False)}
    assert {r["need_id"] for r in rows.values()} == {c.needs[0].need_id for c in cases}
    # 0005 moved the request log into the platform's table, shared by all callers.
    assert moved == {(SHARED, "register_case", c.case_id) for c in cases}
