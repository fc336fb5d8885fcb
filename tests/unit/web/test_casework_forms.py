"""The case file's forms, pure parts: values → CaseWorkService requests, and intake's field problems told beside
the form's field with its label, Vietnamese first."""

from __future__ import annotations

import grpc

from web.adapters.apis import problem_of
from web.entrypoints.pages import casework_forms as forms


class Refused(grpc.RpcError):
    def __init__(self, details: str) -> None:
        self._details = details

    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.INVALID_ARGUMENT

    def details(self) -> str:
        return self._details


def test_a_follow_up_needs_a_kind_and_a_note() -> None:
    built = forms.follow_up_request({"kind": "", "note": "  "}, "c-1", "r-1")
    assert set(built.errors) == {"kind", "note"} and built.request is None
    built = forms.follow_up_request({"kind": "2", "note": " gọi được "}, "c-1", "r-1")
    assert (built.request.kind, built.request.note, built.request.client_request_id) == (2, "gọi được", "r-1")


def test_an_assessment_sends_only_the_domains_asked_and_known_codes() -> None:
    built = forms.assessment_request({"risk": "2", "needs": "7,99,2", "wg_2": "4", "wg_5": "", "wg_6": "9",
                                      "accessibility": "braille,made_up"}, "c-1", "r-1")
    request = built.request
    assert list(request.needs) == [7, 2] and [(d.domain, d.difficulty) for d in request.difficulties] == [(2, 4)]
    assert list(request.accessibility_needs) == ["braille"] and not request.immediate_danger
    assert set(forms.assessment_request({}, "c-1", "r-1").errors) == {"risk"}


def test_intakes_field_problems_land_beside_the_forms_field_in_vietnamese_then_english() -> None:
    cases = {
        "note: at most 20000 characters": ("note", "Ghi chú: tối đa 20000 ký tự.", "Note: at most 20000 characters."),
        "kind: is required": ("kind", "Hình thức: bắt buộc.", "Kind: is required."),
        "difficulties[1].domain: this domain is listed twice": ("difficulties", None, None),
        "needs[2]: medical is listed twice": ("needs", "Dịch vụ cần: bị chọn hai lần.", None),
        "risk_level: is required (low, medium or high)": ("risk", "Mức nguy cơ: bắt buộc.", None),
    }
    both = forms.FOLLOW_UP_FIELDS | forms.ASSESSMENT_FIELDS
    for details, (field, vi, en) in cases.items():
        top, errors = forms.field_problem(problem_of(Refused(details)), both)
        assert top is None and set(errors) == {field}, details
        assert vi is None or errors[field].message_vi == vi
        assert en is None or errors[field].message_en == en
    top, errors = forms.field_problem(problem_of(Refused("assessed_at: is in the future")), forms.ASSESSMENT_FIELDS)
    assert top is not None and not errors  # no such field on the form: told on top
    top, errors = forms.field_problem(problem_of(Refused("note: something new")), forms.FOLLOW_UP_FIELDS)
    assert errors["note"].message_vi == "Ghi chú: không hợp lệ (something new)."
