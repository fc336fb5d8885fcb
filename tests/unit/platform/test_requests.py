"""The platform's one idempotent-request table and its one answer for a reused id."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import create_engine

from refnet.referral.v1 import referral_service_pb2 as pb
from refnet_platform.errors import AlreadyExists, InvalidArgument
from refnet_platform.requests import REUSED, SHARED, PriorRequest, RequestLog, request_metadata, require_request_id

NOON = datetime(2025, 3, 1, 12, tzinfo=UTC)


def test_a_repeat_answers_with_the_first_result_and_a_reuse_is_already_exists() -> None:
    engine = create_engine("sqlite://")
    with engine.begin() as conn:
        request_metadata.create_all(conn)
        log = RequestLog(conn)
        assert log.check(SHARED, "r-1", "close_case", "case-1") is None
        log.add(SHARED, "r-1", "close_case", "case-1", "case-1", NOON)
        assert log.check(SHARED, "r-1", "close_case", "case-1") == PriorRequest("close_case", "case-1", "case-1")
        for operation, subject in (("update_risk", "case-1"), ("close_case", "case-2"), ("close_case", "")):
            with pytest.raises(AlreadyExists) as reused:
                log.check(SHARED, "r-1", operation, subject)
            assert str(reused.value) == REUSED == "client_request_id: already used for another request"
        # Each scope has its own ids.
        assert log.check("agency:qn-police", "r-1", "accept", "ref-1") is None


def test_a_request_id_is_required_and_bounded() -> None:
    for bad, problem in (("", "required"), ("x" * 101, "at most 100")):
        with pytest.raises(InvalidArgument, match=problem) as refused:
            require_request_id(bad)
        assert str(refused.value).startswith("client_request_id: ")
    require_request_id("x" * 100)


def test_referral_takes_client_request_id_or_the_deprecated_request_id() -> None:
    from referral.adapters.proto_mapping import client_request_id

    assert client_request_id(pb.StartServiceRequest(client_request_id="a")) == "a"
    assert client_request_id(pb.StartServiceRequest(request_id="b")) == "b"  # an old client
    assert client_request_id(pb.AssignProviderRequest(client_request_id="a", request_id="a")) == "a"
    assert client_request_id(pb.AcceptReferralRequest()) == ""  # then the handler says it is required
    with pytest.raises(InvalidArgument) as both:
        client_request_id(pb.DeclineReferralRequest(client_request_id="a", request_id="b"))
    assert str(both.value).startswith("client_request_id: ")
