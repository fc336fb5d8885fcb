"""A provider's duty phone answers a referral by text (AnswerBySms), through referral's handlers on SQLite: the
phone decides the provider, the answer is that agency's AcceptReferral / DeclineReferral with the same rules."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from referral.adapters import hsds
from referral.domain import commands
from referral.domain.model import SmsAnswerProblem, Status
from refnet_platform.caller import Role, machine
from refnet_platform.errors import NotFound, PermissionDenied
from refnet_platform.vocabulary import DeclineReason, ServiceType

DEMO = Path(__file__).resolve().parents[3] / "demo" / "directory.json"
DOOR = machine("notifications", Role.SERVICE)
POLICE_PHONE = "0900 200 001"  # demo/directory.json: qn-police-baichay's duty phone


@pytest.fixture
def r(referral: Any) -> Any:
    referral.handle(commands.LoadDirectory([], duty_phones=hsds.duty_phones(DEMO)))
    return referral


def answer(r: Any, reference: str, accept: bool = True, reason: DeclineReason | None = None,
           message_id: str = "gw-1", phone: str = POLICE_PHONE, caller: Any = DOOR) -> Any:
    return r.handle(commands.AnswerBySms(caller, phone, reference, accept, reason, message_id))


def ref(referral_id: str) -> str:
    return "RF-" + referral_id[-8:].upper()


def test_accept_by_text_is_the_agencys_accept_done_once(r: Any) -> None:
    case_id, _ = r.register(ServiceType.POLICE_PROTECTION)
    police = r.only(case_id, ServiceType.POLICE_PROTECTION)
    assert police.provider_id == "qn-police-baichay"
    done = answer(r, ref(police.referral_id).lower())
    assert (done.provider_id, done.language, done.problem) == ("qn-police-baichay", "vi", None)
    assert done.referral.status is Status.ACCEPTED
    assert answer(r, ref(police.referral_id)).problem is None  # the same message again: done once
    accepted = [e for _, _, e in r.events("ReferralStatusChanged") if e.referral_id == police.referral_id]
    assert len(accepted) == 1
    again = answer(r, ref(police.referral_id), message_id="gw-2")
    assert again.problem is SmsAnswerProblem.NOT_OPEN
    declined = answer(r, ref(police.referral_id), accept=False, reason=DeclineReason.NO_CAPACITY, message_id="gw-3")
    assert declined.problem is SmsAnswerProblem.NOT_OPEN  # accepted is not declined: the lifecycle's rule


def test_decline_by_text_with_a_coded_reason(r: Any) -> None:
    case_id, _ = r.register(ServiceType.POLICE_PROTECTION)
    police = r.only(case_id, ServiceType.POLICE_PROTECTION)
    done = answer(r, ref(police.referral_id), accept=False, reason=DeclineReason.OUT_OF_AREA)
    assert done.referral.status is Status.REJECTED and done.referral.reason == "out_of_area"


def test_another_providers_reference_or_a_made_up_one_is_unknown(r: Any) -> None:
    case_id, _ = r.register(ServiceType.MEDICAL)
    medical = r.only(case_id, ServiceType.MEDICAL)
    assert answer(r, ref(medical.referral_id)).problem is SmsAnswerProblem.UNKNOWN_REFERENCE
    assert answer(r, "RF-00000000").problem is SmsAnswerProblem.UNKNOWN_REFERENCE
    assert r.only(case_id, ServiceType.MEDICAL).status is Status.REQUESTED


def test_an_unknown_phone_is_not_found_and_only_the_door_may_ask(r: Any) -> None:
    assert answer(r, "").provider_id == "qn-police-baichay"  # no reference: who the phone is
    with pytest.raises(NotFound):
        answer(r, "RF-00000000", phone="0999 000 000")
    with pytest.raises(PermissionDenied):
        answer(r, "RF-00000000", caller=machine("referral", Role.SERVICE))
    with pytest.raises(PermissionDenied):
        answer(r, "RF-00000000", caller=r.agency("qn-police-baichay"))
