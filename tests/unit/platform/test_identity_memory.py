"""The verifier remembers the tokens it accepted (by their hash) until they expire: a person's every call does not
verify the same signature again, and nothing it refused, nor anything past its time, is ever let through."""

from __future__ import annotations

import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from refnet_platform.errors import Unauthenticated
from refnet_platform.identity import OidcConfig, TokenVerifier
from tests.unit.platform.test_identity import ISSUER, KEY, claims, sign


class _CountingKeys:
    """The local key, counting how often the verifier asks for it (once per full verification)."""

    def __init__(self) -> None:
        self.asked = 0

    def get_signing_key_from_jwt(self, token: str) -> Any:
        self.asked += 1
        return jwt.PyJWK.from_dict({**jwt.algorithms.RSAAlgorithm.to_jwk(KEY.public_key(), as_dict=True),
                                    "kid": "k1", "alg": "RS256"})


def verifier(leeway_s: float = 0, remembered_max: int = 4096) -> tuple[TokenVerifier, _CountingKeys]:
    v = TokenVerifier(OidcConfig(ISSUER, leeway_s=leeway_s), remembered_max=remembered_max)
    keys = _CountingKeys()
    v._jwks = keys  # type: ignore[assignment]
    return v, keys


def test_a_verified_token_is_remembered_not_verified_again() -> None:
    v, keys = verifier()
    token = sign(claims())
    first = v.person(token)
    assert v.person(token) == first and v.person(token) == first
    assert keys.asked == 1
    v.person(sign(claims(sub="other", preferred_username="other-operator")))
    assert keys.asked == 2  # another token is verified on its own


def test_a_remembered_token_is_refused_once_expired_and_never_beyond_its_leeway() -> None:
    v, keys = verifier(leeway_s=1)
    exp = int(time.time()) + 1
    token = sign(claims(exp=exp))
    assert v.person(token).subject_id == "qn-operator"
    time.sleep(max(exp + 0.5 - time.time(), 0))
    assert v.person(token).subject_id == "qn-operator"  # past exp, within the leeway: still accepted
    assert keys.asked == 1
    time.sleep(max(exp + 1.1 - time.time(), 0))
    with pytest.raises(Unauthenticated, match="expired"):
        v.person(token)
    with pytest.raises(Unauthenticated, match="expired"):
        v.person(token)  # and stays refused


def test_a_token_with_a_changed_signature_misses_the_memory_and_is_refused() -> None:
    v, _ = verifier()
    token = sign(claims())
    v.person(token)
    header, payload, _ = token.split(".")
    forged = f"{header}.{payload}.{sign(claims(), rsa.generate_private_key(65537, 2048)).rsplit('.', 1)[1]}"
    with pytest.raises(Unauthenticated, match="Signature verification failed"):
        v.person(forged)
    with pytest.raises(Unauthenticated, match="not valid"):
        v.person(token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB"))


def test_refusals_are_not_remembered_and_the_memory_is_bounded() -> None:
    v, keys = verifier(remembered_max=4)
    wrong_issuer = sign(claims(iss="https://evil.example.org/realms/refnet"))
    for _ in range(2):
        with pytest.raises(Unauthenticated, match=r"(?i)issuer"):
            v.person(wrong_issuer)
    assert keys.asked == 2
    for n in range(10):
        v.person(sign(claims(sub=f"s{n}")))
    assert len(v._verified) <= 4
