"""Case work from the web, in a real browser (Debian's chromium through Playwright) over the whole network on real
Kafka and the real Keycloak: qn-worker-7 opens her case's file from "My cases", adds a follow-up (first refused by
intake for its length: the error beside the note, in Vietnamese, what was typed kept) and an assessment (a caseload
service, a Washington Group domain, an accessibility need), makes a plan and reviews the case (intake's "next review
is required" told beside that date), and sees each on the case file; axe finds no serious or critical problem on any
of these pages; the note's, the summary's and the goal's text is in no process's log."""

from __future__ import annotations

import re
import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest

from refnet.common.v1 import types_pb2 as t
from refnet.intake.v1 import casework_service_pb2 as cw
from refnet.intake.v1 import casework_service_pb2_grpc as cw_grpc
from refnet.intake.v1 import intake_service_pb2 as intake_pb
from refnet.intake.v1 import intake_service_pb2_grpc as intake_grpc
from refnet_dev.browser import accessibility_problems, keep_screenshot, phone_page, sign_in
from refnet_dev.keycloak import Keycloak
from refnet_dev.network import Network
from web.i18n import VIETNAM_TZ as VIETNAM

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(420)]

QUANG_NINH, BAI_CHAY = "22", "06673"
NOTE_LIMIT = 20_000  # intake's (intake.domain.casework.NOTE_LIMIT): the web leaves that rule to intake


@pytest.fixture(scope="module")
def network(shared_network: Network) -> Network:
    return shared_network  # tests/conftest.py


def in_days(days: int) -> str:
    """A date as a date field takes it, `days` from today in Vietnam time."""
    return (datetime.now(VIETNAM) + timedelta(days=days)).strftime("%Y-%m-%d")


def checked(page: Any, name: str) -> None:
    assert accessibility_problems(page) == [], name
    keep_screenshot(page, f"casework-{name}")


