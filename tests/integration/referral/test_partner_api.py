"""The partner agencies', supervisors' and directory APIs over real gRPC with mutual TLS, on SQLite and
PostgreSQL: a machine's identity from its certificate, a person's from their Keycloak access token;
nothing learned about other agencies' or other provinces' referrals, idempotent changes, the watch
stream, and contact details only after acceptance."""

from __future__ import annotations

import dataclasses
import queue
import threading
import time
import uuid
from typing import Any

import grpc
import pytest
from sqlalchemy import select

from referral.adapters.tables import referral_history
from referral.domain import commands
from refnet.common.v1 import types_pb2 as t
from refnet.referral.v1 import referral_service_pb2 as pb
from refnet.referral.v1 import referral_service_pb2_grpc as referral_grpc
from refnet_platform.identity import channel_credentials
from refnet_platform.vocabulary import ServiceType, Sex

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

POLICE, SHELTER, LEGAL_AID = ServiceType.POLICE_PROTECTION, ServiceType.SHELTER, ServiceType.LEGAL_AID


def refused(call: Any, request: Any) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as error:
        call(request, timeout=10)
    return error.value


def rid() -> str:
    return f"req-{uuid.uuid4()}"


def referral_of(api: Any, case_id: str, provider_id: str) -> pb.Referral:
    found = api.referrals(provider_id).ListReferrals(pb.ListReferralsRequest(case_id=case_id), timeout=10).referrals
    assert len(found) == 1, found
    return found[0]


def actors(api: Any, referral_id: str) -> list[str]:
    """Who acted at each step of the referral's history ("role:subject"), oldest first."""
    with api.engine.connect() as conn:
        return list(conn.execute(select(referral_history.c.actor).where(
            referral_history.c.referral_id == referral_id).order_by(referral_history.c.id)).scalars())


def test_an_agency_works_its_referral_through_the_api(api: Any) -> None:
    case_id, _ = api.register(POLICE)
    police = api.referrals("qn-police-baichay")
    r = referral_of(api, case_id, "qn-police-baichay")
    assert (r.status, r.service_type, r.attempt) == (pb.REFERRAL_STATUS_REQUESTED, t.SERVICE_TYPE_POLICE_PROTECTION, 1)
    assert r.accept_by.seconds > r.requested_at.seconds

    accept = pb.AcceptReferralRequest(referral_id=r.referral_id, request_id=rid())
    accepted = police.AcceptReferral(accept, timeout=10).referral
    assert police.AcceptReferral(accept, timeout=10).referral.version == accepted.version  # a retry: no change
    assert accepted.status == pb.REFERRAL_STATUS_ACCEPTED and not accepted.HasField("accept_by")
    police.ReportProgress(pb.ReportProgressRequest(referral_id=r.referral_id, request_id=rid(),
                                                   progress=pb.PROGRESS_CONTACT_MADE), timeout=10)
    police.StartService(pb.StartServiceRequest(referral_id=r.referral_id, request_id=rid()), timeout=10)
    done = police.CompleteReferral(pb.CompleteReferralRequest(referral_id=r.referral_id, request_id=rid(),
                                                              outcome=pb.OUTCOME_SERVICE_COMPLETED), timeout=10)
    assert (done.referral.status, done.referral.reason, done.referral.last_progress) == (
        pb.REFERRAL_STATUS_COMPLETED, "service_completed", pb.PROGRESS_CONTACT_MADE)
    again = refused(police.StartService, pb.StartServiceRequest(referral_id=r.referral_id, request_id=rid()))
    assert again.code() == grpc.StatusCode.FAILED_PRECONDITION and "completed" in again.details()
    no_id = refused(police.StartService, pb.StartServiceRequest(referral_id=r.referral_id))
    assert no_id.code() == grpc.StatusCode.INVALID_ARGUMENT and no_id.details().startswith("client_request_id")
    # The deprecated request_id (used above, as old clients send it) and client_request_id name one id.
    both = refused(police.StartService, pb.StartServiceRequest(referral_id=r.referral_id, request_id=rid(),
                                                               client_request_id=rid()))
    assert both.code() == grpc.StatusCode.INVALID_ARGUMENT and both.details().startswith("client_request_id")
    repeat = pb.CompleteReferralRequest(referral_id=r.referral_id, client_request_id=rid(),
                                        outcome=pb.OUTCOME_SERVICE_COMPLETED)
    assert refused(police.CompleteReferral, repeat).code() == grpc.StatusCode.FAILED_PRECONDITION  # done already
    changes = [e.to_status for e in api.events("ReferralStatusChanged") if e.referral_id == r.referral_id]
    assert changes == [pb.REFERRAL_STATUS_ACCEPTED, pb.REFERRAL_STATUS_IN_SERVICE, pb.REFERRAL_STATUS_COMPLETED]
    # Routing made it; each later step is the agency's own (accept, progress, start, complete).
    assert actors(api, r.referral_id)[1:] == ["agency:qn-police-baichay"] * 4


