"""The api resolves a caller on its event loop when that needs no verification (a machine, or a person's token
verified before and still trusted), and only then: a token not yet verified, past its time or forged is left to the
full check (off the loop), which refuses it as before; a front door without a token is refused at once."""

from __future__ import annotations

import time

import pytest

from refnet_platform.caller import Role
from refnet_platform.errors import Unauthenticated
from refnet_platform.identity import PLAINTEXT_CALLER_HEADER, Authenticator, bearer
from tests.unit.platform.test_identity import claims, sign
from tests.unit.platform.test_identity_memory import verifier

GATEWAY = {PLAINTEXT_CALLER_HEADER: "gateway/refnet-dev"}


def person_metadata(token: str) -> dict[str, str]:
    return {**GATEWAY, **dict(bearer(token))}


def test_a_remembered_token_is_resolved_without_verifying_and_a_new_one_is_not() -> None:
    v, keys = verifier()
    authenticator = Authenticator(v)
    token = sign(claims())
    assert authenticator.known_caller({}, person_metadata(token)) is None  # never verified: the full check
    assert keys.asked == 0
    person = authenticator.caller({}, person_metadata(token))
    assert (person.subject_id, person.role, person.person) == ("qn-operator", Role.OPERATOR, True)
    assert authenticator.known_caller({}, person_metadata(token)) == person
    assert keys.asked == 1


def test_a_remembered_token_past_its_time_goes_to_the_full_check_which_refuses_it() -> None:
    v, _ = verifier(leeway_s=0)
    authenticator = Authenticator(v)
    exp = int(time.time()) + 1
    token = sign(claims(exp=exp))
    authenticator.caller({}, person_metadata(token))
    time.sleep(max(exp + 0.2 - time.time(), 0))
    assert authenticator.known_caller({}, person_metadata(token)) is None
    with pytest.raises(Unauthenticated, match="expired"):
        authenticator.caller({}, person_metadata(token))


def test_a_forged_token_is_never_known_and_machines_are_known_at_once() -> None:
    v, _ = verifier()
    authenticator = Authenticator(v)
    token = sign(claims())
    authenticator.caller({}, person_metadata(token))
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    assert authenticator.known_caller({}, person_metadata(forged)) is None
    with pytest.raises(Unauthenticated, match="not valid"):
        authenticator.caller({}, person_metadata(forged))
    service = authenticator.known_caller({}, {PLAINTEXT_CALLER_HEADER: "service/referral"})
    assert service is not None and (service.subject_id, service.role) == ("referral", Role.SERVICE)
    with pytest.raises(Unauthenticated, match="front door"):
        authenticator.known_caller({}, GATEWAY)
    with pytest.raises(Unauthenticated, match="only a front door"):
        authenticator.known_caller({}, {PLAINTEXT_CALLER_HEADER: "service/referral", **dict(bearer(token))})
