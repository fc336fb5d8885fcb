"""Rotating intake's master key on a live system, on SQLite and PostgreSQL: cases registered through the
real intake-api under key A, the api restarted with B current and A previous, the real `intake-keys`
console script re-wrapping the case keys (crashed mid-rotation once, then run again), and the api
restarted with B alone reading every case registered before the rotation. Quảng Ninh's operator and
supervisor sign in to the real Keycloak; referral reads her contact with its certificate."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import grpc
import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import text

from intake.adapters.crypto import Vault, key_id
from intake.config import MIGRATIONS
from refnet.common.v1 import types_pb2 as t
from refnet.intake.v1 import contact_service_pb2 as contact_pb
from refnet.intake.v1 import contact_service_pb2_grpc, intake_service_pb2_grpc
from refnet.intake.v1 import intake_service_pb2 as pb
from refnet.intake.v1 import types_pb2 as it
from refnet_dev.keycloak import Keycloak
from refnet_dev.network import Network
from refnet_platform.engine import make_engine
from refnet_platform.migrations import migrate

pytestmark = pytest.mark.integration

A, B = os.urandom(32), os.urandom(32)
A_ID, B_ID = key_id(A), key_id(B)
SECRETS = [base64.b64encode(k).decode() for k in (A, B)]
INTAKE_KEYS = str(Path(sys.executable).parent / "intake-keys")


def b64(key: bytes) -> str:
    return base64.b64encode(key).decode()


class Intake:
    """The real intake-api, restarted with other master keys as a deployment would be."""

    def __init__(self, database_url: str, data_dir: Path, keycloak: Keycloak) -> None:
        self.network = Network("127.0.0.1:9", data_dir, keycloak=keycloak)
        self.url = database_url
        self.keys = data_dir / "keys"
        self.keys.mkdir(parents=True)
        (self.keys / "a.key").write_text(b64(A))
        (self.keys / "b.key").write_text(b64(B))
        (self.keys / "previous").mkdir()  # a directory of previous keys, a file each, as Kubernetes mounts them
        (self.keys / "previous" / "a.key").write_text(b64(A) + "\n")

    def env(self, current: str, previous: bool) -> dict[str, str]:
        env = {key: value for key, value in self.network.env().items() if not key.startswith("INTAKE_PREVIOUS_")}
        env.update({"INTAKE_DATABASE_URL": self.url, "INTAKE_MASTER_KEY_FILE": str(self.keys / current),
                    "REFNET_LOG_LEVEL": "DEBUG"})
        env.pop("INTAKE_MASTER_KEY", None)
        if previous:
            env["INTAKE_PREVIOUS_MASTER_KEYS_DIR"] = str(self.keys / "previous")
        return env

    def start(self, current: str, previous: bool = False) -> None:
        self.network.stop()
        self.network.start_process("intake-api", self.env(current, previous))
        deadline = time.monotonic() + 60
        while not self.network.healthy("intake"):
            self.network.check_alive()
            if time.monotonic() > deadline:
                raise TimeoutError(self.network.log_tail("intake-api"))
            time.sleep(0.1)

    def keys_command(self, *args: str, current: str = "b.key", previous: bool = True,
                     **extra: str) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([INTAKE_KEYS, *args], env={**self.env(current, previous), **extra},
                                capture_output=True, text=True, timeout=300)
        assert not any(secret in result.stdout + result.stderr for secret in SECRETS), "a master key was printed"
        return result

    def register(self, name: str) -> str:
        with self.network.channel("intake", "qn-operator", "operator") as channel:  # a realm user, provinces 22
            return str(intake_service_pb2_grpc.IntakeServiceStub(channel).RegisterCase(pb.RegisterCaseRequest(
                client_request_id=f"it-{uuid.uuid4()}", province_code="22", commune_code="06673",
                case_types=[t.CASE_TYPE_DOMESTIC_VIOLENCE], risk_level=t.RISK_LEVEL_MEDIUM,
                survivor=pb.Survivor(age=29, sex=t.SEX_FEMALE),
                needs=[pb.Need(service_type=t.SERVICE_TYPE_POLICE_PROTECTION, consented=True)],
                contact=pb.Contact(name=name, phone="0987 000 111", phone_is_safe=True), narrative="chồng đánh",
            ), timeout=10).case.case_id)

    def erase(self, case_id: str) -> None:
        with self.network.channel("intake", "qn-supervisor", "supervisor") as channel:
            intake_service_pb2_grpc.IntakeServiceStub(channel).EraseCase(pb.EraseCaseRequest(
                client_request_id=f"it-{uuid.uuid4()}", case_id=case_id,
                reason=it.ERASE_REASON_SURVIVOR_REQUEST), timeout=10)

    def accepted_referral(self, case_id: str) -> str:
        """Intake's record of a police referral accepted for the case, as intake-worker (not running here)
        keeps it from referral's events: contact reads are answered only for such a referral."""
        referral_id = f"ref-{case_id}"
        engine = make_engine(self.url)
        try:
            with engine.begin() as conn:
                if conn.execute(text("SELECT 1 FROM referrals WHERE referral_id = :r"), {"r": referral_id}).first():
                    return referral_id
                conn.execute(text("INSERT INTO referrals (referral_id, case_id, need_id, provider_id, status, "
                                  "accepted, updated_at) SELECT :r, case_id, need_id, 'qn-police-baichay', "
                                  "'accepted', :a, CURRENT_TIMESTAMP FROM needs WHERE case_id = :c"),
                             {"r": referral_id, "c": case_id, "a": True})
        finally:
            engine.dispose()
        return referral_id

    def contact_name(self, case_id: str) -> str:
        """Her name, as the referral service reads it; an RpcError if it cannot be read."""
        referral_id = self.accepted_referral(case_id)
        with self.network.channel("intake", "referral", "service") as channel:
            return str(contact_service_pb2_grpc.CaseContactServiceStub(channel).GetCaseContact(
                contact_pb.GetCaseContactRequest(
                    case_id=case_id, referral_id=referral_id, recipient_id="qn-police-baichay",
                    service_type=t.SERVICE_TYPE_POLICE_PROTECTION, purpose="provider_accepted_referral",
                    recipient_sector="police"), timeout=10).name)

    def rows(self, sql: str) -> list[Any]:
        engine = make_engine(self.url)
        try:
            with engine.connect() as conn:
                return list(conn.execute(text(sql)).all())
        finally:
            engine.dispose()

    def key_ids(self) -> Counter[str | None]:
        return Counter(key for (key,) in self.rows("SELECT key_id FROM case_keys"))


