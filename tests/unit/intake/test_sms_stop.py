"""A survivor's STOP / START by text, through intake's handlers: her cases found by a keyed hash of her number
(never the number in clear outside her encrypted contact), recorded once, and shown to every contact read."""

from __future__ import annotations

import base64
import os
import uuid
from typing import Any

import pytest
from sqlalchemy import text

from intake.adapters.crypto import Vault
from intake.bootstrap import bootstrap
from intake.config import MIGRATIONS, Settings
from intake.domain import commands
from intake.domain.model import Contact, EraseReason, NeedSpec, Place, Survivor
from intake.service_layer import keys
from intake.service_layer.unit_of_work import IntakeUnitOfWork
from refnet_platform.caller import Caller, Role, machine
from refnet_platform.engine import make_engine
from refnet_platform.errors import NotFound, PermissionDenied
from refnet_platform.migrations import migrate
from refnet_platform.vocabulary import CaseType, RiskLevel, ServiceType, Sex

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


def test_intake_keys_index_phones_lets_an_older_case_be_found_and_a_rotated_key_too(tmp_path: Any) -> None:
    """A case registered before the hashes were kept (or hashed under a key since removed) is found once
    `intake-keys index-phones` has hashed its number under the current master key."""
    old, new = os.urandom(32), os.urandom(32)
    url = f"sqlite:///{tmp_path / 'intake.db'}"
    engine = make_engine(url)
    migrate(engine, MIGRATIONS)
    settings = Settings(database_url=url, master_key=base64.b64encode(old).decode())
    before = bootstrap(settings, engine, vault=Vault(old))
    case, _ = before.handle(_register())
    # Rotated to a new key, the old one removed: the hash under the old key no longer matches.
    keys.rotate(lambda: IntakeUnitOfWork(engine, Vault(new, [old])), 100, lambda *_: None)
    only_new = bootstrap(settings, engine, vault=Vault(new))
    with pytest.raises(NotFound):
        only_new.handle(commands.SetSmsPreference(machine("notifications", Role.SERVICE), PHONE, True))
    added = keys.index_phones(lambda: IntakeUnitOfWork(engine, Vault(new)), 10, lambda *_: None)
    assert added == 1
    assert keys.index_phones(lambda: IntakeUnitOfWork(engine, Vault(new)), 10, lambda *_: None) == 0  # idempotent
    done = only_new.handle(commands.SetSmsPreference(machine("notifications", Role.SERVICE), PHONE, True))
    assert done.changed == [case.case_id]
    engine.dispose()


def _register() -> Any:
    operator = Caller("qn-operator-1", Role.OPERATOR, provinces=frozenset({"22"}), person=True)
    return commands.RegisterCase(
        caller=operator, client_request_id=f"req-{uuid.uuid4()}", occurred_in=Place("22", "06673"), recorded_at=None,
        reported_in=None, case_types=[CaseType.DOMESTIC_VIOLENCE], survivor=Survivor(is_child=False, age=31,
                                                                                   sex=Sex.FEMALE),
        needs=[NeedSpec(ServiceType.POLICE_PROTECTION, consented=True)], risk_level=RiskLevel.MEDIUM,
        immediate_danger=False, case_worker_id="", contact=Contact(phone=PHONE, phone_is_safe=True), narrative="")
