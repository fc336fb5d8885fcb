"""Who a call is from: the rules for machines' certificates, people's token claims and front doors,
without a network (a local key and an in-memory key set stand in for the identity provider)."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from refnet_platform.caller import Caller, Role
from refnet_platform.errors import Unauthenticated
from refnet_platform.identity import (
    Authenticator,
    OidcConfig,
    TokenVerifier,
    machine_from_certificate,
    person_from_claims,
)

ISSUER = "https://id.example.org/realms/refnet"
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def certificate(units: list[str], names: list[str], usages: list[x509.ObjectIdentifier] | None) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([*(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, u) for u in units),
                         *(x509.NameAttribute(NameOID.COMMON_NAME, n) for n in names)])
    now = dt.datetime.now(dt.UTC)
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
               .serial_number(1).not_valid_before(now).not_valid_after(now + dt.timedelta(days=1)))
    if usages is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    return builder.sign(key, hashes.SHA256())


def claims(**extra: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"iss": ISSUER, "aud": "refnet-api", "sub": "f4de", "iat": now, "exp": now + 300,
            "preferred_username": "qn-operator", "realm_access": {"roles": ["operator"]}, "provinces": ["22"],
            **extra}


class _Keys:
    """PyJWKClient's one method the verifier uses, over the local key."""

    def get_signing_key_from_jwt(self, token: str) -> Any:
        return jwt.PyJWK.from_dict({**jwt.algorithms.RSAAlgorithm.to_jwk(KEY.public_key(), as_dict=True),
                                    "kid": "k1", "alg": "RS256"})


def verifier(leeway_s: float = 0) -> TokenVerifier:
    v = TokenVerifier(OidcConfig(ISSUER, leeway_s=leeway_s))
    v._jwks = _Keys()  # type: ignore[assignment]
    return v


def sign(payload: dict[str, Any], key: Any = KEY) -> str:
    return jwt.encode(payload, key, algorithm="RS256", headers={"kid": "k1"})


def test_a_machine_is_its_certificates_one_cn_and_one_ou_with_client_auth() -> None:
    caller = machine_from_certificate(certificate(["agency"], ["qn-police-baichay"], [ExtendedKeyUsageOID.CLIENT_AUTH]))
    assert caller == Caller("qn-police-baichay", Role.AGENCY, organisation_id="qn-police-baichay")
    assert machine_from_certificate(certificate(["service"], ["referral"], [ExtendedKeyUsageOID.CLIENT_AUTH])) \
        == Caller("referral", Role.SERVICE)
    for units, names, usages, why in [
        (["agency"], ["qn-police-baichay"], None, "clientAuth"),
        (["agency"], ["qn-police-baichay"], [ExtendedKeyUsageOID.SERVER_AUTH], "clientAuth"),
        (["agency", "service"], ["qn-police-baichay"], [ExtendedKeyUsageOID.CLIENT_AUTH], "exactly one CN and one OU"),
        (["agency"], ["a", "b"], [ExtendedKeyUsageOID.CLIENT_AUTH], "exactly one CN and one OU"),
        (["operator"], ["qn-operator"], [ExtendedKeyUsageOID.CLIENT_AUTH], "sign in through the identity provider"),
        (["supervisor"], ["qn-supervisor"], [ExtendedKeyUsageOID.CLIENT_AUTH], "sign in through the identity"),
        (["ops"], ["ops-oncall"], [ExtendedKeyUsageOID.CLIENT_AUTH], "sign in through the identity provider"),
        (["janitor"], ["x"], [ExtendedKeyUsageOID.CLIENT_AUTH], "no refnet identity"),
    ]:
        with pytest.raises(Unauthenticated, match=why):
            machine_from_certificate(certificate(units, names, usages))


def test_a_persons_remit_comes_from_the_token_claims() -> None:
    national = person_from_claims(claims(preferred_username="national-111-operator", provinces=["*"]))
    assert national.national and national.covers("42") and national.person
    qn = person_from_claims(claims())
    assert qn == Caller("qn-operator", Role.OPERATOR, provinces=frozenset({"22"}), person=True)
    assert qn.covers("22") and not qn.covers("42")
    police = person_from_claims(claims(realm_access={"roles": ["agency", "offline_access"]}, provinces=None,
                                       agency_id="qn-police-baichay", preferred_username="officer-1"))
    assert (police.subject_id, police.organisation_id, police.role) == ("officer-1", "qn-police-baichay", Role.AGENCY)
    staff = person_from_claims(claims(realm_access={"roles": ["shelter"]}, shelter_id=["qn-shelter-spc"]))
    assert staff.organisation_id == "qn-shelter-spc"
    for bad, why in [
        (claims(realm_access={"roles": []}), "exactly one refnet role"),
        (claims(realm_access={"roles": ["operator", "supervisor"]}), "exactly one refnet role"),
        (claims(realm_access={"roles": ["service"]}), "exactly one refnet role"),  # a machine's role
        (claims(provinces=[]), "names no province"),
        (claims(realm_access={"roles": ["agency"]}), "exactly one agency_id"),
        (claims(realm_access={"roles": ["shelter"]}, shelter_id=["a", "b"]), "exactly one shelter_id"),
    ]:
        with pytest.raises(Unauthenticated, match=why):
            person_from_claims(bad)


def test_tokens_are_checked_for_signature_issuer_audience_and_expiry() -> None:
    v = verifier()
    assert v.person(sign(claims())).subject_id == "qn-operator"
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = int(time.time())
    for token, why in [
        (sign(claims(), other_key), "Signature verification failed"),
        (sign(claims(iss="https://evil.example.org/realms/refnet")), "(?i)issuer"),
        (sign(claims(aud="someone-else")), "(?i)audience"),
        (sign(claims(exp=now - 5)), "expired"),
        (sign({k: v for k, v in claims().items() if k != "exp"}), "exp"),
        ("not-a-jwt", "not valid"),
    ]:
        with pytest.raises(Unauthenticated, match=why):
            v.person(token)
    # A small clock skew is tolerated when configured.
    assert verifier(leeway_s=30).person(sign(claims(exp=now - 5))).subject_id == "qn-operator"


def test_only_a_front_door_forwards_a_persons_token_and_never_acts_on_its_own() -> None:
    auth = Authenticator(verifier())
    plaintext = {"transport_security_type": [b"insecure"]}
    gateway = {"x-refnet-caller": "gateway/refnet-web"}
    person = auth.caller(plaintext, {**gateway, "authorization": f"Bearer {sign(claims())}"})
    assert person.role is Role.OPERATOR and person.provinces == frozenset({"22"})
    with pytest.raises(Unauthenticated, match="acts only as a signed-in person"):
        auth.caller(plaintext, gateway)
    with pytest.raises(Unauthenticated, match="only a front door"):
        auth.caller(plaintext, {"x-refnet-caller": "agency/qn-police-baichay",
                                "authorization": f"Bearer {sign(claims())}"})
    with pytest.raises(Unauthenticated, match="Bearer"):
        auth.caller(plaintext, {**gateway, "authorization": "Basic abc"})
    with pytest.raises(Unauthenticated, match="no identity provider"):
        Authenticator(None).caller(plaintext, {**gateway, "authorization": f"Bearer {sign(claims())}"})
    with pytest.raises(Unauthenticated, match="client certificate is required"):
        auth.caller({"transport_security_type": [b"ssl"]}, {})
    assert auth.caller(plaintext, {"x-refnet-caller": "service/referral"}) == Caller("referral", Role.SERVICE)