def test_another_agency_or_a_guessed_id_learns_nothing(api: Any) -> None:
    case_id, _ = api.register(POLICE)
    r = referral_of(api, case_id, "qn-police-baichay")
    intruder = api.referrals("qn-police-halong")
    guessed = str(uuid.uuid4())
    answers = []
    for referral_id in (r.referral_id, guessed):
        for call, request in [
            (intruder.GetReferral, pb.GetReferralRequest(referral_id=referral_id)),
            (intruder.AcceptReferral, pb.AcceptReferralRequest(referral_id=referral_id, request_id=rid())),
            (intruder.DeclineReferral, pb.DeclineReferralRequest(referral_id=referral_id, request_id=rid(),
                                                                 reason=pb.DECLINE_REASON_NO_CAPACITY)),
            (intruder.GetSurvivorContact, pb.GetSurvivorContactRequest(referral_id=referral_id)),
        ]:
            error = refused(call, request)
            answers.append((error.code(), error.details().replace(referral_id, "<id>")))
    # The same answer, word for word, for another agency's referral and for an id that does not exist.
    assert answers[:4] == answers[4:] and {code for code, _ in answers} == {grpc.StatusCode.NOT_FOUND}
    listed = intruder.ListReferrals(pb.ListReferralsRequest(case_id=case_id), timeout=10).referrals
    assert list(listed) == []
    # Asking for another agency's list reads as an empty list (not a refusal that would confirm it exists).
    theirs = intruder.ListReferrals(pb.ListReferralsRequest(provider_id="qn-police-baichay"), timeout=10).referrals
    assert list(theirs) == []
    # Other roles cannot act as the agency; an operator reads the case's referrals.
    operator = api.referrals("qn-worker-7", "operator")
    error = refused(operator.AcceptReferral, pb.AcceptReferralRequest(referral_id=r.referral_id, request_id=rid()))
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    assert [x.referral_id for x in operator.ListReferrals(pb.ListReferralsRequest(case_id=case_id),
                                                          timeout=10).referrals] == [r.referral_id]
    assert referral_of(api, case_id, "qn-police-baichay").status == pb.REFERRAL_STATUS_REQUESTED


def not_found(call: Any, referral_id: str) -> tuple[grpc.StatusCode, str]:
    """GetReferral's refusal, the id blanked out so answers about different ids can be compared."""
    error = refused(call, pb.GetReferralRequest(referral_id=referral_id))
    return error.code(), error.details().replace(referral_id, "<id>")


