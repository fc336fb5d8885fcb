"""Master key ids and rotation: each wrapped case key names the master key that wrapped it, the vault
unwraps with whichever configured key that is, and a rotation re-wraps case keys a batch per
transaction (the real process, crash included, is in tests/integration/intake/test_key_rotation.py)."""

from __future__ import annotations

import base64
import hashlib
import os
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from cryptography.exceptions import InvalidTag
from sqlalchemy import select

from intake.adapters.crypto import MasterKeyError, NoMasterKey, Vault, _seal, key_id, load_previous_keys
from intake.adapters.tables import case_keys, case_personal_data
from intake.bootstrap import bootstrap, make_vault
from intake.config import Settings
from intake.domain import commands
from intake.domain.model import EraseReason
from intake.service_layer import keys
from intake.service_layer.unit_of_work import IntakeUnitOfWork
from refnet_platform.errors import FailedPrecondition
from refnet_platform.vocabulary import ServiceType

A, B, C = (os.urandom(32) for _ in range(3))


def b64(key: bytes) -> str:
    return base64.b64encode(key).decode()


def read_contact(intake: Any, case_id: str) -> commands.GetCaseContact:
    """A read for the police referral `accept` recorded."""
    return commands.GetCaseContact(intake.service, case_id, f"ref-{case_id}", "qn-police-baichay", "police",
                                   ServiceType.POLICE_PROTECTION, "provider_accepted_referral")


def accept(bus: Any, case: Any) -> str:
    """The case's police referral, accepted, as intake-worker records it; returns the case id."""
    police = case.need_for(ServiceType.POLICE_PROTECTION)
    for need_id, status in ((police.need_id, "requested"), ("", "accepted")):
        bus.handle(commands.RecordReferral(case.case_id, need_id, f"ref-{case.case_id}", status, "qn-police-baichay"))
    return str(case.case_id)


def test_a_key_id_names_a_master_key_without_revealing_it() -> None:
    assert key_id(A) == hashlib.sha256(A).digest()[:8].hex()
    assert len(key_id(A)) == 16 and key_id(A) != key_id(B)
    assert key_id(A) not in (A.hex(), b64(A))
    _, wrapped_by, _ = Vault(A).new_case_key("case-1")
    assert wrapped_by == key_id(A) == Vault(A).key_id


def test_a_process_without_the_master_key_cannot_wrap_or_unwrap_a_case_key() -> None:
    _, wrapped_by, wrapped = Vault(A).new_case_key("case-1")
    keyless = NoMasterKey()  # intake-worker's: it records referral progress, never personal data
    with pytest.raises(MasterKeyError, match="no master key"):
        keyless.new_case_key("case-2")
    with pytest.raises(MasterKeyError, match="no master key"):
        keyless.unwrap("case-1", wrapped, wrapped_by)
    with pytest.raises(MasterKeyError, match="no master key"):
        keyless.unwrap("case-1", wrapped, None)


def test_case_keys_unwrap_with_the_key_their_row_names_and_new_ones_wrap_with_the_current() -> None:
    old_key, old_id, old_wrapped = Vault(A).new_case_key("case-1")
    both = Vault(B, [A])
    assert both.key_ids == [key_id(B), key_id(A)]
    assert both.unwrap("case-1", old_wrapped, old_id) == old_key
    new_key, new_id, new_wrapped = both.new_case_key("case-2")
    assert new_id == key_id(B)
    assert Vault(B).unwrap("case-2", new_wrapped, new_id) == new_key
    with pytest.raises(InvalidTag):
        Vault(A).unwrap("case-2", new_wrapped, key_id(A))  # named wrongly: GCM's tag refuses it
    with pytest.raises(MasterKeyError, match=key_id(A)) as error:  # the old key was removed too soon
        Vault(B).unwrap("case-1", old_wrapped, old_id)
    assert b64(A) not in str(error.value) and b64(B) not in str(error.value)


def test_a_case_key_wrapped_before_key_ids_opens_with_the_current_or_a_previous_key() -> None:
    case_key = os.urandom(32)
    legacy = _seal(A, case_key, b"case-1")  # as stored before key ids: no id
    assert Vault(A).unwrap("case-1", legacy, None) == case_key
    assert Vault(B, [C, A]).unwrap("case-1", legacy, None) == case_key
    with pytest.raises(MasterKeyError, match="no configured master key"):
        Vault(B, [C]).unwrap("case-1", legacy, None)


def test_rewrapping_moves_a_case_key_under_the_current_master_key() -> None:
    case_key, old_id, wrapped = Vault(A).new_case_key("case-1")
    new_id, rewrapped = Vault(B, [A]).rewrap("case-1", wrapped, old_id)
    assert new_id == key_id(B) and rewrapped != wrapped
    assert Vault(B).unwrap("case-1", rewrapped, new_id) == case_key  # the data it seals needs no change
    with pytest.raises(InvalidTag):  # still bound to its case
        Vault(B).unwrap("case-2", rewrapped, new_id)


