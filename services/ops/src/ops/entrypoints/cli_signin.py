"""How the `refnet` CLI signs a person in: the OAuth device authorization flow (with PKCE) against the
identity provider, the token kept in ~/.config/refnet/token (0600) or taken from $REFNET_TOKEN, and renewed
with its refresh token as it nears expiry."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
# Renew the access token this long before it expires.
RENEW_BEFORE_S = 30


class SignInError(Exception):
    """Signing in did not work (or a stored sign-in can no longer be used): say so, and what to do."""


def http_json(url: str, form: dict[str, str] | None = None, timeout: float = 30) -> tuple[int, dict[str, Any]]:
    data = urllib.parse.urlencode(form).encode() if form is not None else None
    request = urllib.request.Request(url, data=data, headers={"Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as reply:
            return reply.status, dict(json.loads(reply.read() or b"{}"))
    except urllib.error.HTTPError as exc:
        body = exc.read()
        try:
            return exc.code, dict(json.loads(body or b"{}"))
        except ValueError:
            return exc.code, {"error": body.decode(errors="replace")[:300]}


def token_file() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "refnet" / "token"


class TokenStore:
    """The person's tokens from `refnet login`: a JSON file only they can read (0600, in a 0700 directory)."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or token_file()

    def load(self) -> dict[str, Any] | None:
        try:
            return dict(json.loads(self.path.read_text()))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise SignInError(f"cannot read {self.path} ({exc}): run `refnet login` again") from None

    def save(self, data: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(data, out)
        os.chmod(temporary, 0o600)
        os.replace(temporary, self.path)

    def forget(self) -> bool:
        try:
            self.path.unlink()
            return True
        except FileNotFoundError:
            return False


def provider_metadata(issuer: str, http: Callable[..., tuple[int, dict[str, Any]]] = http_json) -> dict[str, Any]:
    status, metadata = http(f"{issuer.rstrip('/')}/.well-known/openid-configuration")
    if status != 200 or metadata.get("issuer") != issuer:
        raise SignInError(f"{issuer} does not answer as an OpenID provider (HTTP {status})")
    return metadata


def _stored(issuer: str, client_id: str, token_endpoint: str, reply: dict[str, Any]) -> dict[str, Any]:
    now = time.time()
    return {"issuer": issuer, "client_id": client_id, "token_endpoint": token_endpoint,
            "access_token": reply["access_token"], "expires_at": now + float(reply.get("expires_in", 300)),
            "refresh_token": reply.get("refresh_token", ""),
            "refresh_expires_at": now + float(reply.get("refresh_expires_in") or 0) if reply.get("refresh_token")
            else 0}


def device_sign_in(issuer: str, client_id: str, out: TextIO | None = None,
                   sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic,
                   http: Callable[..., tuple[int, dict[str, Any]]] = http_json) -> dict[str, Any]:
    """The OAuth 2.0 device authorization grant (RFC 8628), with PKCE (S256) as the provider requires of the
    CLI's client: asks the provider for a code, tells the person where to enter it, and polls the token
    endpoint until they have signed in (or the code expires)."""
    out = out or sys.stderr
    metadata = provider_metadata(issuer, http)
    device_endpoint = metadata.get("device_authorization_endpoint")
    if not device_endpoint:
        raise SignInError(f"{issuer} offers no device sign-in (device_authorization_endpoint)")
    verifier = secrets.token_urlsafe(64)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    status, grant = http(device_endpoint, {"client_id": client_id, "scope": "openid", "code_challenge": challenge,
                                           "code_challenge_method": "S256"})
    if status != 200:
        reason = grant.get("error_description") or grant.get("error") or f"HTTP {status}"
        raise SignInError(f"the identity provider refused to start a sign-in: {reason}")
    where = grant.get("verification_uri_complete") or grant["verification_uri"]
    out.write(f"To sign in, open {where}\n"
              f"(or open {grant['verification_uri']} and enter the code {grant['user_code']})\n"
              "Waiting for you to sign in...\n")
    out.flush()
    interval = float(grant.get("interval") or 5)
    deadline = clock() + float(grant.get("expires_in") or 600)
    while clock() < deadline:
        sleep(interval)
        status, reply = http(metadata["token_endpoint"], {"grant_type": DEVICE_GRANT, "client_id": client_id,
                                                          "device_code": grant["device_code"],
                                                          "code_verifier": verifier})
        if status == 200 and reply.get("access_token"):
            return _stored(issuer, client_id, metadata["token_endpoint"], reply)
        error = reply.get("error", "")
        if error == "authorization_pending":
            continue
        if error == "slow_down":
            interval += 5
            continue
        if error == "access_denied":
            raise SignInError("sign-in was declined")
        if error == "expired_token":
            break
        raise SignInError(f"sign-in failed: {reply.get('error_description') or error or f'HTTP {status}'}")
    raise SignInError("the code expired before anyone signed in with it: run `refnet login` again")


def claims_of(token: str) -> dict[str, Any]:
    """What a token says about its person, read (not verified: the console verifies) for messages only."""
    try:
        payload = token.split(".")[1]
        return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))
    except (IndexError, ValueError):
        return {}


class Credentials:
    """The access token every request carries: $REFNET_TOKEN, else the stored one, renewed when near expiry."""

    def __init__(self, store: TokenStore | None = None, environ: dict[str, str] | None = None) -> None:
        self.store = store or TokenStore()
        self.environ = os.environ if environ is None else environ

    def token(self) -> str | None:
        if self.environ.get("REFNET_TOKEN"):
            return self.environ["REFNET_TOKEN"].strip()
        data = self.store.load()
        if data is None:
            return None
        if float(data.get("expires_at", 0)) - RENEW_BEFORE_S > time.time():
            return str(data["access_token"])
        if not data.get("refresh_token") or float(data.get("refresh_expires_at") or 0) <= time.time() + 5:
            raise SignInError("your sign-in has expired: run `refnet login`")
        status, reply = http_json(data["token_endpoint"], {"grant_type": "refresh_token",
                                                            "client_id": data["client_id"],
                                                            "refresh_token": data["refresh_token"]})
        if status != 200 or not reply.get("access_token"):
            raise SignInError("your sign-in has expired (the identity provider refused to renew it): "
                              "run `refnet login`")
        renewed = _stored(data["issuer"], data["client_id"], data["token_endpoint"], reply)
        if not renewed["refresh_token"]:
            renewed["refresh_token"], renewed["refresh_expires_at"] = data["refresh_token"], data["refresh_expires_at"]
        self.store.save(renewed)
        return str(renewed["access_token"])