def test_people_signed_in_see_their_province_s_or_their_agency_s_referrals_only(api: Any) -> None:
    """Real access tokens from Keycloak through the front door: an operator's remit is her provinces, an
    agency's staff member's is their agency; outside it a referral answers exactly as a made-up id."""
    qn_case, _ = api.register(POLICE)
    ht_case, _ = api.register(POLICE, province="42", commune="18073")
    hospital_case, _ = api.register(ServiceType.MEDICAL)
    mine = referral_of(api, qn_case, "qn-police-baichay")
    ht = referral_of(api, ht_case, "ht-police")
    hospitals = referral_of(api, hospital_case, "qn-hospital")
    guessed = str(uuid.uuid4())

    qn_operator, ht_operator = api.referrals("qn-operator", "operator"), api.referrals("ht-operator", "operator")
    get = pb.GetReferralRequest
    assert qn_operator.GetReferral(get(referral_id=mine.referral_id), timeout=10).referral.case_id == qn_case
    assert ht_operator.GetReferral(get(referral_id=ht.referral_id), timeout=10).referral.case_id == ht_case
    # Quảng Ninh's operator learns nothing of a Hà Tĩnh referral: the answer a made-up id gets, word for word.
    assert not_found(qn_operator.GetReferral, ht.referral_id) == not_found(qn_operator.GetReferral, guessed)
    assert not_found(qn_operator.GetReferral, guessed)[0] == grpc.StatusCode.NOT_FOUND
    assert list(qn_operator.ListReferrals(pb.ListReferralsRequest(case_id=ht_case), timeout=10).referrals) == []

    # The agency's staff member (a person, not the agency's system) reads their own agency's referral...
    officer = api.person("qn-police-baichay")
    assert officer.GetReferral(get(referral_id=mine.referral_id), timeout=10).referral.provider_id \
        == "qn-police-baichay"
    assert mine.referral_id in {r.referral_id for r in officer.ListReferrals(
        pb.ListReferralsRequest(case_id=qn_case), timeout=10).referrals}
    # ...and gets for the hospital's referral exactly what a made-up id gets.
    assert not_found(officer.GetReferral, hospitals.referral_id) == not_found(officer.GetReferral, guessed)
    assert not_found(officer.GetReferral, guessed)[0] == grpc.StatusCode.NOT_FOUND


def test_no_certificate_no_call(api: Any) -> None:
    ca_only = grpc.ssl_channel_credentials(root_certificates=api.network.pki.ca.read_bytes())
    with grpc.secure_channel(api.network.address("referral"), ca_only) as channel:
        error = refused(referral_grpc.ReferralServiceStub(channel).ListReferrals, pb.ListReferralsRequest())
    assert error.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.UNAUTHENTICATED)
    # A certificate from another authority is refused as well.
    from refnet_dev.certs import DevPki

    rogue = DevPki(api.network.data_dir / "rogue-ca").ensure()
    cert, key = rogue.client("qn-police-baichay", "agency")
    with grpc.secure_channel(api.network.address("referral"),
                             channel_credentials(api.network.pki.ca, cert, key)) as channel:
        error = refused(referral_grpc.ReferralServiceStub(channel).ListReferrals, pb.ListReferralsRequest())
    assert error.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.UNAUTHENTICATED)
    # A certificate of our own authority naming a person's role grants nothing: people sign in.
    cert, key = api.network.pki.client("qn-operator", "operator")
    with grpc.secure_channel(api.network.address("referral"),
                             channel_credentials(api.network.pki.ca, cert, key)) as channel:
        error = refused(referral_grpc.ReferralServiceStub(channel).GetReferral, pb.GetReferralRequest())
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED


def test_a_decline_sends_the_need_to_the_next_provider(api: Any) -> None:
    case_id, _ = api.register(POLICE)
    first = referral_of(api, case_id, "qn-police-baichay")
    declined = api.referrals("qn-police-baichay").DeclineReferral(pb.DeclineReferralRequest(
        referral_id=first.referral_id, request_id=rid(), reason=pb.DECLINE_REASON_NO_CAPACITY), timeout=10).referral
    assert (declined.status, declined.reason) == (pb.REFERRAL_STATUS_REJECTED, "no_capacity")
    second = referral_of(api, case_id, "qn-police-campha")
    assert (second.status, second.attempt, second.previous_referral_id) == (pb.REFERRAL_STATUS_REQUESTED, 2,
                                                                           first.referral_id)


def test_the_watch_stream_sends_open_referrals_then_every_change_of_mine_only(api: Any) -> None:
    mine_before, _ = api.register(LEGAL_AID)
    got: queue.Queue[pb.WatchReferralsResponse] = queue.Queue()
    stream = api.referrals("qn-legal-aid").WatchReferrals(pb.WatchReferralsRequest(include_open=True), timeout=60)

    def read() -> None:
        try:
            for item in stream:
                got.put(item)
        except grpc.RpcError:
            pass

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        def next_item() -> pb.WatchReferralsResponse:
            return got.get(timeout=10)

        snapshot = []
        while True:
            item = next_item()
            snapshot.append(item)
            if item.referral.case_id == mine_before:
                break
        assert all(i.snapshot for i in snapshot)
        api.register(POLICE)  # not mine: never seen
        mine_after, _ = api.register(LEGAL_AID)
        new = next_item()
        assert (new.snapshot, new.referral.case_id, new.referral.status) == (False, mine_after,
                                                                             pb.REFERRAL_STATUS_REQUESTED)
        api.referrals("qn-legal-aid").AcceptReferral(pb.AcceptReferralRequest(
            referral_id=new.referral.referral_id, request_id=rid()), timeout=10)
        accepted = next_item()
        assert (accepted.referral.referral_id, accepted.referral.status) == (new.referral.referral_id,
                                                                             pb.REFERRAL_STATUS_ACCEPTED)
        assert accepted.referral.version > new.referral.version
        time.sleep(0.5)
        assert got.empty()  # each version once
    finally:
        stream.cancel()
        reader.join(timeout=5)


