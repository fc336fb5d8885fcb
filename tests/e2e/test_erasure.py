"""Erasure on the real network: once a case is erased, its bytes are in no service's database. A case with a
distinctive canary in her name, phone, narrative, the consent's legal-basis note and a case worker's follow-up
note flows to referrals, a notice and a contact read; after EraseCase, every service's SQLite file (or a dump of
the whole PostgreSQL database) holds neither the canary nor the case's ciphertext. On PostgreSQL every process
runs as its service's own role (refnet_platform.db_roles), as on Kubernetes: the flow works end to end under
those roles."""

from __future__ import annotations

import sqlite3
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import make_url, text

from refnet.common.v1 import types_pb2 as t
from refnet.intake.v1 import casework_service_pb2 as casework_pb
from refnet.intake.v1 import casework_service_pb2_grpc as casework_grpc
from refnet.intake.v1 import intake_service_pb2 as intake_pb
from refnet.intake.v1 import intake_service_pb2_grpc as intake_grpc
from refnet.intake.v1 import types_pb2 as it
from refnet.referral.v1 import referral_service_pb2 as referral_pb
from refnet.referral.v1 import referral_service_pb2_grpc as referral_grpc
from refnet_dev.kafka import KafkaBroker
from refnet_dev.keycloak import Keycloak
from refnet_dev.network import Network
from refnet_dev.postgres import PG_BIN
from refnet_dev.util import eventually
from refnet_platform.db_roles import create_roles
from refnet_platform.engine import make_engine

pytestmark = pytest.mark.e2e

QUANG_NINH, BAI_CHAY = "22", "06673"


def _dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.fixture
def network(kafka_broker: KafkaBroker, keycloak: Keycloak, database_url: str, tmp_path: Path) -> Iterator[Network]:
    postgres = not database_url.startswith("sqlite")
    if postgres:
        url = make_url(database_url)
        create_roles(_dsn(url.set(database="postgres").render_as_string(hide_password=False)), url.database or "",
                     passwords={})
    net = Network(kafka_broker.bootstrap, tmp_path / "var", database_url=database_url if postgres else None,
                  keycloak=keycloak, database_roles=postgres)
    try:
        net.start()
        yield net
    finally:
        net.stop()


def _everything_stored(network: Network) -> bytes:
    """Every byte refnet's services hold: their SQLite files (with any write-ahead log), or a dump of the
    PostgreSQL database with every schema."""
    if network.database_url:
        dump = subprocess.run([str(PG_BIN / "pg_dump"), "--data-only", "--dbname", _dsn(network.database_url)],
                              capture_output=True, check=True, timeout=120)
        return dump.stdout
    for database in network.data_dir.glob("*.db"):
        # What SQLite does when the last process closes it cleanly: the write-ahead log folded into the file.
        # (Until then the log holds recent pages as they were; see deploy/k8s/README.md on erasure.)
        with sqlite3.connect(database) as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    files = sorted(network.data_dir.glob("*.db*"))
    assert {f.name for f in files} >= {"intake.db", "referral.db", "shelter.db", "notifications.db"}
    return b"".join(f.read_bytes() for f in files)


def _rows(network: Network, service: str, query: str, **params: Any) -> list[tuple[Any, ...]]:
    """Reads a service's own tables directly (as the test, never as another service)."""
    engine = make_engine(network.database_url, service) if network.database_url else \
        make_engine(f"sqlite:///{network.data_dir / f'{service}.db'}")
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text(query), params)]
    finally:
        engine.dispose()