def status_counts(stdout: str) -> dict[str, int]:
    """`intake-keys status`'s table: key id -> case keys."""
    lines = stdout.split("\n\n")[0].splitlines()[1:]
    return {line.split()[0]: int(line.split()[1]) for line in lines}


def test_case_keys_rotate_to_a_new_master_key_on_a_live_api(database_url: str, tmp_path: Path,
                                                           keycloak: Keycloak) -> None:
    intake = Intake(database_url, tmp_path, keycloak)
    try:
        intake.start("a.key")
        names = [f"Người {n} {uuid.uuid4().hex[:6]}" for n in range(5)]
        ids = [intake.register(name) for name in names]
        intake.erase(ids[4])
        assert intake.key_ids() == {A_ID: 4}
        # As a case key stored before key ids were recorded: none (the vault tries the keys it has).
        engine = make_engine(database_url)
        with engine.begin() as conn:
            conn.execute(text("UPDATE case_keys SET key_id = NULL WHERE case_id = :c"), {"c": ids[0]})
        engine.dispose()
        sealed = intake.rows("SELECT case_id, ciphertext FROM case_personal_data ORDER BY case_id")

        # Step 1 of the runbook: B becomes current, A is kept as a previous key.
        intake.start("b.key", previous=True)
        names.append(f"Người sau {uuid.uuid4().hex[:6]}")
        ids.append(intake.register(names[5]))
        assert intake.contact_name(ids[0]) == names[0] and intake.contact_name(ids[1]) == names[1]
        status = intake.keys_command("status")
        assert status.returncode == 0, status.stderr
        assert status_counts(status.stdout) == {B_ID: 1, A_ID: 3, "(none)": 1}
        assert "4 case keys left to re-wrap" in status.stdout and "1 erased" in status.stdout

        # A crash inside the second batch of two: the first batch stays re-wrapped, the second as it was.
        crashed = intake.keys_command("rotate", "--batch-size", "2", REFNET_CRASH_AT="intake_keys.mid_batch")
        assert crashed.returncode == 137, crashed.stderr
        assert "re-wrapped 2/4" in crashed.stdout and "re-wrapped 4/4" not in crashed.stdout
        assert intake.key_ids()[B_ID] == 3 and intake.key_ids()[A_ID] + intake.key_ids()[None] == 2
        for case_id, name in zip(ids[:4] + ids[5:], names[:4] + names[5:], strict=True):
            assert intake.contact_name(case_id) == name  # with A and B, every row reads back

        # Without A the rotation refuses to start, naming the key, and changes nothing.
        refused = intake.keys_command("rotate", previous=False)
        assert refused.returncode == 1 and A_ID in refused.stderr and "INTAKE_PREVIOUS_MASTER_KEYS" in refused.stderr
        assert intake.keys_command("status", previous=False).returncode == 1
        assert intake.key_ids()[B_ID] == 3

        rerun = intake.keys_command("rotate", "--batch-size", "2")
        assert rerun.returncode == 0, rerun.stderr
        assert "re-wrapped 2/2" in rerun.stdout
        assert intake.key_ids() == {B_ID: 5}
        status = intake.keys_command("status")
        assert status_counts(status.stdout) == {B_ID: 5, A_ID: 0}
        assert "none left, can be removed" in status.stdout
        again = intake.keys_command("rotate")
        assert again.returncode == 0 and "nothing to re-wrap" in again.stdout
        # Only the case keys were re-wrapped: the personal data was not re-encrypted.
        assert intake.rows("SELECT case_id, ciphertext FROM case_personal_data WHERE case_id != "
                           f"'{ids[5]}' ORDER BY case_id") == sealed

        # Step 4: A is removed. Every case reads back with B alone; the erased one stays unreadable.
        intake.start("b.key")
        for case_id, name in zip(ids[:4] + ids[5:], names[:4] + names[5:], strict=True):
            assert intake.contact_name(case_id) == name
        with pytest.raises(grpc.RpcError) as gone:
            intake.contact_name(ids[4])
        assert gone.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "erased" in (gone.value.details() or "")
        log = (tmp_path / "logs" / "intake-api.log").read_text(encoding="utf-8")
        assert not any(secret in log for secret in SECRETS)
    finally:
        intake.network.stop()