def test_contact_details_only_after_acceptance_and_never_after_withdrawal(api: Any) -> None:
    case_id, needs = api.register(POLICE)
    police = api.referrals("qn-police-baichay")
    r = referral_of(api, case_id, "qn-police-baichay")
    before = refused(police.GetSurvivorContact, pb.GetSurvivorContactRequest(referral_id=r.referral_id))
    assert before.code() == grpc.StatusCode.FAILED_PRECONDITION and "accepted" in before.details()
    assert [c for c in api.intake.calls if c[2].referral_id == r.referral_id] == []

    police.AcceptReferral(pb.AcceptReferralRequest(referral_id=r.referral_id, request_id=rid()), timeout=10)
    contact = police.GetSurvivorContact(pb.GetSurvivorContactRequest(referral_id=r.referral_id), timeout=10)
    assert (contact.name, contact.phone, list(contact.categories), contact.phone_is_safe) == (
        "Canary Name", "0900 000 111", ["name", "phone", "safe_contact"], True)
    # When she can safely be called reaches the agency that calls her.
    assert [(list(s.weekdays), s.start, s.end) for s in contact.safe_times] == [([2, 4], "21:30", "22:15")]
    [(subject, role, request)] = [c for c in api.intake.calls if c[2].referral_id == r.referral_id]
    # Referral asks as refnet service "referral" (its own certificate), on behalf of the accepting agency.
    assert (subject, role) == ("referral", "service")
    assert (request.case_id, request.recipient_id, request.recipient_sector, request.service_type,
            request.purpose) == (case_id, "qn-police-baichay", "police", t.SERVICE_TYPE_POLICE_PROTECTION,
                                 "provider_accepted_referral")

    api.bus.handle(commands.WithdrawConsent(case_id, needs[POLICE], POLICE))
    after = refused(police.GetSurvivorContact, pb.GetSurvivorContactRequest(referral_id=r.referral_id))
    assert after.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert referral_of(api, case_id, "qn-police-baichay").status == pb.REFERRAL_STATUS_CANCELLED
    assert len([c for c in api.intake.calls if c[2].referral_id == r.referral_id]) == 1


def test_contact_details_while_intake_is_down_are_unavailable_and_can_be_retried(api: Any) -> None:
    case_id, _ = api.register(POLICE)
    police = api.referrals("qn-police-baichay")
    r = referral_of(api, case_id, "qn-police-baichay")
    police.AcceptReferral(pb.AcceptReferralRequest(referral_id=r.referral_id, request_id=rid()), timeout=10)
    api.intake.down = True
    try:
        down = refused(police.GetSurvivorContact, pb.GetSurvivorContactRequest(referral_id=r.referral_id))
    finally:
        api.intake.down = False
    assert down.code() == grpc.StatusCode.UNAVAILABLE
    assert down.details() == "intake's contact service is unavailable; try again shortly"
    contact = police.GetSurvivorContact(pb.GetSurvivorContactRequest(referral_id=r.referral_id), timeout=10)
    assert contact.name == "Canary Name"


