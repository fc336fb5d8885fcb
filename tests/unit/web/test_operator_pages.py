"""The operator workspace in process, behind its sign-in, with the apis stood in for: the workspace, a call
logged, a case previewed then saved (one client_request_id per form), a form error next to its field with what
was typed kept, the case page with escalations first, the live events stream, places, the escalation queue.
The real network and browser: tests/e2e/test_web_operator.py."""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from itsdangerous import Signer
from starlette.testclient import TestClient

from refnet.intake.v1 import casework_service_pb2 as cw_pb
from refnet.intake.v1 import intake_service_pb2 as intake_pb
from refnet.notifications.v1 import notifications_service_pb2 as notifications_pb
from refnet.referral.v1 import referral_service_pb2 as referral_pb
from refnet_frontdoor.sessions import seal, store_key
from refnet_platform.caller import Caller, Role
from refnet_platform.engine import make_engine
from refnet_platform.errors import Unauthenticated
from refnet_platform.migrations import migrate
from web.adapters.sessions import SqlSessionStore
from web.bootstrap import SESSION_COOKIE, bootstrap, sign_in, templates
from web.config import MIGRATIONS, Settings
from web.entrypoints import app as web_app
from web.entrypoints.pages import operator_live

SECRET = "unit-test-session-secret"
CSRF = "csrf-of-the-session"
CASE_ID = "0190c2d4-5a6b-7c8d-9e0f-a1b2c3d4e5f6"
OTHER_CASE = "0190c2d4-0000-7000-8000-000000000009"
THIRD_CASE = "0190c2d4-0000-7000-8000-00000000000a"
PEOPLE = {
    "qn-operator": Caller("qn-operator", Role.OPERATOR, provinces=frozenset({"22"}), person=True),
    "qn-supervisor": Caller("qn-supervisor", Role.SUPERVISOR, provinces=frozenset({"22"}), person=True),
    "ht-operator": Caller("ht-operator", Role.OPERATOR, provinces=frozenset({"42"}), person=True),
}


class People:
    def person(self, token: str) -> Caller:
        if token not in PEOPLE:
            raise Unauthenticated("the access token is not valid")
        return PEOPLE[token]


