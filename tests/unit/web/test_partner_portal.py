"""The partner portal in process, the apis stood in for: coded labels in both languages for every enum value,
the requests each action builds, the inbox's order, safe times as a person reads them; the pages (inbox, list,
events, a referral with its actions and the contact after accepting, refusals in plain words, not found)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from starlette.testclient import TestClient

from refnet.common.v1 import types_pb2 as types
from refnet.intake.v1 import types_pb2 as intake_types
from refnet.referral.v1 import referral_service_pb2 as pb
from refnet_platform.engine import make_engine
from refnet_platform.migrations import migrate
from tests.unit.web.test_app import SECRET, People, Provider, signed_in
from web.adapters.sessions import SqlSessionStore
from web.bootstrap import bootstrap, sign_in, templates
from web.config import MIGRATIONS, Settings
from web.entrypoints import app as web_app
from web.entrypoints.pages import partner
from web.i18n import CATALOG

D = "\u2013"  # an en dash, as safe times show


class Refusal(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode, details: str = "") -> None:
        super().__init__(details)
        self._code, self._details = code, details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details


class Stream:
    def __init__(self, items: list[Any]) -> None:
        self.items, self.cancelled = items, False

    def __aiter__(self) -> Any:
        return self._gen()

    async def _gen(self) -> Any:
        for item in self.items:
            yield item

    def cancel(self) -> None:
        self.cancelled = True


class FakeStub:
    def __init__(self, api: FakeApis, token: str) -> None:
        self.api, self.token = api, token

    def __getattr__(self, name: str) -> Any:
        handler = self.api.handlers[name]
        if name.startswith("Watch"):
            def watch(request: Any, **kwargs: Any) -> Any:
                self.api.calls.append((name, request, self.token))
                return handler(request)
            return watch

        async def call(request: Any, **kwargs: Any) -> Any:
            self.api.calls.append((name, request, self.token))
            result = handler(request)
            if isinstance(result, Exception):
                raise result
            return result
        return call


class FakeApis:
    def __init__(self) -> None:
        self.handlers: dict[str, Any] = {}
        self.calls: list[tuple[str, Any, str]] = []

    def referral(self, token: str) -> FakeStub:
        return FakeStub(self, token)

    shelter = referral

    async def close(self) -> None:
        return None


def stamp(seconds: int) -> Timestamp:
    return Timestamp(seconds=seconds)


def referral(rid: str, status: int = pb.REFERRAL_STATUS_REQUESTED, emergency: bool = False, at: int = 1_800_000_000,
             **kw: Any) -> pb.Referral:
    return pb.Referral(referral_id=rid, case_id=f"case-{rid}", status=status, emergency=emergency,
                       requested_at=stamp(at), service_type=types.SERVICE_TYPE_POLICE_PROTECTION,
                       provider_id="qn-police-baichay", province_code="22", **kw)


@pytest.fixture
def portal(tmp_path: Path) -> Iterator[dict[str, Any]]:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'web.db'}", oidc_issuer="http://127.0.0.1:9/realms/refnet",
                        oidc_client_secret="dev-secret", session_secret=SECRET, allow_plaintext=True)
    engine = make_engine(settings.database[0])
    migrate(engine, MIGRATIONS)
    store = SqlSessionStore(engine)
    signin = sign_in(settings, templates(), verifier=People())  # type: ignore[arg-type]
    signin.client = Provider()
    apis = FakeApis()
    ctx = bootstrap(settings, signin=signin, apis=apis)  # type: ignore[arg-type]
    client = TestClient(web_app.create_app(ctx, store, engine), base_url="http://127.0.0.1:8580",
                        follow_redirects=False)
    web = {"client": client, "store": store, "apis": apis}
    try:
        yield web
    finally:
        engine.dispose()


# Pure helpers.

@pytest.mark.parametrize("group", sorted(partner.ENUMS))
def test_every_coded_value_has_a_label_in_both_languages(group: str) -> None:
    enum, _ = partner.ENUMS[group]
    for number in enum.values():
        key = partner.code_key(group, number)
        assert CATALOG["vi"].get(key, "").strip() and CATALOG["en"].get(key, "").strip(), key
    assert [n for n, _ in partner.choices("en", group)] == [n for n in enum.values() if n]


def test_reason_strings_read_in_words() -> None:
    assert partner.reason_label("vi", "no_capacity") == "Hết khả năng tiếp nhận"
    assert partner.reason_label("en", "not_accepted_in_time") == "Not accepted in time"
    assert partner.reason_label("en", "progress:contact_made") == "Contact made"
    assert partner.reason_label("en", "") == "" and partner.reason_label("en", "odd_code") == "odd code"


def test_safe_times_as_a_person_reads_them() -> None:
    windows = [intake_types.SafeContactTime(weekdays=[3, 1], start="21:30", end="22:15"),
               intake_types.SafeContactTime(weekdays=[7], start="08:00", end="09:00"),
               intake_types.SafeContactTime(start="12:00", end="12:30")]
    assert partner.safe_times_text("vi", windows) == [f"Thứ 2, 4 21:30{D}22:15", f"Chủ nhật 08:00{D}09:00",
                                                      f"Hằng ngày 12:00{D}12:30"]
    assert partner.safe_times_text("en", windows) == [f"Mon, Wed 21:30{D}22:15", f"Sun 08:00{D}09:00",
                                                      f"Every day 12:00{D}12:30"]
    assert partner.weekdays_text("vi", [6, 7]) == "Thứ 7, Chủ nhật"


def test_the_inbox_puts_emergencies_then_open_then_newest_first() -> None:
    rows = [referral("old"), referral("new", at=1_800_000_100), referral("sos", emergency=True, at=1_700_000_000),
            referral("done", pb.REFERRAL_STATUS_COMPLETED, at=1_900_000_000),
            referral("closed-sos", pb.REFERRAL_STATUS_CANCELLED, emergency=True, at=1_900_000_000)]
    assert [r.referral_id for r in partner.inbox_order(rows)] == ["sos", "new", "old", "done", "closed-sos"]


def test_each_action_builds_its_request() -> None:
    values = {"request_id": "r-1", "decline_reason": str(pb.DECLINE_REASON_OUT_OF_AREA)}
    decline = partner.action_request(partner.ACTIONS["decline"], "ref-1", values)
    assert decline == pb.DeclineReferralRequest(referral_id="ref-1", client_request_id="r-1",
                                                reason=pb.DECLINE_REASON_OUT_OF_AREA)
    assert partner.action_request(partner.ACTIONS["accept"], "ref-1", {"request_id": "r-2"}) == \
        pb.AcceptReferralRequest(referral_id="ref-1", client_request_id="r-2")
    progress = partner.action_request(partner.ACTIONS["progress"], "ref-1", {"progress": "1"})
    assert progress.progress == pb.PROGRESS_CONTACT_MADE and progress.client_request_id  # one made up when absent
    assert partner.action_request(partner.ACTIONS["complete"], "x", {"outcome": "2"}).outcome == 2
    assert partner.action_request(partner.ACTIONS["failure"], "x", {"failure_reason": "2"}).reason == 2
    for bad in ("", "0", "99", "abc"):
        with pytest.raises(partner.MissingChoice) as missing:
            partner.action_request(partner.ACTIONS["decline"], "ref-1", {"decline_reason": bad})
        assert missing.value.field == "decline_reason"


# Pages.

def test_the_inbox_lists_the_agencys_referrals_live(portal: dict[str, Any]) -> None:
    client, apis = portal["client"], portal["apis"]
    apis.handlers["ListReferrals"] = lambda r: pb.ListReferralsResponse(referrals=[
        referral("aaaa1111-1"), referral("bbbb2222-2", emergency=True)])
    signed_in(portal, "qn-police-baichay")
    page = client.get("/referrals")
    assert page.status_code == 200 and "<h1>Chuyển gửi</h1>" in page.text
    assert page.text.index('data-referral-id="bbbb2222-2"') < page.text.index('data-referral-id="aaaa1111-1"')
    assert "KHẨN CẤP" in page.text and 'href="/referrals/aaaa1111-1"' in page.text
    assert 'src="/static/partner.js"' in page.text and 'href="/referrals" id="refresh"' in page.text
    assert apis.calls[0][2] == "qn-police-baichay"  # as the person
    fragment = client.get("/referrals/list")
    assert fragment.status_code == 200 and "<html" not in fragment.text and "bbbb2222-2" in fragment.text
    assert client.get("/lang?to=en&next=/referrals").status_code == 303
    assert "EMERGENCY" in client.get("/referrals/list").text

    change = pb.WatchReferralsResponse(referral=referral("cccc-3", version=4))
    apis.handlers["WatchReferrals"] = lambda r: Stream([change])
    with client.stream("GET", "/referrals/events") as events:
        assert events.headers["content-type"].startswith("text/event-stream")
        body = "".join(events.iter_text())
    assert "event: ready" in body and "event: referral" in body
    assert '"referral_id":"cccc-3"' in body and '"status":"requested"' in body and "id: cccc-3:4" in body
    assert "case-" not in body  # ids and statuses only


def test_a_lost_connection_keeps_the_inbox_with_a_note(portal: dict[str, Any]) -> None:
    portal["apis"].handlers["ListReferrals"] = lambda r: Refusal(grpc.StatusCode.UNAVAILABLE, "down")
    signed_in(portal, "qn-police-baichay")
    page = portal["client"].get("/referrals")
    assert page.status_code == 200 and "Mất kết nối" in page.text and 'id="retry"' in page.text
    portal["apis"].handlers["WatchReferrals"] = lambda r: Stream([Refusal(grpc.StatusCode.UNAVAILABLE)])


def test_a_referral_accepts_and_then_shows_the_contact_with_safe_times_on_top(portal: dict[str, Any]) -> None:
    client, apis = portal["client"], portal["apis"]
    state = {"status": pb.REFERRAL_STATUS_REQUESTED}
    apis.handlers["GetReferral"] = lambda r: pb.GetReferralResponse(referral=referral(
        r.referral_id, state["status"], emergency=True, accept_by=stamp(1_800_000_600)))

    def accept(r: Any) -> Any:
        state["status"] = pb.REFERRAL_STATUS_ACCEPTED
        return pb.AcceptReferralResponse()

    apis.handlers["AcceptReferral"] = accept
    apis.handlers["GetSurvivorContact"] = lambda r: pb.GetSurvivorContactResponse(
        name="Nguyễn Thị A", phone="0912345678", phone_is_safe=True,
        safe_times=[intake_types.SafeContactTime(weekdays=[1, 3], start="21:30", end="22:15")])
    signed_in(portal, "qn-police-baichay", csrf="t")
    page = client.get("/referrals/ref-1")
    assert page.status_code == 200 and 'id="form-accept"' in page.text and 'id="form-decline"' in page.text
    assert 'id="contact"' not in page.text and "GetSurvivorContact" not in [c[0] for c in apis.calls]
    assert 'name="csrf_token" value="t"' in page.text and "Chờ nhận" in page.text
    for code in pb.DeclineReason.values():
        if code:
            assert f'<option value="{code}"' in page.text

    assert client.post("/referrals/ref-1/accept", data={"request_id": "x"}).status_code == 403  # no CSRF
    done = client.post("/referrals/ref-1/accept", data={"request_id": "x", "csrf_token": "t"})
    assert done.status_code == 303 and done.headers["location"] == "/referrals/ref-1?done=accept"
    assert apis.calls[-1][1] == pb.AcceptReferralRequest(referral_id="ref-1", client_request_id="x")
    page = client.get(done.headers["location"])
    assert "Trạng thái mới: Đã nhận" in page.text
    box = page.text[page.text.index('id="contact"'):]
    assert box.index("Chỉ liên hệ trong") < box.index(f"Thứ 2, 4 21:30{D}22:15") < box.index("Nguyễn Thị A")
    assert 'href="tel:0912345678"' in box
    assert 'id="form-start"' in page.text and 'id="form-accept"' not in page.text


def test_refusals_show_in_plain_words_and_keep_the_choice(portal: dict[str, Any]) -> None:
    client, apis = portal["client"], portal["apis"]
    apis.handlers["GetReferral"] = lambda r: pb.GetReferralResponse(referral=referral(
        r.referral_id, pb.REFERRAL_STATUS_EXPIRED))
    apis.handlers["DeclineReferral"] = lambda r: Refusal(grpc.StatusCode.FAILED_PRECONDITION, "it is expired")
    signed_in(portal, "qn-police-baichay", csrf="t")
    refused = client.post("/referrals/ref-1/decline", data={"decline_reason": "1", "csrf_token": "t"})
    assert refused.status_code == 409
    assert "Không thể từ chối: chuyển gửi này đang ở trạng thái «Quá hạn»." in refused.text
    missing = client.post("/referrals/ref-1/decline", data={"decline_reason": "", "csrf_token": "t"})
    assert missing.status_code == 400 and "DeclineReferral" not in [c[0] for c in apis.calls[-1:]]


def test_another_agencys_referral_is_not_found(portal: dict[str, Any]) -> None:
    portal["apis"].handlers["GetReferral"] = lambda r: Refusal(grpc.StatusCode.NOT_FOUND, "no such referral")
    signed_in(portal, "qn-police-baichay")
    page = portal["client"].get("/referrals/hospital-ref")
    assert page.status_code == 404 and "Không tìm thấy." in page.text
    signed_in(portal, "qn-spc-staff")
    assert portal["client"].get("/referrals/hospital-ref").status_code == 403


def test_the_link_in_a_notice_comes_back_after_sign_in(portal: dict[str, Any]) -> None:
    reply = portal["client"].get("/referrals/ref-9")
    assert reply.status_code == 303 and reply.headers["location"] == "/auth/login?next=%2Freferrals%2Fref-9"
