"""Least privilege through referral's bus: each person acts only within their remit, and what lies outside it
answers exactly as what does not exist. The rules come from one table (referral.service_layer.authorization)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from referral.adapters.tables import referral_history
from referral.domain import commands
from referral.domain.model import Referral, Status
from referral.service_layer.authorization import RULES, authorization_table_markdown
from refnet.referral.v1 import referral_service_pb2 as pb
from refnet_platform.caller import ALL_PROVINCES, Caller, Role
from refnet_platform.errors import DomainError, InvalidArgument, NotFound, PermissionDenied
from refnet_platform.vocabulary import ServiceType, Sex

POLICE, SHELTER, LEGAL_AID = ServiceType.POLICE_PROTECTION, ServiceType.SHELTER, ServiceType.LEGAL_AID
QUANG_NINH, HA_TINH = "22", "42"
README = Path(__file__).resolve().parents[3] / "services" / "referral" / "README.md"
EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


def assert_reads_as_unknown(outside: pytest.ExceptionInfo[DomainError], real_id: str,
                            made_up: pytest.ExceptionInfo[DomainError], guessed: str) -> None:
    assert type(outside.value) is type(made_up.value) is NotFound
    assert str(outside.value).replace(real_id, "ID") == str(made_up.value).replace(guessed, "ID")


def get_as(referral, caller: Caller, r: Referral) -> Referral:
    return referral.handle(commands.GetReferral(caller, r.referral_id))


def listed(referral, caller: Caller, case_id: str) -> list[str]:
    return [r.referral_id for r in referral.handle(commands.ListReferrals(caller, case_id=case_id))[0]]


def two_provinces(referral) -> tuple[Referral, Referral]:
    """A police referral in Quảng Ninh and one in Hà Tĩnh."""
    qn_case, _ = referral.register(POLICE)
    ht_case, _ = referral.register(POLICE, province=HA_TINH, commune="18073")
    qn, ht = referral.only(qn_case, POLICE), referral.only(ht_case, POLICE)
    assert (qn.province_code, ht.province_code, ht.provider_id) == (QUANG_NINH, HA_TINH, "ht-police")
    return qn, ht


def test_an_operator_reads_only_her_provinces_referrals_and_the_national_line_reads_all(referral) -> None:
    qn, ht = two_provinces(referral)
    operator = referral.operator  # Quảng Ninh's
    assert get_as(referral, operator, qn).referral_id == qn.referral_id
    guessed = str(uuid.uuid4())
    with pytest.raises(NotFound) as outside:
        get_as(referral, operator, ht)
    with pytest.raises(NotFound) as made_up:
        referral.handle(commands.GetReferral(operator, guessed))
    assert_reads_as_unknown(outside, ht.referral_id, made_up, guessed)

    for everywhere in (referral.national, referral.person("ops-1", Role.OPS, ALL_PROVINCES),
                       referral.person("both-1", Role.OPERATOR, QUANG_NINH, HA_TINH)):
        assert [get_as(referral, everywhere, r).referral_id for r in (qn, ht)] == [qn.referral_id, ht.referral_id]
    # The operations team and supervisors have provinces too.
    for ht_only in (referral.person("ops-ht", Role.OPS, HA_TINH),
                    referral.person("ht-supervisor-1", Role.SUPERVISOR, HA_TINH)):
        assert get_as(referral, ht_only, ht).referral_id == ht.referral_id
        with pytest.raises(NotFound, match=f"^referral {qn.referral_id} not found$"):
            get_as(referral, ht_only, qn)
    with pytest.raises(NotFound):
        get_as(referral, referral.person("nowhere-1", Role.OPERATOR), qn)  # no province: nothing


def test_a_case_s_referrals_are_listed_only_within_the_caller_s_provinces(referral) -> None:
    qn, ht = two_provinces(referral)
    operator = referral.operator
    assert listed(referral, operator, qn.case_id) == [qn.referral_id]
    assert listed(referral, operator, ht.case_id) == []  # empty, as for a case that does not exist
    assert listed(referral, operator, str(uuid.uuid4())) == []
    assert listed(referral, referral.national, ht.case_id) == [ht.referral_id]
    assert listed(referral, referral.person("ht-worker-1", Role.OPERATOR, HA_TINH), ht.case_id) == [ht.referral_id]
    assert listed(referral, referral.person("nowhere-1", Role.OPERATOR), qn.case_id) == []


def test_an_agency_s_staff_act_on_their_agency_s_referrals_only(referral) -> None:
    case_id, _ = referral.register(POLICE, LEGAL_AID)
    police, legal = referral.only(case_id, POLICE), referral.only(case_id, LEGAL_AID)
    assert (police.provider_id, legal.provider_id) == ("qn-police-baichay", "qn-legal-aid")
    officer = referral.person("qn-police-baichay-officer", Role.AGENCY, organisation_id="qn-police-baichay")

    assert get_as(referral, officer, police).referral_id == police.referral_id
    assert [r.referral_id for r in referral.handle(commands.ListReferrals(officer))[0]] == [police.referral_id]
    assert [r.referral_id for r in referral.handle(commands.ChangedReferrals(officer, EPOCH))] == [police.referral_id]
    accepted = referral.handle(commands.AcceptReferral(officer, police.referral_id, "acc-1", "qn-police-baichay"))
    assert accepted.status is Status.ACCEPTED
    # The history names the person who acted; the referral says which agency.
    with referral.engine.connect() as conn:
        actors = conn.execute(select(referral_history.c.actor).where(
            referral_history.c.referral_id == police.referral_id).order_by(referral_history.c.id)).scalars().all()
    assert actors[-1] == "agency:qn-police-baichay-officer"
    # Request ids are the agency's: its own system retrying the officer's change does it once.
    again = referral.handle(commands.AcceptReferral(referral.agency("qn-police-baichay"), police.referral_id,
                                                    "acc-1"))
    assert (again.status, again.version) == (Status.ACCEPTED, accepted.version)
    referral.handle(commands.GetSurvivorContact(officer, police.referral_id))
    assert [r["recipient_id"] for r in referral.contacts.reads] == ["qn-police-baichay"]

    # Another agency's referral reads exactly as one that does not exist, whatever is tried.
    guessed = str(uuid.uuid4())
    for command_for in (lambda rid: commands.GetReferral(officer, rid),
                        lambda rid: commands.AcceptReferral(officer, rid, f"steal-{rid}"),
                        lambda rid: commands.StartService(officer, rid, f"start-{rid}"),
                        lambda rid: commands.GetSurvivorContact(officer, rid)):
        with pytest.raises(NotFound) as outside:
            referral.handle(command_for(legal.referral_id))
        with pytest.raises(NotFound) as made_up:
            referral.handle(command_for(guessed))
        assert_reads_as_unknown(outside, legal.referral_id, made_up, guessed)
    assert referral.handle(commands.ListReferrals(officer, provider_id="qn-legal-aid"))[0] == []
    with pytest.raises(PermissionDenied, match="provider_id"):
        referral.handle(commands.AcceptReferral(officer, police.referral_id, "acc-2", "qn-legal-aid"))
    assert referral.only(case_id, LEGAL_AID).status is Status.REQUESTED
    assert len(referral.contacts.reads) == 1


def test_an_agency_caller_that_names_no_organisation_owns_nothing(referral) -> None:
    # A man needing a bed in Hà Tĩnh: no provider at all, so the referral's provider id is empty.
    case_id, _ = referral.register(SHELTER, province=HA_TINH, commune="18073", sex=Sex.MALE)
    stuck = referral.only(case_id, SHELTER)
    assert stuck.provider_id == ""
    nobody = Caller("nobody", Role.AGENCY)
    with pytest.raises(NotFound):
        get_as(referral, nobody, stuck)
    assert referral.handle(commands.ListReferrals(nobody))[0] == []
    assert referral.handle(commands.ChangedReferrals(nobody, EPOCH)) == []


def test_a_supervisor_assigns_only_in_her_provinces_and_only_to_a_provider_serving_the_case_s_area(referral) -> None:
    def stuck_man() -> Referral:
        case_id, _ = referral.register(SHELTER, province=HA_TINH, commune="18073", sex=Sex.MALE)
        return referral.only(case_id, SHELTER, status=Status.ESCALATED)

    first, second = stuck_man(), stuck_man()
    quang_ninh = referral.supervisor
    assert referral.handle(commands.ListEscalations(quang_ninh, HA_TINH)) == ([], "")
    guessed = str(uuid.uuid4())
    with pytest.raises(NotFound) as outside:
        referral.handle(commands.AssignProvider(quang_ninh, first.referral_id, "ht-shelter-trusted", "qn-a1"))
    with pytest.raises(NotFound) as made_up:
        referral.handle(commands.AssignProvider(quang_ninh, guessed, "ht-shelter-trusted", "qn-a2"))
    assert_reads_as_unknown(outside, first.referral_id, made_up, guessed)

    national = referral.person("111-supervisor-1", Role.SUPERVISOR, ALL_PROVINCES)
    ops = referral.person("ops-ht", Role.OPS, HA_TINH)
    for sees in (national, ops):
        assert [r.referral_id for r, _ in referral.handle(commands.ListEscalations(sees, HA_TINH))[0]] == [
            first.referral_id, second.referral_id]
    with pytest.raises(PermissionDenied):
        referral.handle(commands.AssignProvider(ops, first.referral_id, "ht-shelter-trusted", "ops-a1"))

    ha_tinh = referral.person("ht-supervisor-1", Role.SUPERVISOR, HA_TINH)
    # Quảng Ninh's shelter is neither in Hà Tĩnh nor in a neighbouring province.
    with pytest.raises(InvalidArgument, match=r"^provider_id: qn-shelter-spc does not serve the case's area$"):
        referral.handle(commands.AssignProvider(ha_tinh, first.referral_id, "qn-shelter-spc", "ht-a1"))
    # Routing's reach: a neighbouring province (Nghệ An), or a service area the directory declares.
    referral.with_directory(
        {"provider_id": "na-shelter-men", "name": "Nghệ An", "sector": "shelter", "service_type": "shelter",
         "province_code": "40", "public_contact": "1800 1769", "open_24_7": True,
         "shelter": {"shelter_id": "na-men", "target_group": "men", "capacity": 4}},
        {"provider_id": "qn-shelter-men-ht", "name": "Quảng Ninh", "sector": "shelter", "service_type": "shelter",
         "province_code": QUANG_NINH, "public_contact": "1800 1769", "open_24_7": True, "service_areas": [HA_TINH],
         "shelter": {"shelter_id": "qn-men", "target_group": "men", "capacity": 4}})
    made = referral.handle(commands.AssignProvider(ha_tinh, first.referral_id, "na-shelter-men", "ht-a2"))
    assert (made.provider_id, made.previous_referral_id) == ("na-shelter-men", first.referral_id)
    with referral.engine.connect() as conn:
        actor = conn.execute(select(referral_history.c.actor).where(
            referral_history.c.referral_id == made.referral_id)).scalars().first()
    assert actor == "supervisor:ht-supervisor-1"
    made = referral.handle(commands.AssignProvider(ha_tinh, second.referral_id, "qn-shelter-men-ht", "ht-a3"))
    assert made.provider_id == "qn-shelter-men-ht"


def test_one_table_names_every_rpc_and_the_readme_shows_it() -> None:
    methods = [m.name for service in ("ReferralService", "EscalationService", "DirectoryService")
               for m in pb.DESCRIPTOR.services_by_name[service].methods]
    assert sorted(rule.method for rule in RULES) == sorted(methods)
    assert all(Role.GATEWAY not in rule.scopes for rule in RULES)  # a front door acts only as its person
    assert authorization_table_markdown() in README.read_text(encoding="utf-8")
