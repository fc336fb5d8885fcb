"""The operator workspace's pure parts: place search and resolution on the 2025 map (old names mapped), and
the call and case forms → intake requests, every problem named by the form's field."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from refnet.common.v1 import types_pb2 as t
from refnet.intake.v1 import intake_service_pb2 as intake_pb
from refnet.intake.v1 import types_pb2 as intake_types
from web.entrypoints.pages import operator_forms as forms

NOW = datetime(2026, 3, 2, 3, 0, tzinfo=UTC)
CASE = {"place": "Bãi Cháy, Quảng Ninh", "age": "31", "sex": "1", "types": "1", "risk": "2",
        "needs": "police,medical,shelter,legal_aid", "consents": "police,medical,shelter",
        "contact_name": "Chị H.", "phone": "0912 345 678", "phone_safe": "on", "safe_days": "1,3,5",
        "safe_start": "18:00", "safe_end": "21:00"}


def test_place_search_finds_2025_units_by_prefix_without_accents() -> None:
    found = forms.search_places("bai ch")
    assert found[0].value == "Phường Bãi Cháy, Quảng Ninh"
    assert (found[0].province_code, found[0].commune_code) == ("22", "06673")
    assert forms.search_places("b") == [] and forms.search_places("  ") == []
    assert len(forms.search_places("an", limit=5)) == 5


def test_place_search_maps_old_names_to_their_2025_unit() -> None:
    old = forms.search_places("Giếng Đáy")[0]
    assert old.old_name == "Phường Giếng Đáy" and old.value == "Phường Việt Hưng, Quảng Ninh"
    assert "→" in old.label
    province = [p for p in forms.search_places("Hà Giang") if not p.commune_code]
    assert province and province[0].value == "Tuyên Quang"


def test_place_search_narrows_to_a_province() -> None:
    found = forms.search_places("Tân Phú, Đồng Nai")
    assert found and all(p.province_code == forms.resolve_place("Đồng Nai").province_code for p in found)


@pytest.mark.parametrize(("typed", "expected"), [
    ("Bãi Cháy, Quảng Ninh", ("22", "06673")),
    ("phuong bai chay", ("22", "06673")),
    ("Phường Bãi Cháy, Quảng Ninh", ("22", "06673")),
    ("Giếng Đáy, Quảng Ninh", ("22", "06661")),
    ("Quảng Ninh", ("22", "")),
    ("Hà Giang", ("08", "")),  # an old province: the one it was merged into
])
def test_resolve_place(typed: str, expected: tuple[str, str]) -> None:
    place = forms.resolve_place(typed)
    assert (place.province_code, place.commune_code) == expected


@pytest.mark.parametrize(("typed", "says"), [
    ("", "Nhập xã"), ("Atlantis", "Không tìm thấy"), ("Bãi Cháy, Narnia", "Không tìm thấy"),
    ("Bãi Cháy, Hà Tĩnh", "Không tìm thấy"), ("Tân Phú", "nhiều tỉnh"),
])
def test_a_place_that_does_not_resolve_names_the_field(typed: str, says: str) -> None:
    with pytest.raises(forms.PlaceProblem) as raised:
        forms.resolve_place(typed)
    assert raised.value.problem.field == "place" and says in raised.value.problem.message_vi
    assert raised.value.problem.message_en and raised.value.problem.status == 400


def test_flat_values_joins_the_checkbox_lists() -> None:
    flat = forms.flat_values({"needs": ["police", "medical"], "age": ["3", "31"], "types": [""]})
    assert flat == {"needs": "police,medical", "age": "31", "types": ""}
    assert forms.listed(flat, "needs") == ["police", "medical"] and forms.listed(flat, "types") == []


def test_an_adult_case_maps_to_register_case() -> None:
    built = forms.case_request(CASE, "req-1", NOW)
    assert not built.errors
    request = built.request
    assert isinstance(request, intake_pb.RegisterCaseRequest)
    assert (request.client_request_id, request.province_code, request.commune_code) == ("req-1", "22", "06673")
    assert list(request.case_types) == [t.CASE_TYPE_DOMESTIC_VIOLENCE] and request.risk_level == t.RISK_LEVEL_MEDIUM
    assert (request.survivor.is_child, request.survivor.age, request.survivor.sex) == (False, 31, t.SEX_FEMALE)
    needs = {n.service_type: n.consented for n in request.needs}
    assert needs == {t.SERVICE_TYPE_POLICE_PROTECTION: True, t.SERVICE_TYPE_MEDICAL: True,
                     t.SERVICE_TYPE_SHELTER: True, t.SERVICE_TYPE_LEGAL_AID: False}
    assert request.contact.phone_is_safe and request.contact.phone == "0912 345 678"
    assert list(request.contact.safe_times[0].weekdays) == [1, 3, 5]
    assert (request.contact.safe_times[0].start, request.contact.safe_times[0].end) == ("18:00", "21:00")
    assert not request.HasField("call")
    assert forms.ranked_for(request)[3] == (t.SERVICE_TYPE_LEGAL_AID, False)


def test_a_survivor_who_refuses_to_be_counted_is_registered_so() -> None:
    counted = forms.case_request(CASE, "req-1", NOW).request
    refused = forms.case_request({**CASE, "no_reporting": "on"}, "req-2", NOW).request
    assert counted is not None and not counted.HasField("reporting_consent")  # unset: she may be counted
    assert refused is not None and refused.HasField("reporting_consent") and not refused.reporting_consent


def test_a_case_opened_from_a_call_carries_the_call() -> None:
    started = int(NOW.timestamp()) - 300
    built = forms.case_request({**CASE, "call_channel": "2", "call_topic": "1", "call_started": str(started)},
                               "req-2", NOW)
    assert built.request is not None
    call = built.request.call  # type: ignore[attr-defined]
    assert (call.channel, call.topic, call.anonymous, call.duration_seconds) == (2, 1, True, 300)


def test_a_childs_consent_names_who_gave_it() -> None:
    child = {**CASE, "is_child": "on", "age": "12", "consent_giver": "3", "legal_basis": ""}
    assert set(forms.case_request(child, "r", NOW).errors) == {"legal_basis"}
    assert set(forms.case_request({**child, "consent_giver": ""}, "r", NOW).errors) == {"consent_giver"}
    other = {**child, "legal_basis": str(intake_types.LEGAL_BASIS_OTHER)}
    assert set(forms.case_request(other, "r", NOW).errors) == {"legal_basis_note"}
    built = forms.case_request({**child, "legal_basis": str(intake_types.LEGAL_BASIS_CHILDREN_LAW_2016),
                                "legal_basis_note": "Điều 50"}, "r", NOW)
    need = built.request.needs[0]  # type: ignore[attr-defined]
    assert not need.consented and need.consent.given_by == intake_types.CONSENT_GIVER_CASE_WORKER
    assert need.consent.legal_basis_code == intake_types.LEGAL_BASIS_CHILDREN_LAW_2016
    assert need.consent.legal_basis_note == "Điều 50" and not need.consent.legal_basis
    assert "phone" in need.consent.data_categories


@pytest.mark.parametrize(("change", "field"), [
    ({"phone": "09abc"}, "phone"), ({"phone": "", "phone_safe": "on"}, "phone_safe"),
    ({"age": "forty"}, "age"), ({"age": "15"}, "age"), ({"is_child": "on", "age": "30"}, "age"),
    ({"types": ""}, "types"), ({"risk": ""}, "risk"), ({"place": "Atlantis"}, "place"),
    ({"safe_start": "7pm"}, "safe_start"), ({"safe_end": ""}, "safe_end"), ({"safe_end": "18:00"}, "safe_end"),
    ({"consents": "police,psychosocial"}, "needs"),
])
def test_each_problem_is_named_by_its_form_field(change: dict[str, str], field: str) -> None:
    built = forms.case_request({**CASE, **change}, "r", NOW)
    assert built.request is None and field in built.errors
    assert built.errors[field].field == field and built.errors[field].message_vi and built.errors[field].message_en


def test_the_call_form_maps_to_log_call_with_the_operators_province() -> None:
    values = {"channel": "2", "topic": "2", "outcome": "1", "anonymous": "on",
              "started": str(int(NOW.timestamp()) - 90)}
    built = forms.call_request(values, {"22"}, "call-1", NOW)
    request = built.request
    assert isinstance(request, intake_pb.LogCallRequest)
    assert (request.province_code, request.outcome, request.call.channel, request.call.topic) == ("22", 1, 2, 2)
    assert request.call.anonymous and request.call.duration_seconds == 90
    national = forms.call_request(values, {"*"}, "call-2", NOW)
    assert set(national.errors) == {"province"}
    assert set(forms.call_request({**values, "topic": "99"}, {"22"}, "c", NOW).errors) == {"topic"}


@pytest.mark.parametrize(("api", "form"), [
    ("contact.phone", "phone"), ("province_code", "place"), ("commune_code", "place"), ("survivor.age", "age"),
    ("needs[1].consent.legal_basis_code", "legal_basis"), ("needs[0].consent.given_by", "consent_giver"),
    ("needs[1].consent.legal_basis_note", "legal_basis_note"),
    ("contact.safe_times[0].end", "safe_end"), ("case_types[0]", "types"), ("call.channel", "channel"),
    ("needs[2].service_type", "needs"), ("something_else", None), (None, None),
])
def test_api_fields_map_to_form_fields(api: str | None, form: str | None) -> None:
    assert forms.form_field(api) == form