def test_supervisors_see_a_province_s_escalations_and_assign_a_provider(api: Any) -> None:
    case_id, _ = api.register(SHELTER, province="42", commune="18073", sex=Sex.MALE)
    supervisor = api.escalations("ht-supervisor")
    listed = supervisor.ListEscalations(pb.ListEscalationsRequest(province_code="42", unresolved_only=True),
                                        timeout=10).escalations
    stuck = next(e.referral for e in listed if e.referral.case_id == case_id)
    assert (stuck.provider_id, stuck.status, stuck.reason) == ("", pb.REFERRAL_STATUS_ESCALATED, "no_provider")
    error = refused(api.escalations("ht-police", "agency").ListEscalations,
                    pb.ListEscalationsRequest(province_code="42"))
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    error = refused(supervisor.ListEscalations, pb.ListEscalationsRequest(province_code="99"))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and error.details().startswith("province_code")
    # Another province's supervisor sees none of Hà Tĩnh's escalations and cannot act on one.
    elsewhere = api.escalations("qn-supervisor")
    assert list(elsewhere.ListEscalations(pb.ListEscalationsRequest(province_code="42"), timeout=10).escalations) \
        == []
    error = refused(elsewhere.AssignProvider, pb.AssignProviderRequest(
        referral_id=stuck.referral_id, provider_id="ht-shelter-trusted", request_id=rid()))
    assert (error.code(), error.details()) == (grpc.StatusCode.NOT_FOUND, f"referral {stuck.referral_id} not found")
    # Only to a provider that serves the case's area: Cần Thơ's shelter does not reach Hà Tĩnh.
    error = refused(supervisor.AssignProvider, pb.AssignProviderRequest(
        referral_id=stuck.referral_id, provider_id="ct-shelter-spc", request_id=rid()))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and error.details().startswith("provider_id")
    made = supervisor.AssignProvider(pb.AssignProviderRequest(referral_id=stuck.referral_id,
                                                              provider_id="ht-shelter-trusted", request_id=rid()),
                                     timeout=10).referral
    assert (made.provider_id, made.previous_referral_id) == ("ht-shelter-trusted", stuck.referral_id)
    listed = supervisor.ListEscalations(pb.ListEscalationsRequest(province_code="42"), timeout=10).escalations
    resolved = next(e for e in listed if e.referral.referral_id == stuck.referral_id)
    assert (resolved.rerouted_referral_id, resolved.rerouted_provider_id) == (made.referral_id, "ht-shelter-trusted")
    assert actors(api, made.referral_id) == ["supervisor:ht-supervisor"]  # the history names who assigned it


def test_the_directory_shows_shelters_by_province_and_contact_point_only(api: Any) -> None:
    directory = api.directory()
    shelters = directory.ListProviders(pb.ListProvidersRequest(province_code="22",
                                                               service_type=t.SERVICE_TYPE_SHELTER),
                                       timeout=10).providers
    assert {p.provider_id for p in shelters} == {"qn-shelter-spc", "qn-shelter-community"}
    assert all(p.commune_code == "" and p.public_contact and p.beds_capacity for p in shelters)
    ranked = directory.RankProviders(pb.RankProvidersRequest(
        province_code="22", commune_code="06673", service_type=t.SERVICE_TYPE_SHELTER, sex=t.SEX_MALE),
        timeout=10).providers
    assert [(r.provider.provider_id, r.area_rank) for r in ranked] == [("hp-shelter-spc-men", 2)]
    legal = directory.GetProvider(pb.GetProviderRequest(provider_id="qn-legal-aid"), timeout=10).provider
    assert [(list(h.weekdays), h.opens_at, h.closes_at) for h in legal.opening_hours] == [
        ([1, 2, 3, 4, 5], "07:30", "11:30"), ([1, 2, 3, 4, 5], "13:30", "17:00")]
    error = refused(directory.RankProviders, pb.RankProvidersRequest(province_code="22", commune_code="18073",
                                                                     service_type=t.SERVICE_TYPE_SHELTER))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and error.details().startswith("commune_code")


def test_a_directory_import_shows_in_the_running_api_at_its_next_call(api: Any) -> None:
    """The api keeps the directory in memory; a change committed by another process is served at once."""
    directory = api.directory()
    before = directory.GetProvider(pb.GetProviderRequest(provider_id="ct-legal-aid"), timeout=10).provider
    known = api.bus.handle(commands.GetProvider("ct-legal-aid")).provider
    try:
        api.bus.handle(commands.LoadDirectory([dataclasses.replace(known, public_contact="0292 3 999 999")],
                                              update_existing=True))
        after = directory.GetProvider(pb.GetProviderRequest(provider_id="ct-legal-aid"), timeout=10).provider
        assert (before.public_contact, after.public_contact) == (known.public_contact, "0292 3 999 999")
    finally:
        api.bus.handle(commands.LoadDirectory([known], update_existing=True))