def test_a_case_worker_follows_up_and_assesses_her_case_from_the_web(network: Network, keycloak: Keycloak,
                                                                      browser: Any) -> None:
    web = network.web_url
    canary = f"Canary theo dõi {uuid.uuid4().hex}"  # what a case worker writes: personal data
    summary = f"Canary đánh giá {uuid.uuid4().hex}"
    goal = f"Canary mục tiêu {uuid.uuid4().hex}"
    with network.person_channel("intake", "qn-worker-7") as channel:
        case = intake_grpc.IntakeServiceStub(channel).RegisterCase(intake_pb.RegisterCaseRequest(
            client_request_id=f"e2e-{uuid.uuid4()}", province_code=QUANG_NINH, commune_code=BAI_CHAY,
            case_types=[t.CASE_TYPE_OLDER_PERSON, t.CASE_TYPE_DISABILITY], risk_level=t.RISK_LEVEL_MEDIUM,
            survivor=intake_pb.Survivor(is_child=False, age=74, sex=t.SEX_FEMALE), case_worker_id="qn-worker-7"),
            timeout=10).case
    case_id = case.case_id

    with phone_page(browser) as page:
        sign_in(page, web, keycloak.issuer, "qn-worker-7", "/cases")
        page.wait_for_url(web + "/cases")
        assert page.inner_text("#cases-title") == "Ca của tôi"
        checked(page, "my-cases")

        # From "My cases" to the case file.
        page.click(f'#cases a[href="/cases/{case_id}"]')
        page.wait_for_url(f"{web}/cases/{case_id}")
        assert page.inner_text("#case-worker") == "qn-worker-7"
        assert "Người cao tuổi" in page.inner_text("#case") and page.is_visible("#follow-ups-none")
        checked(page, "case-file-empty")

        # A follow-up: intake refuses a note over its limit, told beside the note, in Vietnamese; nothing lost.
        page.click("#add-follow-up")
        page.wait_for_url(f"{web}/cases/{case_id}/follow-ups/new")
        request_id = page.input_value('input[name="client_request_id"]')
        checked(page, "follow-up-form")
        page.select_option("#kind", "1")
        page.fill("#note", "x" * (NOTE_LIMIT + 1))
        page.click("#save-follow-up")
        page.wait_for_selector("#note-error")
        assert page.inner_text("#note-error") == f"Ghi chú: tối đa {NOTE_LIMIT} ký tự."
        assert page.get_attribute("#note", "aria-describedby") == "note-error"
        assert page.input_value("#kind") == "1" and len(page.input_value("#note")) == NOTE_LIMIT + 1
        assert page.input_value('input[name="client_request_id"]') == request_id  # the same form, the same id
        checked(page, "follow-up-error")
        page.fill("#note", canary)
        page.click("#save-follow-up")
        page.wait_for_url(re.compile(re.escape(f"{web}/cases/{case_id}?done=follow_up")))
        assert page.is_visible("#done") and canary in page.inner_text("#follow-ups")
        assert "Thăm tại nhà" in page.inner_text("#follow-ups")
        checked(page, "case-file-follow-up")

        # An assessment: a caseload service, a Washington Group domain, an accessibility need, a summary.
        page.click("#record-assessment")
        page.wait_for_url(f"{web}/cases/{case_id}/assessments/new")
        checked(page, "assessment-form")
        page.click("#save-assessment")  # no risk chosen: told beside the risk, nothing sent
        page.wait_for_selector("#risk-error")
        assert page.get_attribute("#risk", "aria-describedby") == "risk-error"
        checked(page, "assessment-error")
        page.select_option("#risk", "2")
        page.check("#needs-7")
        page.check("#needs-2")
        page.select_option("#wg_3", "3")
        page.check("#accessibility-ground_floor_bed")
        page.fill("#summary", summary)
        page.click("#save-assessment")
        page.wait_for_url(re.compile(re.escape(f"{web}/cases/{case_id}?done=assessment")))
        shown = page.inner_text("#assessments")
        assert "Tiếp cận chính sách trợ giúp xã hội" in shown and "Đi lại (Rất khó khăn)" in shown
        assert "Giường ở tầng trệt" in shown and summary in shown and "qn-worker-7" in shown
        assert canary in page.inner_text("#follow-ups")
        checked(page, "case-file-assessed")

        # A plan: one goal with a caseload service, an agency responsible, a due date.
        page.click("#record-plan")
        page.wait_for_url(f"{web}/cases/{case_id}/plan/new")
        checked(page, "plan-form")
        page.fill("#goal_0_description", goal)
        page.check("#goal_0_services-7")
        page.select_option("#goal_0_responsible_kind", "2")
        page.fill("#goal_0_responsible_id", "qn-spc")
        page.fill("#goal_0_due", in_days(30))
        page.click("#save-plan")
        page.wait_for_url(re.compile(re.escape(f"{web}/cases/{case_id}?done=plan")))
        assert goal in page.inner_text("#plan") and "qn-spc" in page.inner_text("#plan")
        assert page.inner_text("#record-plan") == "Sửa kế hoạch"

        # A review: intake asks for the next review's date unless the case is ready to close, beside that field.
        page.click("#review-case")
        page.wait_for_url(f"{web}/cases/{case_id}/reviews/new")
        page.select_option("#outcome", "1")
        page.click("#save-review")
        page.wait_for_selector("#next_review-error")
        assert page.inner_text("#next_review-error") == \
            "Lần rà soát tiếp theo: bắt buộc, trừ khi ca đã sẵn sàng đóng."
        checked(page, "review-error")
        page.fill("#next_review", in_days(20))
        page.click("#save-review")
        page.wait_for_url(re.compile(re.escape(f"{web}/cases/{case_id}?done=review")))
        assert "Tiếp tục kế hoạch" in page.inner_text("#reviews")
        checked(page, "case-file-reviewed")

    # What intake holds: one follow-up (the refused submit wrote nothing), one assessment, the plan, one review.
    with network.person_channel("intake", "qn-worker-7") as channel:
        case_file = cw_grpc.CaseWorkServiceStub(channel).GetCaseFile(cw.GetCaseFileRequest(case_id=case_id),
                                                                    timeout=10)
    assert [f.note for f in case_file.follow_ups] == [canary]
    assert len(case_file.assessments) == 1 and list(case_file.assessments[0].accessibility_needs) == [
        "ground_floor_bed"]
    assert [g.description for g in case_file.plan.goals] == [goal] and len(case_file.reviews) == 1

    # The note's and the summary's text in no process's log (the web's included).
    logs = list((network.data_dir / "logs").glob("*.log"))
    assert any(log.name.startswith("web") for log in logs), [log.name for log in logs]
    for log in logs:
        text = log.read_bytes()
        for secret in (canary, summary, goal):
            assert secret.encode() not in text, f"case work text in {log.name}"
