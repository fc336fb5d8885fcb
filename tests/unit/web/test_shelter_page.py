"""The shelter page in process, the apis stood in for: beds per pool, + and - without script, Confirm sending
UpdateAvailability for the person's own shelter, holds soonest first with arrivals to confirm, check-outs, a
refusal next to the pool it concerns, and the page's weight."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from refnet.common.v1 import types_pb2 as types
from refnet.shelter.v1 import shelter_service_pb2 as pb
from tests.unit.web.test_app import signed_in
from tests.unit.web.test_partner_portal import Refusal
from tests.unit.web.test_partner_portal import portal as portal  # the fixture
from web.entrypoints.pages import shelter
from web.i18n import CATALOG

NOW = int(time.time())


def pool(group: int, capacity: int, reserved: int = 0, occupied: int = 0, **kw: Any) -> pb.Availability:
    return pb.Availability(shelter_id="qn-spc", province_code="22", target_group=group, capacity=capacity,
                           reserved=reserved, occupied=occupied, free=capacity - reserved - occupied,
                           reported_free=capacity - reserved - occupied, confirmed_at=Timestamp(seconds=NOW - 60),
                           **kw)


def hold(rid: str, minutes: int, status: int = pb.RESERVATION_STATUS_HELD) -> pb.Reservation:
    return pb.Reservation(referral_id=rid, case_id=f"case-{rid}", shelter_id="qn-spc",
                          target_group=types.TARGET_GROUP_WOMEN, status=status,
                          hold_until=Timestamp(seconds=NOW + minutes * 60))


def test_every_group_and_reservation_status_has_a_label_in_both_languages() -> None:
    for number in types.TargetGroup.values():
        key = f"shelter.group.{shelter.group_code(number)}"
        assert CATALOG["vi"][key].strip() and CATALOG["en"][key].strip()
    for number in pb.ReservationStatus.values():
        key = f"shelter.reservation.{shelter.reservation_code(number)}"
        assert CATALOG["vi"][key].strip() and CATALOG["en"][key].strip()


def test_steps_and_requests() -> None:
    assert shelter.stepped(5, 1, 2) == 6 and shelter.stepped(2, -1, 2) == 2 and shelter.stepped(999, 1, 0) == 999
    assert shelter.update_request("qn-spc", {"target_group": "1", "capacity": "7"}) == pb.UpdateAvailabilityRequest(
        shelter_id="qn-spc", target_group=types.TARGET_GROUP_WOMEN, capacity=7)
    assert shelter.update_request("qn-spc", {"capacity": "-3"}).capacity == 0
    held, staying = shelter.stays_of("vi", [hold("late", 300), hold("soon", 20),
                                            hold("in", 0, pb.RESERVATION_STATUS_OCCUPIED)], NOW)
    assert [s.referral_id for s in held] == ["soon", "late"] and held[0].expiring and not held[1].expiring
    assert [s.referral_id for s in staying] == ["in"]


@pytest.fixture
def beds(portal: dict[str, Any]) -> Iterator[dict[str, Any]]:
    apis = portal["apis"]
    state = {"capacity": 10}
    apis.handlers["GetShelter"] = lambda r: pb.GetShelterResponse(shelter=pb.Shelter(
        shelter_id=r.shelter_id, name="Trung tâm Bảo trợ xã hội Quảng Ninh",
        pools=[pool(types.TARGET_GROUP_WOMEN, state["capacity"], 2, 3),
               pool(types.TARGET_GROUP_CHILDREN, 4, stale=True)]))
    apis.handlers["ListReservations"] = lambda r: pb.ListReservationsResponse(reservations=[
        hold("ref-held-1", 30), hold("ref-in-1", 0, pb.RESERVATION_STATUS_OCCUPIED)])

    def update(r: Any) -> Any:
        if r.capacity < 5:
            return Refusal(grpc.StatusCode.FAILED_PRECONDITION, "capacity below beds in use")
        state["capacity"] = r.capacity
        return pb.UpdateAvailabilityResponse()

    apis.handlers["UpdateAvailability"] = update
    apis.handlers["ConfirmArrival"] = lambda r: pb.ConfirmArrivalResponse()
    apis.handlers["CheckOut"] = lambda r: pb.CheckOutResponse()
    signed_in(portal, "qn-spc-staff", csrf="t")
    yield {**portal, "state": state}


def test_the_page_shows_beds_holds_and_stays_and_weighs_little(beds: dict[str, Any]) -> None:
    client, apis = beds["client"], beds["apis"]
    page = client.get("/shelter")
    assert page.status_code == 200 and "<h1>Cơ sở tạm lánh</h1>" in page.text
    assert apis.calls[0][1] == pb.GetShelterRequest(shelter_id="qn-spc") and apis.calls[0][2] == "qn-spc-staff"
    women = page.text[page.text.index('id="pool-women"'):page.text.index('id="pool-children"')]
    assert 'class="n-capacity">10<' in women and 'class="n-free">5<' in women and 'value="10"' in women
    assert 'id="plus-women"' in women and 'id="confirm-women"' in women and 'min="5"' in women
    assert "Quá lâu chưa xác nhận" in page.text  # the children's pool is stale
    assert 'data-case-id="case-ref-held-1"' in page.text and 'id="arrived-ref-held-1"' in page.text
    assert "Sắp hết hạn giữ" in page.text and 'id="checkout-ref-in-1"' in page.text
    weight = len(page.content) + sum(len(client.get(f"/static/{name}").content)
                                     for name in ("web.css", "web.js", "shelter.css", "shelter.js"))
    assert weight < 100_000, weight
    assert "http://" not in page.text.replace("http://127.0.0.1", "") and "https://" not in page.text


def test_plus_without_script_then_confirm(beds: dict[str, Any]) -> None:
    client, apis = beds["client"], beds["apis"]
    plus = client.post("/shelter/beds", data={"target_group": "1", "capacity": "10", "minimum": "5", "adjust": "1",
                                              "csrf_token": "t"})
    assert plus.status_code == 200 and 'value="11"' in plus.text and "báo 11 giường" in plus.text
    assert "UpdateAvailability" not in [c[0] for c in apis.calls]
    saved = client.post("/shelter/beds", data={"target_group": "1", "capacity": "11", "minimum": "5", "adjust": "0",
                                               "csrf_token": "t"})
    assert saved.status_code == 303 and saved.headers["location"].startswith("/shelter?done=saved")
    assert apis.calls[-1][1] == pb.UpdateAvailabilityRequest(shelter_id="qn-spc", target_group=1, capacity=11)
    page = client.get("/shelter?done=saved")
    assert "Đã lưu số giường." in page.text and 'class="n-capacity">11<' in page.text
    minus = client.post("/shelter/beds", data={"target_group": "1", "capacity": "5", "minimum": "5",
                                               "adjust": "-1", "csrf_token": "t"})
    assert 'value="5"' in minus.text[minus.text.index('id="pool-women"'):]  # never below the beds in use


def test_a_refused_update_shows_next_to_its_pool(beds: dict[str, Any]) -> None:
    refused = beds["client"].post("/shelter/beds", data={"target_group": "1", "capacity": "3", "minimum": "5",
                                                         "csrf_token": "t"})
    assert refused.status_code == 409
    women = refused.text[refused.text.index('id="pool-women"'):refused.text.index('id="pool-children"')]
    assert "Không thể ít hơn 5 giường" in women and 'aria-invalid="true"' in women and 'value="3"' in women


def test_arrivals_and_check_outs(beds: dict[str, Any]) -> None:
    client, apis = beds["client"], beds["apis"]
    arrived = client.post("/shelter/arrivals/ref-held-1", data={"csrf_token": "t"})
    assert arrived.status_code == 303 and arrived.headers["location"] == "/shelter?done=arrived"
    assert apis.calls[-1][1] == pb.ConfirmArrivalRequest(referral_id="ref-held-1")
    out = client.post("/shelter/checkouts/ref-in-1", data={"csrf_token": "t"})
    assert out.status_code == 303 and apis.calls[-1][1] == pb.CheckOutRequest(referral_id="ref-in-1")
    assert "Đã ghi nhận người rời đi" in client.get("/shelter?done=checked_out").text
    apis.handlers["ConfirmArrival"] = lambda r: Refusal(grpc.StatusCode.NOT_FOUND)
    assert client.post("/shelter/arrivals/other", data={"csrf_token": "t"}).status_code == 404
