"""What every response of a people-facing app (the ops console, the web front door) carries, and the CSRF
check in front of every state-changing request. Moved here from ops (ops.entrypoints.web_security).

- Security headers on every response: a Content-Security-Policy that allows only the console's own script,
  styles and images and no framing (`frame-ancestors 'none'`, and X-Frame-Options DENY for older browsers),
  nosniff, no referrer, and `Cache-Control: no-store` on everything but the static files (pages show who is
  signed in and what they may see: no shared cache or back button keeps them).
- CSRF: a request that changes something (any method but GET, HEAD, OPTIONS) and rides on the session cookie
  must carry the session's CSRF token, as the hidden `csrf_token` field of the console's forms or the
  `X-CSRF-Token` header. A request with an `Authorization` header is not cookie-authenticated (no browser adds
  one on its own, and the console answers no CORS preflight), so it needs none: the sign-in gate has verified
  its bearer token before it gets here.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Awaitable, Callable, Sequence
from urllib.parse import parse_qs, urlsplit

from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
CSRF_SESSION_KEY = "csrf"
# A console form is a few fields; anything bigger is not one of them.
MAX_FORM_BYTES = 64 * 1024

Refusal = Callable[[Request, str, int], Awaitable[Response] | Response]


def content_security_policy(form_targets: Sequence[str] = ()) -> str:
    """Only the console's own files; forms post to the console (and sign-out goes on to the identity
    provider: a form's redirect counts as its target); never in a frame."""
    form_action = " ".join(["'self'", *form_targets])
    return ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
            f"object-src 'none'; base-uri 'none'; form-action {form_action}; frame-ancestors 'none'")


def security_headers(form_targets: Sequence[str] = ()) -> dict[str, str]:
    return {
        "Content-Security-Policy": content_security_policy(form_targets),
        "X-Frame-Options": "DENY",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cross-Origin-Opener-Policy": "same-origin",
        "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
    }


class SecurityHeaders:
    """Adds the security headers to every HTTP response; `Cache-Control: no-store` to all but static files."""

    def __init__(self, app: ASGIApp, form_targets: Sequence[str] = (), cacheable_prefix: str = "/static/") -> None:
        self.app = app
        self.headers = security_headers(form_targets)
        self.cacheable_prefix = cacheable_prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        cacheable = scope["path"].startswith(self.cacheable_prefix)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in self.headers.items():
                    headers[name] = value
                if not cacheable:
                    headers["Cache-Control"] = "no-store"
                    headers["Pragma"] = "no-cache"
            await send(message)

        await self.app(scope, receive, send_with_headers)


def new_csrf_token() -> str:
    return secrets.token_urlsafe(32)


def csrf_token_of(headers: Headers, body: bytes) -> str:
    """The token a request carries: the header (scripts), else the form field (the console's forms)."""
    token = headers.get(CSRF_HEADER, "")
    if not token and headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        fields = parse_qs(body.decode("latin-1"), max_num_fields=50)
        token = (fields.get(CSRF_FIELD) or [""])[0]
    return token


def csrf_valid(expected: object, given: str) -> bool:
    """Constant-time comparison; no token in the session means nothing is valid."""
    if not isinstance(expected, str) or not expected or not given:
        return False
    return hmac.compare_digest(expected.encode(), given.encode())


def cross_site(headers: Headers) -> bool:
    """An Origin naming another host. `null` (what a browser sends for a form under Referrer-Policy
    no-referrer, and from sandboxed frames) proves nothing either way: the token decides."""
    origin = headers.get("origin", "")
    if not origin or origin == "null":
        return False
    return urlsplit(origin).netloc != headers.get("host", "")


async def _plain_refusal(request: Request, message: str, status: int) -> Response:
    return PlainTextResponse(message, status_code=status)


class CsrfProtect:
    """Refuses a cookie-authenticated state-changing request without the session's CSRF token (403), before
    any handler runs; the body it read is handed on unchanged."""

    def __init__(self, app: ASGIApp, refuse: Refusal | None = None, max_body: int = MAX_FORM_BYTES) -> None:
        self.app = app
        self.refuse = refuse or _plain_refusal
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in SAFE_METHODS:
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        if "authorization" in headers:  # a bearer token, already verified by the gate: not a cookie's request
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        if cross_site(headers):
            await self._respond(request, "Yêu cầu từ trang khác bị từ chối. / A request from another site is "
                                         "refused.", 403, scope, receive, send)
            return
        body = await _read_body(receive, self.max_body)
        if body is None:
            await self._respond(request, "request too large", 413, scope, receive, send)
            return
        session = scope.get("session") or {}
        if not csrf_valid(session.get(CSRF_SESSION_KEY), csrf_token_of(headers, body)):
            await self._respond(request, "Mã chống giả mạo (CSRF) thiếu hoặc sai: tải lại trang rồi thử lại. / "
                                         "Missing or wrong CSRF token: reload the page and try again.", 403,
                                scope, receive, send)
            return
        await self.app(scope, _replay(body, receive), send)

    async def _respond(self, request: Request, message: str, status: int, scope: Scope, receive: Receive,
                       send: Send) -> None:
        response = self.refuse(request, message, status)
        if not isinstance(response, Response):
            response = await response
        await response(scope, receive, send)


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":  # the client went away
            return b""
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # then whatever comes next (the disconnect)

    return replayed
