"""The partner portal and the shelter page in the Debian chromium (Playwright), phone-sized, on real Kafka, the
real services and the real Keycloak. A Quảng Ninh case (Bãi Cháy) with police, medical and shelter needs is
registered as qn-operator through gRPC while qn-police-baichay already has the portal open: the referral appears
without a reload; she opens it, accepts, and reads the survivor's contact (name, phone, safe times); the
hospital's referral is not found for her; the link of a notice comes back after sign-in. qn-spc-staff lands on
the shelter page, sees the hold for that case, confirms the arrival, and reports one bed more with + and Confirm.
axe-core finds no serious or critical violation on any of these pages; a screenshot of each is kept; the shelter
page weighs under 100 kB."""

from __future__ import annotations

import time
import uuid
from typing import Any
from urllib.parse import urlparse

import pytest

from refnet.common.v1 import types_pb2 as t
from refnet.intake.v1 import intake_service_pb2 as intake_pb
from refnet.intake.v1 import intake_service_pb2_grpc as intake_grpc
from refnet.intake.v1 import types_pb2 as intake_types
from refnet.referral.v1 import referral_service_pb2 as referral_pb
from refnet.referral.v1 import referral_service_pb2_grpc as referral_grpc
from refnet_dev.browser import accessibility_problems, keep_screenshot, phone_page, sign_in
from refnet_dev.network import Network
from refnet_dev.util import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(420)]

QUANG_NINH, BAI_CHAY = "22", "06673"
D = "\u2013"  # the en dash of a safe-time window


@pytest.fixture(scope="module")
def network(shared_network: Network) -> Network:
    return shared_network  # tests/conftest.py


def accessible(page: Any, name: str) -> None:
    keep_screenshot(page, name)
    problems = accessibility_problems(page)
    assert not problems, f"{name}: {problems}"


def register_case(network: Network, name: str, phone: str) -> str:
    request = intake_pb.RegisterCaseRequest(
        client_request_id=f"e2e-web-{uuid.uuid4()}", province_code=QUANG_NINH, commune_code=BAI_CHAY,
        case_types=[t.CASE_TYPE_DOMESTIC_VIOLENCE], risk_level=t.RISK_LEVEL_HIGH,
        survivor=intake_pb.Survivor(is_child=False, age=29, sex=t.SEX_FEMALE),
        needs=[intake_pb.Need(service_type=t.SERVICE_TYPE_POLICE_PROTECTION, consented=True),
               intake_pb.Need(service_type=t.SERVICE_TYPE_MEDICAL, consented=True),
               intake_pb.Need(service_type=t.SERVICE_TYPE_SHELTER, consented=True)],
        contact=intake_pb.Contact(name=name, phone=phone, phone_is_safe=True, safe_contact_note="gọi nhỡ trước",
                                  safe_times=[intake_types.SafeContactTime(weekdays=[1, 3], start="21:30",
                                                                           end="22:15")]),
        case_worker_id="qn-operator")
    with network.person_channel("intake", "qn-operator") as channel:
        reply = intake_grpc.IntakeServiceStub(channel).RegisterCase(request, timeout=15)
    assert reply.created
    return str(reply.case.case_id)


def case_referrals(network: Network, case_id: str) -> dict[int, Any]:
    with network.person_channel("referral", "qn-operator") as channel:
        reply = referral_grpc.ReferralServiceStub(channel).ListReferrals(
            referral_pb.ListReferralsRequest(case_id=case_id), timeout=10)
    return {r.service_type: r for r in reply.referrals}