class Refused(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        self._code, self._details = code, details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details


def referral(rid: str, service: int, status: int, version: int = 1, **more: Any) -> Any:
    return referral_pb.Referral(referral_id=rid, case_id=CASE_ID, service_type=service, provider_id=f"p-{service}",
                                province_code="22", status=status, version=version, **more)


class FakeApis:
    """Stands in for web.adapters.apis.Apis: records the requests, answers like the apis for Quảng Ninh."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, Any]] = []
        self.cases: dict[str, intake_pb.Case] = {}
        self.follow_ups: dict[str, cw_pb.FollowUp] = {}
        self.assessments: dict[str, cw_pb.Assessment] = {}
        self.plan: cw_pb.CasePlan | None = None
        self.plans: set[str] = set()
        self.reviews: dict[str, cw_pb.Review] = {}
        self.referrals = [referral("r-1", 1, referral_pb.REFERRAL_STATUS_REQUESTED),
                          referral("r-2", 4, referral_pb.REFERRAL_STATUS_ESCALATED, reason="no_provider",
                                   shelter_id="qn-spc")]

    def _stub(self, token: str) -> Any:
        apis = self

        class Stub:
            def __getattr__(self, name: str) -> Any:
                if name == "WatchNotices":  # a stream: an async iterator, not a coroutine
                    return lambda request, **kwargs: apis.WatchNotices(token, request)

                async def call(request: Any, **kwargs: Any) -> Any:
                    apis.calls.append((name, token, request))
                    return getattr(apis, name)(token, request)
                return call
        return Stub()

    intake = referral = directory = notifications = escalation = casework = _stub  # type: ignore[assignment]

    async def close(self) -> None:
        pass

    def _in_remit(self, token: str, case_id: str) -> intake_pb.Case:
        case = self.cases.get(case_id)
        if case is None or case.province_code not in PEOPLE[token].provinces:
            raise Refused(grpc.StatusCode.NOT_FOUND, "no such case")
        return case

    def LogCall(self, token: str, request: Any) -> Any:
        return intake_pb.LogCallResponse(call=intake_pb.Call(call_id="call-1"), created=True)

    def RegisterCase(self, token: str, request: Any) -> Any:
        if request.contact.name == "refuse":
            raise Refused(grpc.StatusCode.INVALID_ARGUMENT, "contact.name: at most 200 characters")
        case_id = CASE_ID
        self.cases[case_id] = intake_pb.Case(case_id=case_id, province_code=request.province_code,
                                             commune_code=request.commune_code, risk_level=request.risk_level,
                                             case_types=request.case_types, status=1)
        return intake_pb.RegisterCaseResponse(case=self.cases[case_id], created=True)

    def GetCase(self, token: str, request: Any) -> Any:
        return intake_pb.GetCaseResponse(case=self._in_remit(token, request.case_id))

    def ListReferrals(self, token: str, request: Any) -> Any:
        self._in_remit(token, request.case_id)
        return referral_pb.ListReferralsResponse(referrals=self.referrals)

    def GetProvider(self, token: str, request: Any) -> Any:
        return referral_pb.GetProviderResponse(provider=referral_pb.Provider(
            provider_id=request.provider_id, name=f"Provider {request.provider_id}"))

    def RankProviders(self, token: str, request: Any) -> Any:
        if request.service_type == 3:
            return referral_pb.RankProvidersResponse()
        provider = referral_pb.Provider(provider_id=f"p-{request.service_type}", name=f"Nơi {request.service_type}")
        other = referral_pb.Provider(provider_id="p-other", name="Nơi khác")
        return referral_pb.RankProvidersResponse(providers=[referral_pb.RankedProvider(provider=provider, area_rank=0),
                                                            referral_pb.RankedProvider(provider=other, area_rank=2)])

    def ListCases(self, token: str, request: Any) -> Any:
        """The case list: an operator's own (mine), a supervisor's province's; the first overdue. A supervisor's
        list has a second page (after the token "page-2")."""
        if request.page_token == "page-2":
            return cw_pb.ListCasesResponse(cases=[cw_pb.CaseSummary(case_id=THIRD_CASE, province_code="22")])
        mine = cw_pb.CaseSummary(case_id=CASE_ID, province_code="22", current_step=2, emergency=True, overdue=True,
                                 case_worker_id="qn-operator")
        mine.next_due_at.FromSeconds(1_767_225_600)  # 2026-01-01 00:00 UTC
        others = [] if request.mine else [cw_pb.CaseSummary(case_id=OTHER_CASE, province_code="22",
                                                            case_worker_id="qn-worker-7")]
        return cw_pb.ListCasesResponse(cases=[mine, *others], next_page_token="" if request.mine else "page-2")

    # Case work: the file, follow-ups and assessments, once per client_request_id.

    def GetCaseFile(self, token: str, request: Any) -> Any:
        case = self._in_remit(token, request.case_id)
        steps = [cw_pb.Step(step=2, status=1, due_at=Timestamp(seconds=1_767_225_600))]  # passed: overdue
        return cw_pb.GetCaseFileResponse(case=case, readable=True, steps=steps,
                                         follow_ups=list(self.follow_ups.values()),
                                         assessments=list(self.assessments.values()), plan=self.plan,
                                         reviews=list(self.reviews.values()))

    def RecordCasePlan(self, token: str, request: Any) -> Any:
        self._in_remit(token, request.case_id)
        if len(request.goals) > 1 and request.goals[1].responsible_id == "refuse":
            raise Refused(grpc.StatusCode.INVALID_ARGUMENT,
                          "goals[1].due_at: an open goal's due date must be in the future")
        if request.client_request_id not in self.plans:
            self.plans.add(request.client_request_id)
            self.plan = cw_pb.CasePlan(plan_id=f"p-{len(self.plans)}", version=len(self.plans), goals=request.goals,
                                       review_due_at=request.review_due_at, recorded_by=token)
        return cw_pb.RecordCasePlanResponse(plan_id=self.plan.plan_id)

    def ReviewCase(self, token: str, request: Any) -> Any:
        self._in_remit(token, request.case_id)
        if request.outcome != 3 and not request.HasField("next_review_at"):
            raise Refused(grpc.StatusCode.INVALID_ARGUMENT,
                          "next_review_at: is required unless the case is ready to close")
        if request.client_request_id not in self.reviews:
            self.reviews[request.client_request_id] = cw_pb.Review(
                review_id=f"r-{len(self.reviews) + 1}", outcome=request.outcome, note=request.note,
                next_review_at=request.next_review_at, reviewed_by=token)
        return cw_pb.ReviewCaseResponse(review_id=self.reviews[request.client_request_id].review_id)

    def AddFollowUp(self, token: str, request: Any) -> Any:
        self._in_remit(token, request.case_id)
        if len(request.note) > 20_000:
            raise Refused(grpc.StatusCode.INVALID_ARGUMENT, "note: at most 20000 characters")
        if request.client_request_id not in self.follow_ups:
            self.follow_ups[request.client_request_id] = cw_pb.FollowUp(
                follow_up_id=f"f-{len(self.follow_ups) + 1}", kind=request.kind, note=request.note,
                recorded_by=token, occurred_at=Timestamp(seconds=1_767_225_600))
        return cw_pb.AddFollowUpResponse(follow_up_id=self.follow_ups[request.client_request_id].follow_up_id)

    def RecordAssessment(self, token: str, request: Any) -> Any:
        self._in_remit(token, request.case_id)
        if request.summary == "refuse":
            raise Refused(grpc.StatusCode.INVALID_ARGUMENT, "accessibility_needs[0]: must be one of step_free, braille")
        if request.client_request_id not in self.assessments:
            self.assessments[request.client_request_id] = cw_pb.Assessment(
                assessment_id=f"a-{len(self.assessments) + 1}", risk_level=request.risk_level,
                immediate_danger=request.immediate_danger, needs=request.needs, difficulties=request.difficulties,
                accessibility_needs=request.accessibility_needs, summary=request.summary, assessed_by=token)
        return cw_pb.RecordAssessmentResponse(
            assessment_id=self.assessments[request.client_request_id].assessment_id)

    def ListNotices(self, token: str, request: Any) -> Any:
        return notifications_pb.ListNoticesResponse(notices=[notifications_pb.Notice(
            notice_id="n-1", case_id=OTHER_CASE, subject="Chuyển gửi đã được nhận", sequence=7)])

    def WatchNotices(self, token: str, request: Any) -> Any:
        async def stream() -> Any:
            yield notifications_pb.WatchNoticesResponse(notice=notifications_pb.Notice(sequence=8, case_id=CASE_ID))
        return stream()

    def ListEscalations(self, token: str, request: Any) -> Any:
        return referral_pb.ListEscalationsResponse(escalations=[
            referral_pb.Escalation(referral=referral("r-9", 2, referral_pb.REFERRAL_STATUS_EXPIRED,
                                                     reason="not_accepted_in_time"),
                                   rerouted_referral_id="r-10", rerouted_provider_id="p-other"),
            referral_pb.Escalation(referral=self.referrals[1])])

    def AssignProvider(self, token: str, request: Any) -> Any:
        return referral_pb.AssignProviderResponse(referral=self.referrals[1])


@pytest.fixture
def web(tmp_path: Path) -> Iterator[dict[str, Any]]:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'web.db'}", oidc_issuer="http://127.0.0.1:9/realms/refnet",
                        oidc_client_secret="dev-secret", session_secret=SECRET, allow_plaintext=True)
    engine = make_engine(settings.database[0])
    migrate(engine, MIGRATIONS)
    store = SqlSessionStore(engine)
    signin = sign_in(settings, templates(), verifier=People())  # type: ignore[arg-type]
    apis = FakeApis()
    ctx = bootstrap(settings, signin=signin, apis=apis)  # type: ignore[arg-type]
    client = TestClient(web_app.create_app(ctx, store, engine), base_url="http://127.0.0.1:8580",
                        follow_redirects=False)
    try:
        yield {"client": client, "store": store, "apis": apis}
    finally:
        engine.dispose()


def as_person(web: dict[str, Any], username: str) -> TestClient:
    sid = secrets.token_urlsafe(32)
    person = PEOPLE[username]
    now = time.time()
    data = {"person": {"username": username, "role": str(person.role), "provinces": sorted(person.provinces),
                       "organisation": "", "since": now},
            "csrf": CSRF, "id_token": "x", "tokens": {"access_token": username, "refresh_token": "r",
                                                       "expires_at": now + 300, "refresh_expires_at": now + 1800}}
    web["store"].save(store_key(sid), seal(sid, data), username, now + 3600)
    client: TestClient = web["client"]
    client.cookies.set(SESSION_COOKIE, Signer(SECRET, salt="refnet-session-id").sign(sid).decode(),
                       domain="127.0.0.1", path="/")
    return client


CASE_FORM = {"csrf_token": CSRF, "client_request_id": "form-1", "place": "bai chay", "age": "31", "sex": "1",
             "types": ["1"], "risk": "2", "needs": ["police", "medical", "legal_aid"],
             "consents": ["police", "medical"], "contact_name": "Chị H.", "phone": "0912345678",
             "phone_safe": "on", "safe_days": ["1", "3"], "safe_start": "18:00", "safe_end": "21:00"}


def test_the_workspace_offers_a_call_a_case_and_the_cases_it_knows(web: dict[str, Any]) -> None:
    client = as_person(web, "qn-operator")
    page = client.get("/cases")
    assert page.status_code == 200 and "Bàn làm việc" in page.text
    assert 'href="/calls/new"' in page.text and 'href="/cases/new"' in page.text
    assert OTHER_CASE in page.text and 'href="/escalations"' not in page.text  # from her notices; no queue for her
    assert client.get(f"/cases/find?case_id={OTHER_CASE}").headers["location"] == f"/cases/{OTHER_CASE}"
    assert "Nhập mã ca" in client.get(client.get("/cases/find?case_id=").headers["location"]).text
    assert "Mã ca có dạng" in client.get(client.get("/cases/find?case_id=abc").headers["location"]).text
    assert 'href="/escalations"' in as_person(web, "qn-supervisor").get("/cases").text


def test_the_workspace_lists_my_cases_and_a_supervisor_the_provinces_due_first(web: dict[str, Any]) -> None:
    page = as_person(web, "qn-operator").get("/cases").text
    assert "Ca của tôi" in page and "Can thiệp khẩn cấp (12 giờ)" in page and "quá hạn" in page
    assert "01/01/2026 07:00" in page  # the deadline in Vietnam time
    listed = [r for n, _, r in web["apis"].calls if n == "ListCases"]
    assert listed[-1].mine and listed[-1].status == 1  # her own open cases
    page = as_person(web, "qn-supervisor").get("/cases").text
    assert "Ca của tỉnh" in page and "qn-worker-7" in page
    assert not [r for n, _, r in web["apis"].calls if n == "ListCases"][-1].mine


def test_places_answer_as_json(web: dict[str, Any]) -> None:
    found = as_person(web, "qn-operator").get("/places?q=gieng day").json()
    assert found[0]["value"] == "Phường Việt Hưng, Quảng Ninh" and "Giếng Đáy" in found[0]["label"]


def test_a_call_is_logged_with_the_operators_province_then_offers_a_case(web: dict[str, Any]) -> None:
    client = as_person(web, "qn-operator")
    form = client.get("/calls/new").text
    request_id = re.search(r'name="client_request_id" value="([^"]+)"', form).group(1)  # type: ignore[union-attr]
    assert 'name="province" value="22"' in form
    assert 'id="anonymous" name="anonymous" type="checkbox" value="on" checked' in form
    sent = client.post("/calls/new", data={"csrf_token": CSRF, "client_request_id": request_id, "channel": "2",
                                           "topic": "1", "outcome": "1", "province": "22", "anonymous": "on",
                                           "action": "log"})
    assert sent.status_code == 303 and sent.headers["location"] == "/calls/new?logged=call-1"
    logged = next(r for name, _, r in web["apis"].calls if name == "LogCall")
    assert (logged.client_request_id, logged.province_code, logged.call.anonymous) == (request_id, "22", True)
    assert 'id="case-from-call"' in client.get(sent.headers["location"]).text
    with_case = client.post("/calls/new", data={"csrf_token": CSRF, "channel": "2", "topic": "2", "outcome": "1",
                                                "started": "100", "action": "case"})
    assert with_case.headers["location"] == "/cases/new?call_channel=2&call_topic=2&call_started=100"
    case_form = client.get(with_case.headers["location"]).text
    assert 'name="call_channel" value="2"' in case_form
    assert 'id="types-4" name="types" type="checkbox" value="4" checked' in case_form


def test_a_case_is_previewed_then_saved_once(web: dict[str, Any]) -> None:
    client = as_person(web, "qn-operator")
    preview = client.post("/cases/new", data={**CASE_FORM, "action": "preview"})
    assert preview.status_code == 200 and 'id="preview"' in preview.text and 'id="save-button"' in preview.text
    assert "Nơi 1" in preview.text and "Nơi 2" in preview.text and "cùng xã, phường" in preview.text
    assert "chưa đồng ý" in preview.text  # legal aid: needed, not consented, not ranked
    assert 'value="Phường Bãi Cháy, Quảng Ninh"' in preview.text  # what the server understood
    ranked = [r for name, _, r in web["apis"].calls if name == "RankProviders"]
    assert {r.service_type for r in ranked} == {1, 2} and ranked[0].commune_code == "06673"
    saved = client.post("/cases/new", data={**CASE_FORM, "action": "save"})
    assert saved.status_code == 303 and saved.headers["location"] == f"/cases/{CASE_ID}?saved=1"
    again = client.post("/cases/new", data={**CASE_FORM, "action": "save"})
    registered = [r for name, _, r in web["apis"].calls if name == "RegisterCase"]
    assert again.status_code == 303 and {r.client_request_id for r in registered} == {"form-1"}
    assert CASE_ID in client.get("/cases").text  # opened in this session


def test_a_form_error_shows_next_to_its_field_with_what_was_typed(web: dict[str, Any]) -> None:
    client = as_person(web, "qn-operator")
    page = client.post("/cases/new", data={**CASE_FORM, "phone": "09abc123", "action": "preview"})
    assert page.status_code == 400
    assert 'id="phone-error"' in page.text and 'value="09abc123"' in page.text
    assert 'aria-describedby="phone-error"' in page.text and 'value="Chị H."' in page.text
    assert 'id="consents-medical" name="consents" type="checkbox" value="medical" checked' in page.text
    place = client.post("/cases/new", data={**CASE_FORM, "place": "Atlantis", "action": "preview"})
    assert 'id="place-error"' in place.text and 'value="Atlantis"' in place.text
    # A refusal by the api, named by its field, lands next to the form's.
    refused = client.post("/cases/new", data={**CASE_FORM, "contact_name": "refuse", "action": "save"})
    assert refused.status_code == 400 and 'id="contact_name-error"' in refused.text


def test_the_case_page_lists_escalations_first_and_streams_changes(web: dict[str, Any],
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    client = as_person(web, "qn-operator")
    client.post("/cases/new", data={**CASE_FORM, "action": "save"})
    page = client.get(f"/cases/{CASE_ID}?saved=1")
    assert page.status_code == 200 and 'id="saved"' in page.text
    assert page.text.index('data-referral-id="r-2"') < page.text.index('data-referral-id="r-1"')
    assert "Provider p-1" in page.text and "Leo thang" in page.text and 'id="refresh"' in page.text
    partial = client.get(f"/cases/{CASE_ID}/referrals")
    assert partial.status_code == 200 and "<html" not in partial.text and 'id="referral-list"' in partial.text
    monkeypatch.setattr(operator_live, "STREAM_S", 1.5)
    with client.stream("GET", f"/cases/{CASE_ID}/events") as events:
        assert events.headers["content-type"].startswith("text/event-stream")
        body = "".join(events.iter_text())
    assert body.startswith("retry: 1000") and "event: referrals" in body and '"notice":8' in body


def test_another_provinces_operator_finds_nothing(web: dict[str, Any]) -> None:
    as_person(web, "qn-operator").post("/cases/new", data={**CASE_FORM, "action": "save"})
    client = as_person(web, "ht-operator")
    assert client.get(f"/cases/{CASE_ID}").status_code == 404
    assert client.get(f"/cases/{CASE_ID}/events").status_code == 404
    assert client.get(f"/cases/{CASE_ID}/referrals").status_code == 404


def test_supervisors_see_the_queue_unresolved_first_and_assign(web: dict[str, Any]) -> None:
    assert as_person(web, "qn-operator").get("/escalations").status_code == 403
    client = as_person(web, "qn-supervisor")
    page = client.get("/escalations")
    assert page.status_code == 200
    assert page.text.index('id="esc-r-2"') < page.text.index('id="esc-r-9"')
    assert 'value="p-other"' in page.text and "Provider p-other" in page.text  # the options; who took r-9
    assert 'id="overdue"' in page.text and "not_accepted_in_time" in page.text
    request_id = re.search(r'name="request_id" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    empty = client.post("/escalations/r-2/assign", data={"csrf_token": CSRF, "request_id": request_id})
    assert 'id="provider-r-2-error"' in client.get(empty.headers["location"]).text
    sent = client.post("/escalations/r-2/assign", data={"csrf_token": CSRF, "request_id": request_id,
                                                        "provider_id": "p-other"})
    assert sent.headers["location"] == "/escalations?assigned=1"
    assigned = next(r for name, _, r in web["apis"].calls if name == "AssignProvider")
    assert (assigned.referral_id, assigned.provider_id, assigned.client_request_id) == ("r-2", "p-other", request_id)


# Case work from the web: the case file on the case page, a follow-up and an assessment, the list's pages.

def request_id_of(page: str) -> str:
    return re.search(r'name="client_request_id" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]


def test_the_case_list_links_each_case_and_pages_on(web: dict[str, Any]) -> None:
    client = as_person(web, "qn-supervisor")
    first = client.get("/cases").text
    assert f'href="/cases/{OTHER_CASE}"' in first and 'id="cases-next" href="/cases?page=page-2#cases-title"' in first
    second = client.get("/cases?page=page-2").text
    assert THIRD_CASE in second and OTHER_CASE not in second.split('id="cases"')[1].split("</table>")[0]
    assert 'id="cases-first"' in second and 'id="cases-next"' not in second
    assert [r for n, _, r in web["apis"].calls if n == "ListCases"][-1].page_token == "page-2"


def test_the_case_form_offers_the_caseload_types_and_services(web: dict[str, Any]) -> None:
    page = as_person(web, "qn-operator").get("/cases/new").text
    assert 'id="types-11" name="types" type="checkbox" value="11"' in page and "Người cao tuổi" in page
    assert 'id="types-18"' in page and 'id="needs-welfare_access"' in page


def test_a_follow_up_is_added_once_and_shown_on_the_case_file(web: dict[str, Any]) -> None:
    client = as_person(web, "qn-operator")
    client.post("/cases/new", data={**CASE_FORM, "action": "save"})
    case_page = client.get(f"/cases/{CASE_ID}").text
    assert 'id="casefile"' in case_page and 'id="follow-ups-none"' in case_page
    assert "Can thiệp khẩn cấp (12 giờ)" in case_page and "quá hạn" in case_page  # the step past its deadline
    assert f'href="/cases/{CASE_ID}/follow-ups/new"' in case_page
    form = client.get(f"/cases/{CASE_ID}/follow-ups/new").text
    request_id = request_id_of(form)
    assert request_id != request_id_of(client.get(f"/cases/{CASE_ID}/follow-ups/new").text)  # one per render
    note = "Chị ấy an toàn, đã gặp tại nhà bà ngoại."
    sent = {"csrf_token": CSRF, "client_request_id": request_id, "kind": "1", "note": note}
    first = client.post(f"/cases/{CASE_ID}/follow-ups/new", data=sent)
    again = client.post(f"/cases/{CASE_ID}/follow-ups/new", data=sent)  # the double submit
    assert first.status_code == again.status_code == 303
    assert first.headers["location"] == f"/cases/{CASE_ID}?done=follow_up#casefile"
    added = [r for n, _, r in web["apis"].calls if n == "AddFollowUp"]
    assert {r.client_request_id for r in added} == {request_id} and added[0].kind == 1
    shown = client.get(first.headers["location"]).text
    assert shown.count(note) == 1 and "Thăm tại nhà" in shown and 'id="done"' in shown


def test_a_follow_up_without_a_note_or_refused_by_intake_is_told_beside_its_field(web: dict[str, Any]) -> None:
    client = as_person(web, "qn-operator")
    client.post("/cases/new", data={**CASE_FORM, "action": "save"})
    empty = client.post(f"/cases/{CASE_ID}/follow-ups/new", data={"csrf_token": CSRF, "client_request_id": "f-1",
                                                                  "kind": "2", "note": " "})
    assert empty.status_code == 400 and 'id="note-error"' in empty.text
    assert 'aria-describedby="note-error"' in empty.text and not [n for n, _, _ in web["apis"].calls
                                                                    if n == "AddFollowUp"]
    long = "x" * 20_001
    refused = client.post(f"/cases/{CASE_ID}/follow-ups/new", data={"csrf_token": CSRF, "client_request_id": "f-1",
                                                                    "kind": "2", "note": long})
    assert refused.status_code == 400
    error = re.search(r'<p class="field-error" id="note-error">([^<]+)</p>', refused.text).group(1)  # type: ignore
    assert error == "Ghi chú: tối đa 20000 ký tự."
    assert long in refused.text and 'value="f-1"' in refused.text  # what was typed and the same request id kept
    client.cookies.set("lang", "en", domain="127.0.0.1", path="/")
    english = client.post(f"/cases/{CASE_ID}/follow-ups/new", data={"csrf_token": CSRF, "client_request_id": "f-1",
                                                                    "kind": "2", "note": long})
    assert "Note: at most 20000 characters." in english.text


def test_an_assessment_is_recorded_with_needs_difficulties_and_accessibility(web: dict[str, Any]) -> None:
    client = as_person(web, "qn-operator")
    client.post("/cases/new", data={**CASE_FORM, "action": "save"})
    form = client.get(f"/cases/{CASE_ID}/assessments/new").text
    assert 'id="needs-7"' in form and 'id="wg_3"' in form and 'id="accessibility-ground_floor_bed"' in form
    request_id = request_id_of(form)
    sent = client.post(f"/cases/{CASE_ID}/assessments/new", data={
        "csrf_token": CSRF, "client_request_id": request_id, "risk": "3", "danger": "on", "needs": ["7", "2"],
        "wg_3": "3", "wg_1": "", "accessibility": ["step_free", "ground_floor_bed"], "summary": "Đi lại khó khăn."})
    assert sent.status_code == 303 and sent.headers["location"] == f"/cases/{CASE_ID}?done=assessment#casefile"
    recorded = next(r for n, _, r in web["apis"].calls if n == "RecordAssessment")
    assert (recorded.client_request_id, recorded.risk_level, recorded.immediate_danger) == (request_id, 3, True)
    assert list(recorded.needs) == [7, 2] and [(d.domain, d.difficulty) for d in recorded.difficulties] == [(3, 3)]
    assert list(recorded.accessibility_needs) == ["step_free", "ground_floor_bed"]
    shown = client.get(sent.headers["location"]).text
    assert "Tiếp cận chính sách trợ giúp xã hội" in shown and "Đi lại (Rất khó khăn)" in shown
    assert "Giường ở tầng trệt" in shown and "Đi lại khó khăn." in shown


def test_an_assessment_without_risk_or_refused_by_intake_names_its_field(web: dict[str, Any]) -> None:
    client = as_person(web, "qn-operator")
    client.post("/cases/new", data={**CASE_FORM, "action": "save"})
    no_risk = client.post(f"/cases/{CASE_ID}/assessments/new", data={"csrf_token": CSRF, "client_request_id": "a-1",
                                                                     "needs": ["2"]})
    assert no_risk.status_code == 400 and 'id="risk-error"' in no_risk.text
    assert 'id="needs-2" name="needs" type="checkbox" value="2" checked' in no_risk.text
    refused = client.post(f"/cases/{CASE_ID}/assessments/new", data={
        "csrf_token": CSRF, "client_request_id": "a-1", "risk": "1", "accessibility": ["braille"], "summary": "refuse"})
    assert refused.status_code == 400 and 'id="accessibility-error"' in refused.text
    assert "Nhu cầu tiếp cận: không có trong danh mục." in refused.text
    assert 'aria-describedby="accessibility-error"' in refused.text


def test_another_provinces_operator_finds_no_case_file_nor_its_forms(web: dict[str, Any]) -> None:
    as_person(web, "qn-operator").post("/cases/new", data={**CASE_FORM, "action": "save"})
    client = as_person(web, "ht-operator")
    assert client.get(f"/cases/{CASE_ID}/follow-ups/new").status_code == 404
    assert client.get(f"/cases/{CASE_ID}/assessments/new").status_code == 404
    refused = client.post(f"/cases/{CASE_ID}/follow-ups/new", data={"csrf_token": CSRF, "client_request_id": "x",
                                                                    "kind": "2", "note": "n"})
    assert refused.status_code == 404 and not web["apis"].follow_ups


def test_a_plan_is_recorded_from_the_rows_filled_and_offered_again_to_change(web: dict[str, Any]) -> None:
    client = as_person(web, "qn-operator")
    client.post("/cases/new", data={**CASE_FORM, "action": "save"})
    case_page = client.get(f"/cases/{CASE_ID}").text
    assert 'id="record-plan"' in case_page and 'id="plan-none"' in case_page and "Lập kế hoạch" in case_page
    form = client.get(f"/cases/{CASE_ID}/plan/new").text
    assert 'id="goal_1_description"' in form and 'id="goal_2_description"' not in form  # two blank rows
    request_id = request_id_of(form)
    goal = {"goal_0_description": "Nhận trợ cấp hằng tháng", "goal_0_services": ["7", "6"],
            "goal_0_responsible_kind": "2", "goal_0_responsible_id": "qn-spc", "goal_0_due": "2099-03-31",
            "goal_0_status": "1", "goal_1_status": "1"}
    sent = client.post(f"/cases/{CASE_ID}/plan/new", data={"csrf_token": CSRF, "client_request_id": request_id,
                                                           "rows": "2", "review_due": "2099-04-30", **goal})
    assert sent.status_code == 303 and sent.headers["location"] == f"/cases/{CASE_ID}?done=plan#casefile"
    recorded = next(r for n, _, r in web["apis"].calls if n == "RecordCasePlan")
    assert len(recorded.goals) == 1 and list(recorded.goals[0].services) == [7, 6]
    assert recorded.goals[0].responsible_kind == 2 and recorded.goals[0].status == 1
    # The end of that day in Vietnam time: 2099-03-31 23:59:59 +07.
    assert recorded.goals[0].due_at.ToDatetime().isoformat() == "2099-03-31T16:59:59"
    shown = client.get(sent.headers["location"]).text
    assert "Nhận trợ cấp hằng tháng" in shown and "Cơ quan phụ trách: qn-spc" in shown and "Sửa kế hoạch" in shown
    again = client.get(f"/cases/{CASE_ID}/plan/new").text  # the current plan's goals, and two blank rows
    assert 'name="goal_0_responsible_id" type="text" value="qn-spc"' in again and 'id="goal_2_description"' in again
    assert 'value="2099-03-31"' in again and 'id="goal_0_services-7" name="goal_0_services" type="checkbox" ' \
        'value="7" checked' in again


def test_a_plan_refused_for_a_goal_is_told_beside_that_rows_field(web: dict[str, Any]) -> None:
    client = as_person(web, "qn-operator")
    client.post("/cases/new", data={**CASE_FORM, "action": "save"})
    none = client.post(f"/cases/{CASE_ID}/plan/new", data={"csrf_token": CSRF, "client_request_id": "p-1",
                                                           "rows": "2", "goal_0_status": "1"})
    assert none.status_code == 400 and 'id="goals-error"' in none.text
    rows = {"goal_0_description": "a", "goal_0_responsible_kind": "1", "goal_0_responsible_id": "qn-operator",
            "goal_0_due": "2099-01-01", "goal_2_description": "b", "goal_2_responsible_kind": "1",
            "goal_2_responsible_id": "refuse", "goal_2_due": "2000-01-01"}  # row 1 left blank
    refused = client.post(f"/cases/{CASE_ID}/plan/new", data={"csrf_token": CSRF, "client_request_id": "p-1",
                                                              "rows": "3", **rows})
    assert refused.status_code == 400 and 'id="goal_2_due-error"' in refused.text
    assert "Mục tiêu 3 — Hạn: phải là một ngày sắp tới." in refused.text
    bad_date = client.post(f"/cases/{CASE_ID}/plan/new", data={"csrf_token": CSRF, "client_request_id": "p-1",
                                                               "rows": "3", **rows, "goal_0_due": "31/12/2099"})
    assert 'id="goal_0_due-error"' in bad_date.text and "năm-tháng-ngày" in bad_date.text


def test_a_review_needs_its_next_date_unless_ready_to_close(web: dict[str, Any]) -> None:
    client = as_person(web, "qn-operator")
    client.post("/cases/new", data={**CASE_FORM, "action": "save"})
    request_id = request_id_of(client.get(f"/cases/{CASE_ID}/reviews/new").text)
    refused = client.post(f"/cases/{CASE_ID}/reviews/new", data={"csrf_token": CSRF, "client_request_id": request_id,
                                                                 "outcome": "1", "note": "Ổn định."})
    assert refused.status_code == 400 and 'id="next_review-error"' in refused.text
    assert "Lần rà soát tiếp theo: bắt buộc, trừ khi ca đã sẵn sàng đóng." in refused.text
    sent = client.post(f"/cases/{CASE_ID}/reviews/new", data={"csrf_token": CSRF, "client_request_id": request_id,
                                                              "outcome": "1", "note": "Ổn định.",
                                                              "next_review": "2099-05-01"})
    assert sent.headers["location"] == f"/cases/{CASE_ID}?done=review#casefile"
    shown = client.get(sent.headers["location"]).text
    assert "Tiếp tục kế hoạch" in shown and "Ổn định." in shown and "Đã lưu rà soát." in shown