def test_previous_master_keys_come_from_the_environment_and_a_directory(tmp_path: Path) -> None:
    directory = tmp_path / "keys"
    (directory / "..2026_01_01").mkdir(parents=True)  # a mounted Secret's own entries are skipped
    (directory / "..data").symlink_to(directory / "..2026_01_01")
    (directory / "old.key").write_text(b64(C) + "\n")
    assert load_previous_keys(f"{b64(A)}, {b64(B)}", directory) == [A, B, C]
    assert load_previous_keys(None, None) == []
    settings = Settings(master_key=b64(B), previous_master_keys=b64(A), previous_master_keys_dir=directory)
    assert make_vault(settings).key_ids == [key_id(B), key_id(A), key_id(C)]

    (directory / "bad.key").write_text("not-a-key")
    with pytest.raises(MasterKeyError, match=r"bad\.key") as error:
        load_previous_keys(None, directory)
    assert "not-a-key" not in str(error.value)
    with pytest.raises(MasterKeyError, match=r"INTAKE_PREVIOUS_MASTER_KEYS\[1\]"):
        load_previous_keys(f"{b64(A)},c2hvcnQ=", None)
    with pytest.raises(MasterKeyError, match="INTAKE_PREVIOUS_MASTER_KEYS_DIR"):
        load_previous_keys(None, tmp_path / "missing")


class FailingVault(Vault):
    """Fails on its `fail_at`-th re-wrap, as a crash inside a batch would."""

    def __init__(self, master: bytes, previous: list[bytes], fail_at: int) -> None:
        super().__init__(master, previous)
        self.calls, self.fail_at = 0, fail_at

    def rewrap(self, case_id: str, wrapped: bytes, wrapped_by: str | None) -> tuple[str, bytes]:
        self.calls += 1
        if self.calls == self.fail_at:
            raise RuntimeError("injected")
        return super().rewrap(case_id, wrapped, wrapped_by)


def test_a_rotation_rewraps_in_batches_and_a_failed_batch_leaves_its_rows_as_they_were(intake: Any) -> None:
    under_a = bootstrap(Settings(master_key=b64(A)), intake.engine)
    ids = [accept(under_a, under_a.handle(intake.register_command())[0]) for _ in range(5)]
    erased = under_a.handle(commands.EraseCase(intake.supervisor, "erase-1", ids[4], EraseReason.SURVIVOR_REQUEST))[0]
    with intake.engine.connect() as conn:
        sealed_before = dict(conn.execute(select(case_personal_data.c.case_id, case_personal_data.c.ciphertext)).all())

    def rows() -> dict[str, str | None]:
        with intake.engine.connect() as conn:
            return dict(conn.execute(select(case_keys.c.case_id, case_keys.c.key_id)).all())

    assert rows() == dict.fromkeys(ids[:4], key_id(A))  # the erased case has no key to re-wrap
    # Fails on the second row of the second batch of two: the batch's first row is re-wrapped but not committed.
    failing = FailingVault(B, [A], fail_at=4)
    with pytest.raises(RuntimeError, match="injected"):
        keys.rotate(lambda: IntakeUnitOfWork(intake.engine, failing), 2, lambda done, total: None)
    assert Counter(rows().values()) == {key_id(A): 2, key_id(B): 2}

    progress: list[tuple[int, int]] = []
    assert keys.rotate(lambda: IntakeUnitOfWork(intake.engine, Vault(B, [A])), 1,
                       lambda done, total: progress.append((done, total))) == 2
    assert progress == [(1, 2), (2, 2)]
    assert rows() == dict.fromkeys(ids[:4], key_id(B))
    status = keys.key_status(lambda: IntakeUnitOfWork(intake.engine, Vault(B, [A])))
    assert (status.counts, status.left, status.erased, status.unknown) == ({key_id(B): 4}, 0, 1, {})
    assert keys.rotate(lambda: IntakeUnitOfWork(intake.engine, Vault(B, [A])), 2, lambda d, t: None) == 0

    # Only B from now on: every case reads back; the erased one stays unreadable; the data was not re-sealed.
    under_b = bootstrap(Settings(master_key=b64(B)), intake.engine)
    for case_id in ids[:4]:
        contact, _ = under_b.handle(read_contact(intake, case_id))
        assert (contact.name, contact.phone) == ("Trần Thị Mẫu", "0912 345 678")
    with pytest.raises(FailedPrecondition, match="erased"):
        under_b.handle(read_contact(intake, erased.case_id))
    with intake.engine.connect() as conn:
        assert dict(conn.execute(select(case_personal_data.c.case_id, case_personal_data.c.ciphertext)).all()) \
            == sealed_before


def test_a_rotation_refuses_to_start_while_a_key_in_use_is_not_configured(intake: Any) -> None:
    under_a = bootstrap(Settings(master_key=b64(A)), intake.engine)
    under_a.handle(intake.register_command())
    only_b = lambda: IntakeUnitOfWork(intake.engine, Vault(B))  # noqa: E731
    assert keys.key_status(only_b).unknown == {key_id(A): 1}
    with pytest.raises(MasterKeyError, match=f"{key_id(A)} \\(1 case keys\\)"):
        keys.rotate(only_b, 10, lambda done, total: None)
    with intake.engine.connect() as conn:
        assert conn.execute(select(case_keys.c.key_id)).scalars().all() == [key_id(A)]
