"""The vault (per-case keys wrapped by the master key), the master key's sources, what intake learns
from referral's events, and a domain free of infrastructure."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cryptography.exceptions import InvalidTag

from intake.adapters import proto_mapping
from intake.adapters.crypto import MasterKeyError, Vault, _seal, generate_key_b64, load_master_key
from intake.domain.model import Contact, SafeTime
from refnet.referral.v1 import events_pb2 as referral_events
from refnet.referral.v1 import referral_service_pb2 as referral_pb

CONTACT = Contact(name="Vũ Thị Mẫu", phone="0912 000 999", address="xóm 3", safe_contact_note="chỉ nhắn tin",
                  phone_is_safe=True, safe_times=(SafeTime((2, 4), "21:15", "22:45"), SafeTime((), "23:00", "05:00")))


def test_personal_data_opens_only_with_its_case_key_and_case_id() -> None:
    vault = Vault(base64.b64decode(generate_key_b64()))
    key, key_id, wrapped = vault.new_case_key("case-1")
    sealed = vault.seal_personal_data(key, "case-1", CONTACT, "lời kể")
    assert b"0912" not in sealed and "Vũ".encode() not in sealed and b"21:15" not in sealed
    assert vault.open_personal_data(vault.unwrap("case-1", wrapped, key_id), "case-1", sealed) == (CONTACT, "lời kể")
    with pytest.raises(InvalidTag):  # a row copied onto another case does not open
        vault.open_personal_data(key, "case-2", sealed)
    with pytest.raises(InvalidTag):  # nor does a wrapped key moved to another case
        vault.unwrap("case-2", wrapped, key_id)
    with pytest.raises(MasterKeyError):  # nor anything under another master key
        Vault(base64.b64decode(generate_key_b64())).unwrap("case-1", wrapped, key_id)


def test_personal_data_sealed_before_safe_times_were_recorded_opens_with_none() -> None:
    key = bytes(32)
    old = {"name": "Vũ Thị Mẫu", "phone": "0912 000 999", "address": "", "safe_contact_note": "",
           "phone_is_safe": True, "narrative": "lời kể"}
    sealed = _seal(key, json.dumps(old).encode(), b"case-1")
    contact, narrative = Vault.open_personal_data(key, "case-1", sealed)
    assert (contact.phone, contact.safe_times, narrative) == ("0912 000 999", (), "lời kể")


def test_the_master_key_comes_from_the_environment_or_a_file(tmp_path: Path) -> None:
    value = generate_key_b64()
    key_file = tmp_path / "master.key"
    key_file.write_text(value + "\n")
    assert load_master_key(None, key_file) == load_master_key(value, None) == base64.b64decode(value)
    with pytest.raises(MasterKeyError, match="INTAKE_MASTER_KEY"):
        load_master_key(None, None)
    with pytest.raises(MasterKeyError, match="32 bytes"):
        load_master_key(base64.b64encode(b"short").decode(), None)


def test_what_referral_arranged_is_recorded_per_need(intake: Any) -> None:
    from intake.domain import commands

    case = intake.register()
    police = case.needs[0]
    requested = referral_events.ReferralRequested(referral_id="ref-9", case_id=case.case_id, need_id=police.need_id,
                                                  provider_id="qn-police-baichay")
    accepted = referral_events.ReferralStatusChanged(referral_id="ref-9", case_id=case.case_id,
                                                     provider_id="qn-police-baichay",
                                                     to_status=referral_pb.REFERRAL_STATUS_ACCEPTED)
    for message in (requested, accepted):
        intake.handle(proto_mapping.command_for(message))
    need = intake.handle(commands.GetCase(intake.operator, case.case_id)).need(police.need_id)
    assert (need.referral_id, need.referral_status, need.provider_id) == ("ref-9", "accepted", "qn-police-baichay")
    # An event about a case intake does not know changes nothing and does not fail.
    intake.handle(proto_mapping.command_for(referral_events.ReferralRequested(case_id="unknown", referral_id="r")))


def test_the_domain_imports_no_infrastructure() -> None:
    code = (
        "import sys\n"
        "import intake.domain.model, intake.domain.commands, intake.domain.events\n"
        "bad = sorted(m for m in sys.modules if m.startswith(('grpc', 'sqlalchemy', 'kafka', 'aiokafka',"
        " 'google.protobuf', 'refnet.')) or m.endswith('_pb2'))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