def test_an_erased_case_leaves_no_bytes_in_any_database(network: Network) -> None:
    canary = f"Canary{uuid.uuid4().hex[:10]}"
    phone = f"09{uuid.uuid4().int % 10**8:08d}"
    secrets = {"name": f"Nguyễn Thị {canary}".encode(), "phone": phone.encode(),
               "narrative": f"narrative-{canary}".encode(), "note": f"note-{canary}".encode(),
               "follow_up": f"follow-up-{canary}".encode(), "canary": canary.encode()}
    request = intake_pb.RegisterCaseRequest(
        client_request_id=f"e2e-{uuid.uuid4()}", province_code=QUANG_NINH, commune_code=BAI_CHAY,
        case_types=[t.CASE_TYPE_DOMESTIC_VIOLENCE], risk_level=t.RISK_LEVEL_MEDIUM,
        survivor=intake_pb.Survivor(is_child=False, age=29, sex=t.SEX_FEMALE),
        needs=[intake_pb.Need(service_type=t.SERVICE_TYPE_POLICE_PROTECTION, consented=True),
               intake_pb.Need(service_type=t.SERVICE_TYPE_SHELTER, consented=True),
               intake_pb.Need(service_type=t.SERVICE_TYPE_LEGAL_AID, consented=False)],
        contact=intake_pb.Contact(name=f"Nguyễn Thị {canary}", phone=phone, phone_is_safe=True,
                                  address=f"Tổ 5 {canary}", safe_contact_note=f"after 18:00 {canary}"),
        narrative=f"narrative-{canary}", case_worker_id="qn-worker-7",
    )
    with network.channel("intake", "qn-worker-7", "operator") as operator_ch, \
            network.channel("intake", "qn-supervisor", "supervisor") as supervisor_ch, \
            network.channel("referral", "qn-police-baichay", "agency") as police_ch, \
            network.channel("referral", "qn-shelter-spc", "agency") as shelter_agency_ch:
        intake = intake_grpc.IntakeServiceStub(operator_ch)
        supervisor = intake_grpc.IntakeServiceStub(supervisor_ch)
        police = referral_grpc.ReferralServiceStub(police_ch)
        shelter_agency = referral_grpc.ReferralServiceStub(shelter_agency_ch)
        case = intake.RegisterCase(request, timeout=10).case
        legal_aid = next(n.need_id for n in case.needs if n.service_type == t.SERVICE_TYPE_LEGAL_AID)
        supervisor.OverrideConsent(intake_pb.OverrideConsentRequest(
            client_request_id=f"e2e-{uuid.uuid4()}", case_id=case.case_id, need_id=legal_aid,
            legal_basis_code=it.LEGAL_BASIS_OTHER, legal_basis_note=f"note-{canary}", data_categories=["phone"]),
            timeout=10)
        casework_grpc.CaseWorkServiceStub(operator_ch).AddFollowUp(casework_pb.AddFollowUpRequest(
            client_request_id=f"e2e-{uuid.uuid4()}", case_id=case.case_id, kind=it.FOLLOW_UP_KIND_HOME_VISIT,
            note=f"follow-up-{canary}"), timeout=10)

        def referrals(stub: Any, provider: str) -> list[Any]:
            reply = stub.ListReferrals(referral_pb.ListReferralsRequest(provider_id=provider, case_id=case.case_id))
            return list(reply.referrals)

        [police_referral] = eventually(lambda: referrals(police, "qn-police-baichay"), "a police referral")
        eventually(lambda: referrals(shelter_agency, "qn-shelter-spc"), "a shelter referral")
        police.AcceptReferral(referral_pb.AcceptReferralRequest(
            referral_id=police_referral.referral_id, client_request_id=f"e2e-{uuid.uuid4()}"), timeout=10)

        def contact() -> Any:
            try:
                return police.GetSurvivorContact(
                    referral_pb.GetSurvivorContactRequest(referral_id=police_referral.referral_id), timeout=10)
            except Exception:  # intake has not heard of the acceptance yet
                return None

        assert eventually(contact, "the police reading her contact after accepting").phone == phone
        eventually(lambda: _rows(network, "notifications", "SELECT 1 FROM notices WHERE case_id = :c",
                                 c=case.case_id), "notices about the case")

        # What the scan must find gone: the sealed personal data and note, while they exist.
        [(ciphertext,)] = _rows(network, "intake", "SELECT ciphertext FROM case_personal_data WHERE case_id = :c",
                                c=case.case_id)
        [(sealed_note,)] = _rows(network, "intake", "SELECT sealed FROM consent_notes WHERE case_id = :c",
                                 c=case.case_id)
        [(follow_up,)] = _rows(network, "intake", "SELECT ciphertext FROM follow_ups WHERE case_id = :c",
                               c=case.case_id)
        sealed = {"ciphertext": bytes(ciphertext), "note": bytes(sealed_note), "follow_up": bytes(follow_up)}
        texts = "SELECT notice_id FROM notices WHERE case_id = :c AND (body <> '' OR subject <> '')"
        rendered = {notice_id for (notice_id,) in _rows(network, "notifications", texts, c=case.case_id)}
        assert rendered
        before = _everything_stored(network)
        assert all(_holds(before, value) for value in sealed.values()), "the scan does not see the stored bytes"
        # Encrypted at rest: even before erasure, none of her words are in clear anywhere.
        assert not [what for what, value in secrets.items() if _holds(before, value)]

        supervisor.EraseCase(intake_pb.EraseCaseRequest(
            client_request_id=f"e2e-{uuid.uuid4()}", case_id=case.case_id,
            reason=it.ERASE_REASON_SURVIVOR_REQUEST), timeout=10)
        eventually(lambda: all(r.status == referral_pb.REFERRAL_STATUS_CANCELLED
                               for r in referrals(shelter_agency, "qn-shelter-spc")),
                   "referral cancelling the case's open referrals")
        eventually(lambda: not _rows(network, "notifications", "SELECT 1 FROM cases WHERE case_id = :c",
                                     c=case.case_id), "notifications forgetting the case")
        # notifications keeps no text it rendered about the case before (the notices that tell providers their
        # referral was cancelled come after, ids and codes only; staff notices still due would go out).
        eventually(lambda: not rendered & {n for (n,) in _rows(network, "notifications", texts, c=case.case_id)},
                   "notifications blanking the texts of the case's notices")
        time.sleep(1)

    network.stop()
    after = _everything_stored(network)
    assert not [what for what, value in {**secrets, **sealed}.items() if _holds(after, value)]


def _holds(stored: bytes, value: bytes) -> bool:
    """As stored, or as pg_dump writes a bytea (hex)."""
    return value in stored or value.hex().encode() in stored