def test_partner_portal_and_shelter_page(network: Network, browser: Any) -> None:
    assert network.keycloak is not None
    issuer, web = network.keycloak.issuer, network.web_url
    name = f"Trần Thị Portal {uuid.uuid4().hex[:6]}"
    phone = f"09{uuid.uuid4().int % 10**8:08d}"
    timings: dict[str, float] = {}

    with phone_page(browser) as police:
        sign_in(police, web, issuer, "qn-police-baichay", "/referrals")
        police.wait_for_url(web + "/referrals")
        assert police.inner_text("h1") == "Chuyển gửi"
        police.wait_for_selector("#live", state="visible", timeout=15_000)  # the live stream is open

        started = time.monotonic()
        case_id = register_case(network, name, phone)
        row = police.wait_for_selector(f'li[data-case-id="{case_id}"]', timeout=30_000)  # no reload
        timings["referral shown live"] = time.monotonic() - started
        assert "Bảo vệ khẩn cấp" in row.inner_text()
        accessible(police, "partner-inbox")

        row.query_selector("a").click()
        police.wait_for_selector("#referral")
        police_id = police.get_attribute("#referral", "data-referral-id")
        assert police.inner_text("#status") == "Chờ nhận" and police.is_visible("#form-decline")
        assert police.query_selector("#contact") is None  # nothing about her before accepting
        accessible(police, "partner-referral-requested")

        police.click("#do-accept")
        police.wait_for_selector("#done")
        assert "Đã nhận" in police.inner_text("#done")
        police.wait_for_selector("#contact-name", timeout=30_000)  # partner.js loads it as soon as it is shared
        assert police.inner_text("#contact-name") == name
        assert phone in police.inner_text("#contact-phone")
        safe = police.inner_text("#safe-times")
        assert "Chỉ liên hệ trong" in safe and f"Thứ 2, 4 21:30{D}22:15" in safe
        accessible(police, "partner-referral-accepted")

        police.select_option("#progress", str(referral_pb.PROGRESS_CONTACT_MADE))
        police.click("#do-progress")
        police.wait_for_selector("#done")

        # The hospital's referral of the same case: not found for the police.
        hospital = eventually(lambda: case_referrals(network, case_id).get(t.SERVICE_TYPE_MEDICAL),
                              "a referral to the hospital")
        reply = police.goto(f"{web}/referrals/{hospital.referral_id}")
        assert reply.status == 404 and "Không tìm thấy" in police.inner_text("main")
        accessible(police, "partner-not-found")

        police.goto(web + "/lang?to=en&next=/referrals/" + str(police_id))
        assert "Contact only" in police.inner_text("#safe-times")
        assert f"Mon, Wed 21:30{D}22:15" in police.inner_text("#safe-times")
        accessible(police, "partner-referral-en")

    # The link every notice carries opens that referral after sign-in.
    with phone_page(browser) as again:
        sign_in(again, web, issuer, "qn-police-baichay", f"/referrals/{police_id}")
        again.wait_for_url(f"{web}/referrals/{police_id}")
        assert again.get_attribute("#referral", "data-case-id") == case_id

    with phone_page(browser) as staff:
        sign_in(staff, web, issuer, "qn-spc-staff")
        staff.wait_for_url(web + "/shelter")  # already there after sign-in

        def hold_shown() -> bool:
            staff.goto(web + "/shelter")
            return staff.query_selector(f'#holds li[data-case-id="{case_id}"]') is not None

        eventually(hold_shown, "the hold for the case on the shelter page")
        responses: list[Any] = []
        staff.on("response", lambda r: responses.append(r))
        outside: list[str] = []
        staff.on("request", lambda r: outside.append(r.url) if urlparse(r.url).netloc != urlparse(web).netloc
                 else None)
        staff.goto(web + "/shelter", wait_until="load")
        staff.wait_for_timeout(300)
        weight = {r.url: len(r.body()) for r in responses if r.status != 304}
        assert sum(weight.values()) < 100_000, weight
        assert not outside, outside  # no third-party assets
        assert {urlparse(u).path for u in weight} >= {"/shelter", "/static/shelter.js", "/static/shelter.css"}
        accessible(staff, "shelter-page")

        hold = staff.query_selector(f'#holds li[data-case-id="{case_id}"]')
        assert hold is not None
        hold.query_selector("button.arrived").click()
        staff.wait_for_selector("#done")
        assert staff.query_selector(f'#staying li[data-case-id="{case_id}"]') is not None
        assert staff.query_selector(f'#holds li[data-case-id="{case_id}"]') is None

        pool = staff.query_selector("form.pool")
        assert pool is not None
        group = (pool.get_attribute("id") or "").removeprefix("pool-")
        before = int(staff.inner_text(f"#pool-{group} .n-capacity"))
        staff.click(f"#plus-{group}")  # tap +
        assert staff.input_value(f"#capacity-{group}") == str(before + 1) and staff.is_visible(f"#pending-{group}")
        staff.click(f"#confirm-{group}")  # tap Confirm
        staff.wait_for_selector("#done")
        assert int(staff.inner_text(f"#pool-{group} .n-capacity")) == before + 1
        assert staff.inner_text(f"#pool-{group} .confirmed-at").strip()
        accessible(staff, "shelter-page-saved")

    print("timings:", {k: round(v, 2) for k, v in timings.items()})