def test_case_keys_stored_before_key_ids_get_the_column_and_are_rewrapped(database_url: str, tmp_path: Path) -> None:
    engine = make_engine(database_url)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    wrapped = Vault(A).wrap("case-1", case_key := os.urandom(32))[1]
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0002")  # case_keys as it was before 0003 (the migrations are frozen)
        conn.execute(text("INSERT INTO case_keys (case_id, wrapped_key) VALUES ('case-1', :w)"), {"w": wrapped})
    migrate(engine, MIGRATIONS)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT key_id FROM case_keys")).all() == [(None,)]
    env = {**os.environ, "INTAKE_DATABASE_URL": database_url, "INTAKE_MASTER_KEY": b64(B),
           "INTAKE_PREVIOUS_MASTER_KEYS": b64(A), "REFNET_DATA_DIR": str(tmp_path)}
    env.pop("INTAKE_MASTER_KEY_FILE", None)
    result = subprocess.run([INTAKE_KEYS, "rotate"], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "re-wrapped 1/1" in result.stdout
    with engine.connect() as conn:
        [(rewrapped, wrapped_by)] = conn.execute(text("SELECT wrapped_key, key_id FROM case_keys")).all()
    engine.dispose()
    assert wrapped_by == B_ID and Vault(B).unwrap("case-1", bytes(rewrapped), wrapped_by) == case_key
