"""A survivor's STOP / START by text, through intake's handlers: her cases found by a keyed hash of her number
(never the number in clear outside her encrypted contact), recorded once, and shown to every contact read."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import text

from intake.domain import commands
from intake.domain.model import Contact, EraseReason
from refnet_platform.caller import Role, machine
from refnet_platform.errors import NotFound, PermissionDenied
from refnet_platform.vocabulary import ServiceType

PHONE = "0912 345 678"  # the conftest's survivor


def stop(intake: Any, phone: str = "+84 912-345-678", on: bool = True, caller: Any = None) -> Any:
    return intake.handle(commands.SetSmsPreference(caller or intake.notifications, phone, on))


def notice(intake: Any, case_id: str) -> Any:
    return intake.handle(commands.GetCaseContact(intake.notifications, case_id, "ref-1", "notifications", "",
                                                 ServiceType.POLICE_PROTECTION, "survivor_notice"))


def test_stop_finds_every_case_of_her_number_once_and_start_resumes(intake: Any) -> None:
    first, second = intake.register(), intake.register()
    other = intake.register(contact=Contact(phone="0988 000 111", phone_is_safe=True))
    done = stop(intake)
    assert sorted(done.case_ids) == sorted(done.changed) == sorted([first.case_id, second.case_id])
    assert stop(intake).changed == []  # already stopped: nothing to confirm again
    intake.refer(first, "accepted")
    contact, _ = notice(intake, first.case_id)
    assert contact.sms_stopped and contact.phone == PHONE
    assert not stop(intake, "0988000111", on=False).changed  # she never stopped
    assert stop(intake, on=False).changed and not notice(intake, first.case_id)[0].sms_stopped
    assert other.case_id not in done.case_ids


def test_the_number_is_kept_only_as_a_keyed_hash_and_every_change_is_audited(intake: Any) -> None:
    case = intake.register()
    stop(intake)
    with intake.engine.connect() as conn:
        keys = conn.execute(text("SELECT phone_key FROM contact_phones")).scalars().all()
        audit = conn.execute(text("SELECT action, case_id, actor_id FROM audit_log WHERE action LIKE 'sms_%'")).all()
    assert len(keys) == 1 and len(keys[0]) == 64 and "912345678" not in keys[0]
    assert [tuple(a) for a in audit] == [("sms_stopped", case.case_id, "notifications")]
    dump = "\n".join(str(row) for row in intake.engine.connect().execute(text("SELECT * FROM sms_stops")))
    assert "912" not in dump


def test_an_unknown_or_erased_number_is_not_found_and_only_the_door_may_ask(intake: Any) -> None:
    with pytest.raises(NotFound):
        stop(intake, "0900 000 000")
    with pytest.raises(NotFound):
        stop(intake, "not a number")
    case = intake.register()
    with pytest.raises(PermissionDenied):
        stop(intake, caller=machine("referral", Role.SERVICE))
    with pytest.raises(PermissionDenied):
        stop(intake, caller=intake.operator)
    intake.handle(commands.EraseCase(intake.supervisor, f"req-erase-{case.case_id}", case.case_id,
                                     EraseReason.ENTERED_IN_ERROR))
    with pytest.raises(NotFound):
        stop(intake)
