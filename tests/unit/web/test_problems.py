"""An api's refusal as a page shows it: next to the field it names, in both languages."""

from __future__ import annotations

import grpc
import pytest

from web.adapters.apis import Problem, problem_of
from web.entrypoints.pages.common import form_state


class Refusal(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode, details: str = "") -> None:
        self._code, self._details = code, details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details


def test_invalid_argument_names_the_field_and_keeps_the_apis_text() -> None:
    problem = problem_of(Refusal(grpc.StatusCode.INVALID_ARGUMENT, "survivor.age: must be between 0 and 120"))
    assert problem.field == "survivor.age" and problem.status == 400
    assert problem.message_vi.startswith("Thông tin chưa đúng: survivor.age")
    assert problem.message_en == "survivor.age: must be between 0 and 120"
    unnamed = problem_of(Refusal(grpc.StatusCode.INVALID_ARGUMENT, "the request is empty"))
    assert unnamed.field is None and "the request is empty" in unnamed.message_en


@pytest.mark.parametrize(("code", "status", "vi", "en"), [
    (grpc.StatusCode.NOT_FOUND, 404, "Không tìm thấy", "Not found"),
    (grpc.StatusCode.PERMISSION_DENIED, 403, "không có quyền", "not allowed"),
    (grpc.StatusCode.UNAVAILABLE, 503, "Mất kết nối, xin thử lại", "Connection lost, try again"),
    (grpc.StatusCode.DEADLINE_EXCEEDED, 503, "Mất kết nối", "Connection lost"),
    (grpc.StatusCode.UNAUTHENTICATED, 401, "đăng nhập lại", "sign in again"),
    (grpc.StatusCode.FAILED_PRECONDITION, 409, "Không thể", "cannot be done"),
    (grpc.StatusCode.INTERNAL, 500, "Có lỗi", "Something went wrong"),
])
def test_each_refusal_reads_plainly(code: grpc.StatusCode, status: int, vi: str, en: str) -> None:
    problem = problem_of(Refusal(code, "case 123 is not one of yours"))
    assert problem.status == status and vi in problem.message_vi and en in problem.message_en
    assert problem.sign_in_again is (code is grpc.StatusCode.UNAUTHENTICATED)
    assert problem.retry is (code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED,
                                      grpc.StatusCode.INTERNAL))
    if code is grpc.StatusCode.NOT_FOUND:  # out of remit looks exactly like missing: nothing echoed
        assert "123" not in problem.message_en + problem.message_vi
    assert problem.message("en") == problem.message_en and problem.message("vi") == problem.message_vi


def test_a_form_keeps_its_values_and_puts_the_problem_by_its_field() -> None:
    values = {"age": "200", "phone": "0900", "csrf_token": "x"}
    problem = Problem("survivor.age", "Thông tin chưa đúng: survivor.age", "survivor.age: too old", 400)
    form = form_state(values, problem)
    assert form.value("age") == "200" and form.value("phone") == "0900" and "csrf_token" not in form.values
    assert form.error("age") is problem and form.problem is None and form.failed
    elsewhere = form_state(values, Problem("commune_code", "vi", "en", 400))
    assert elsewhere.problem is not None and not elsewhere.errors
