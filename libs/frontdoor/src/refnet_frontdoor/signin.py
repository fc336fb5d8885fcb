"""People sign in to a front door (the ops console, the web app) through refnet's identity provider.

- The OpenID Connect authorization code flow with PKCE (S256), as a confidential client (Authlib's Starlette
  client; the provider's metadata from `{issuer}/.well-known/openid-configuration`). The access token that
  comes back is verified like every refnet api verifies one (refnet_platform.identity.TokenVerifier:
  signature, issuer, audience, expiry) and read for the person's user name, role and remit.
- What the session keeps (`request.session`, whatever stores it: a signed cookie for the console,
  refnet_frontdoor.sessions.ServerSessions for the web app): the person (`PERSON_KEY`), a CSRF token
  (`CSRF_SESSION_KEY`), the ID token (`ID_TOKEN_KEY`, for signing out of the provider) and, only when the app
  KEEPS tokens (`SignInConfig.keep_tokens`: the web app, which calls the apis as the person), the access and
  refresh tokens and their expiry (`TOKENS_KEY`). An app that keeps tokens must keep its session server-side:
  never tokens in a cookie (SignIn refuses a cookie session then; see `ServerSessions`).
- The access token is refreshed with the refresh token when it nears expiry (`refresh_margin_s`). When that
  fails, or the session outlived `max_age_s`: a page (GET) goes to the sign-in and comes back; a submitted
  form (POST) of an app that keeps tokens still reaches its handler with `request.state.session_expired` set
  and no token, so the page can keep what was typed (`remember_draft`) and ask the person to sign in again;
  an app without tokens answers 401.
- Routes: /auth/login (?next=/path), /auth/callback, /auth/logout (POST, behind the gate and the CSRF check:
  ends the app's session, then the provider's: RP-initiated logout with `id_token_hint` and
  `post_logout_redirect_uri`), /auth/signed-out. `SignIn.routes()` lists them.
- `SignInGate` puts the person (refnet_platform.caller.Caller) in `request.state.caller` before any handler
  runs; roles not in `allowed_roles` get the bilingual refused page (403) with a way to sign out.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import anyio.to_thread
from authlib.integrations.starlette_client import OAuth, OAuthError
from jinja2 import Environment
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from refnet_frontdoor.security import CSRF_SESSION_KEY, new_csrf_token
from refnet_platform.caller import Caller, Role
from refnet_platform.errors import Unauthenticated
from refnet_platform.identity import OidcConfig, TokenVerifier

log = logging.getLogger(__name__)

# What a session holds (keys of request.session).
PERSON_KEY, ID_TOKEN_KEY, NEXT_KEY, TOKENS_KEY, DRAFTS_KEY = "person", "id_token", "next", "tokens", "drafts"
SIGN_IN_PATHS = frozenset({"/auth/login", "/auth/callback", "/auth/signed-out"})


class SignInNotConfigured(RuntimeError):
    pass


@dataclass(frozen=True)
class SignInPages:
    """The app's own templates for the sign-in's pages, rendered from `env` with these contexts (plus
    `request`): problem (`status`, `message`, `retry`), refused (`person`, `message_vi`, `message_en`, `csrf`),
    signed_out (`provider_open`)."""

    env: Environment
    problem: str = "problem.html"
    refused: str = "refused.html"
    signed_out: str = "signed_out.html"


@dataclass(frozen=True)
class SignInConfig:
    issuer: str
    client_id: str
    client_secret: str
    # Who may use the app; anyone else who signs in gets the refused page (403) saying `refused_message(role)`.
    allowed_roles: frozenset[Role]
    refused_message: Callable[[str], tuple[str, str]]
    pages: SignInPages
    audience: str = "refnet-api"
    jwks_url: str | None = None
    leeway_s: float = 30.0
    # A session ends this long after sign-in, whatever happens in between (a shift).
    max_age_s: float = 8 * 3600
    # Where people reach the app behind a proxy (the callback and post-sign-out addresses; https → Secure).
    public_url: str | None = None
    # Keep the person's access and refresh tokens in the (server-side) session, to call the apis as them.
    keep_tokens: bool = False
    refresh_margin_s: float = 60.0
    # Accept `Authorization: Bearer <access token>` instead of the session (the console's CLI and scripts).
    accept_bearer: bool = False
    # Requests under this prefix get JSON answers (the console's /api/); None: pages only.
    api_prefix: str | None = None
    # Open to anyone, besides the sign-in routes: probes, static files, the language switch...
    open_paths: frozenset[str] = frozenset({"/healthz", "/readyz", "/metrics"})
    open_prefixes: tuple[str, ...] = ("/static/",)
    # What "sign in" is called in the 401 message of a request without a session.
    not_signed_in: str = "not signed in: sign in first"


def safe_next(target: str | None) -> str:
    """A path on this app to go back to after signing in; anything else (another site) is ignored."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")) or target.startswith("/auth/"):
        return "/"
    return target


@dataclass
class SessionTokens:
    """The person's tokens, kept server-side by an app with `keep_tokens` (epoch seconds)."""

    access_token: str
    refresh_token: str
    expires_at: float
    refresh_expires_at: float = 0.0

    @classmethod
    def from_response(cls, token: Mapping[str, Any], now: float) -> SessionTokens:
        expires_at = float(token.get("expires_at") or now + float(token.get("expires_in", 60)))
        refresh_in = float(token.get("refresh_expires_in") or 0)
        return cls(str(token["access_token"]), str(token.get("refresh_token", "")), expires_at,
                   now + refresh_in if refresh_in else 0.0)

    @classmethod
    def of(cls, record: Any) -> SessionTokens | None:
        if not isinstance(record, Mapping):
            return None
        try:
            return cls(str(record["access_token"]), str(record.get("refresh_token", "")),
                       float(record["expires_at"]), float(record.get("refresh_expires_at", 0)))
        except (KeyError, TypeError, ValueError):
            return None

    def record(self) -> dict[str, Any]:
        return {"access_token": self.access_token, "refresh_token": self.refresh_token,
                "expires_at": self.expires_at, "refresh_expires_at": self.refresh_expires_at}


def person_record(caller: Caller, now: float | None = None) -> dict[str, Any]:
    record: dict[str, Any] = {"username": caller.subject_id, "role": str(caller.role),
                              "provinces": sorted(caller.provinces), "since": now or time.time()}
    if caller.organisation_id:
        record["organisation"] = caller.organisation_id
    return record


class SignIn:
    """An app's side of the identity provider: the sign-in routes, and who a request is from."""

    def __init__(self, config: SignInConfig, verifier: TokenVerifier | None = None) -> None:
        if not config.issuer or not config.client_secret:
            raise SignInNotConfigured(
                f"people sign in through refnet's identity provider: set OIDC_ISSUER (e.g. "
                f"http://127.0.0.1:8180/realms/refnet) and the secret of the {config.client_id!r} client")
        self.config = config
        self.issuer = config.issuer
        self.client_id = config.client_id
        self.max_age_s = config.max_age_s
        self.public_url = (config.public_url or "").rstrip("/")
        self.verifier = verifier or TokenVerifier(OidcConfig(config.issuer, config.audience, config.jwks_url,
                                                             config.leeway_s))
        self.env = config.pages.env
        self.client: Any = OAuth().register(
            "refnet", client_id=config.client_id, client_secret=config.client_secret,
            server_metadata_url=f"{self.issuer.rstrip('/')}/.well-known/openid-configuration",
            client_kwargs={"scope": "openid", "code_challenge_method": "S256", "timeout": 10})
        self.clock: Callable[[], float] = time.time

    @property
    def issuer_origin(self) -> str:
        """The provider's origin: the CSP's form-action must allow it (sign-out redirects there)."""
        parts = urlsplit(self.issuer)
        return f"{parts.scheme}://{parts.netloc}"

    @property
    def secure_cookie(self) -> bool:
        return self.public_url.startswith("https://")

    def base_url(self, request: Request) -> str:
        return self.public_url or str(request.base_url).rstrip("/")

    def routes(self) -> list[Route]:
        return [Route("/auth/login", self.login), Route("/auth/callback", self.callback),
                Route("/auth/logout", self.logout, methods=["POST"]), Route("/auth/signed-out", self.signed_out)]

    # Who a request is from.

    def session_state(self, session: MutableMapping[str, Any]) -> tuple[Caller | None, bool]:
        """(the signed-in person of a browser session, whether that session has expired): (None, False) when
        nobody signed in; an unreadable record clears the session."""
        record = session.get(PERSON_KEY)
        if not isinstance(record, Mapping):
            return None, False
        try:
            person = Caller(str(record["username"]), Role(record["role"]),
                            organisation_id=str(record.get("organisation", "")),
                            provinces=frozenset(str(p) for p in record.get("provinces", [])), person=True)
        except (KeyError, ValueError):
            session.clear()
            return None, False
        return person, self.clock() - float(record.get("since", 0)) > self.max_age_s

    def session_person(self, session: MutableMapping[str, Any]) -> Caller | None:
        """The signed-in person of a session still within its time (expired sessions are cleared), or None."""
        person, expired = self.session_state(session)
        if expired:
            session.clear()
            return None
        return person

    async def bearer_person(self, header: str) -> Caller:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("authorization: expected 'Bearer <access token>'")
        caller: Caller = await anyio.to_thread.run_sync(self.verifier.person, token.strip())
        return caller

    async def access_token(self, session: MutableMapping[str, Any]) -> str | None:
        """The person's access token, refreshed with the refresh token when it nears expiry; None when it
        has expired and cannot be refreshed (sign in again). Only for an app that keeps tokens."""
        tokens = SessionTokens.of(session.get(TOKENS_KEY))
        if tokens is None:
            return None
        now = self.clock()
        if tokens.expires_at - now > self.config.refresh_margin_s:
            return tokens.access_token
        renewed = await self.refresh(tokens)
        if renewed is not None:
            session[TOKENS_KEY] = renewed.record()
            return renewed.access_token
        return tokens.access_token if tokens.expires_at - now > 5 else None

    async def refresh(self, tokens: SessionTokens) -> SessionTokens | None:
        if not tokens.refresh_token:
            return None
        try:
            token = await self.client.fetch_access_token(grant_type="refresh_token",
                                                         refresh_token=tokens.refresh_token)
            await anyio.to_thread.run_sync(self.verifier.person, str(token["access_token"]))
        except Exception as exc:  # refused (the provider's session ended), or unreachable: sign in again
            log.info("token refresh failed", extra={"fields": {"error": str(exc)[:200]}})
            return None
        return SessionTokens.from_response(token, self.clock())

    # Pages of the sign-in routes and the gate.

    def page(self, request: Request, template: str, http_status: int = 200, **context: Any) -> HTMLResponse:
        html = self.env.get_template(template).render(request=request, **context)
        return HTMLResponse(html, status_code=http_status)

    def wants_json(self, request: Request) -> bool:
        prefix = self.config.api_prefix
        return bool(prefix and request.url.path.startswith(prefix)) or (
            self.config.accept_bearer and "authorization" in request.headers)

    def refused(self, request: Request, person: Caller, session: Mapping[str, Any]) -> Response:
        vi, en = self.config.refused_message(str(person.role))
        if self.wants_json(request):
            return JSONResponse({"error": f"{en} / {vi}"}, status_code=403)
        return self.page(request, self.config.pages.refused, 403, person=person, message_vi=vi, message_en=en,
                         csrf=session.get(CSRF_SESSION_KEY, ""))

    def problem(self, request: Request, message: str, status: int) -> Response:
        """A refused request (sign-in needed, CSRF, sign-in failure): JSON for an API, a page otherwise."""
        if self.wants_json(request):
            headers = {"WWW-Authenticate": 'Bearer realm="refnet"'} if status == 401 else None
            return JSONResponse({"error": message}, status_code=status, headers=headers)
        return self.page(request, self.config.pages.problem, status, message=message, status=status)

    # The routes.

    async def login(self, request: Request) -> Response:
        session = request.session
        person, expired = self.session_state(session)
        target = safe_next(request.query_params.get("next"))
        if person is not None and not expired and person.role in self.config.allowed_roles and (
                not self.config.keep_tokens or await self.access_token(session)):
            return RedirectResponse(target, status_code=303)
        carried = _carry(session, person)
        session.clear()
        session.update(carried)
        session[NEXT_KEY] = target
        try:
            callback = f"{self.base_url(request)}/auth/callback"
            response: Response = await self.client.authorize_redirect(request, callback)
        except Exception as exc:  # the provider's metadata could not be fetched
            log.warning("identity provider unreachable", extra={"fields": {"error": str(exc)[:200]}})
            return self.page(request, self.config.pages.problem, 503, status=503, message=(
                "Không kết nối được với máy chủ đăng nhập, xin thử lại sau giây lát. / "
                "The identity provider cannot be reached just now: try again in a moment."))
        return response

    async def callback(self, request: Request) -> Response:
        session = request.session
        try:
            token = await self.client.authorize_access_token(request)
            person = await anyio.to_thread.run_sync(self.verifier.person, str(token["access_token"]))
        except (OAuthError, Unauthenticated, KeyError) as exc:
            log.info("sign-in failed", extra={"fields": {"error": str(exc)[:200]}})
            session.clear()
            status = 403 if isinstance(exc, Unauthenticated) else 400
            return self.page(request, self.config.pages.problem, status, status=status, retry=True,
                             message=f"Đăng nhập không thành công / Sign-in failed: {exc}")
        except Exception as exc:  # the provider could not be reached for the code exchange
            log.warning("sign-in: token exchange failed", extra={"fields": {"error": str(exc)[:200]}})
            session.clear()
            return self.page(request, self.config.pages.problem, 503, status=503, retry=True, message=(
                "Không kết nối được với máy chủ đăng nhập / The identity provider cannot be reached just now."))
        target = safe_next(session.get(NEXT_KEY))
        carried = session.get("carry") if isinstance(session.get("carry"), Mapping) else None
        session.clear()  # nothing from before sign-in is carried over (a new session id) but the same person's drafts
        if carried and carried.get("username") == person.subject_id and isinstance(carried.get(DRAFTS_KEY), dict):
            session[DRAFTS_KEY] = carried[DRAFTS_KEY]
        now = self.clock()
        session[PERSON_KEY] = person_record(person, now)
        session[CSRF_SESSION_KEY] = new_csrf_token()
        if token.get("id_token"):
            session[ID_TOKEN_KEY] = str(token["id_token"])
        if self.config.keep_tokens:
            session[TOKENS_KEY] = SessionTokens.from_response(token, now).record()
        log.info("signed in", extra={"fields": {"username": person.subject_id, "role": str(person.role)}})
        if person.role not in self.config.allowed_roles:
            return self.refused(request, person, session)
        return RedirectResponse(target, status_code=303)

    async def logout(self, request: Request) -> Response:
        """Behind the gate and the CSRF check: ends the app's session, then the provider's."""
        session = request.session
        id_token = session.get(ID_TOKEN_KEY)
        session.clear()
        params = {"client_id": self.client_id, "post_logout_redirect_uri": f"{self.base_url(request)}/auth/signed-out"}
        if id_token:
            params["id_token_hint"] = str(id_token)
        try:
            metadata = await self.client.load_server_metadata()
            end_session = metadata.get("end_session_endpoint")
        except Exception as exc:
            log.warning("sign-out: identity provider unreachable", extra={"fields": {"error": str(exc)[:200]}})
            end_session = None
        if not end_session:
            return RedirectResponse("/auth/signed-out?provider=open", status_code=303)
        return RedirectResponse(f"{end_session}?{urlencode(params)}", status_code=303)

    async def signed_out(self, request: Request) -> Response:
        return self.page(request, self.config.pages.signed_out,
                         provider_open=request.query_params.get("provider") == "open")


def _carry(session: Mapping[str, Any], person: Caller | None) -> dict[str, Any]:
    """What survives a sign-in: the same person's unsent forms (drafts), nothing else."""
    drafts = session.get(DRAFTS_KEY)
    if person is None or not isinstance(drafts, dict) or not drafts:
        previous = session.get("carry")
        return {"carry": previous} if isinstance(previous, Mapping) else {}
    return {"carry": {"username": person.subject_id, DRAFTS_KEY: drafts}}


class SignInGate:
    """Resolves the person behind every request that is not open, before any handler runs. Sets
    `request.state.caller` (Caller), `.via` ("session" or "bearer"), `.access_token` (str, or None: an app
    that keeps no tokens, or an expired session's form) and `.session_expired` (bool). Not signed in: pages go
    to the sign-in; others get 401. Signed in with a role not allowed: 403 (the refused page)."""

    def __init__(self, app: ASGIApp, signin: SignIn) -> None:
        self.app = app
        self.signin = signin
        config = signin.config
        self.open_paths = config.open_paths | SIGN_IN_PATHS
        self.open_prefixes = config.open_prefixes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        if path in self.open_paths or path.startswith(self.open_prefixes):
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        response = await self._resolve(request, scope)
        if response is not None:
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)

    async def _resolve(self, request: Request, scope: Scope) -> Response | None:
        signin, config = self.signin, self.signin.config
        headers = Headers(scope=scope)
        state = scope.setdefault("state", {})
        state["access_token"], state["session_expired"] = None, False
        authorization = headers.get("authorization")
        if authorization is not None and not config.accept_bearer:
            # The CSRF check lets requests with an Authorization header through: here none may ride on the cookie.
            return signin.problem(request, "this app takes no bearer tokens: sign in in the browser", 401)
        if authorization is not None:
            try:
                bearer_caller = await signin.bearer_person(authorization)
            except Unauthenticated as exc:
                return signin.problem(request, str(exc), 401)
            if bearer_caller.role not in config.allowed_roles:
                return signin.refused(request, bearer_caller, {})
            state["caller"], state["via"] = bearer_caller, "bearer"
            state["access_token"] = authorization.partition(" ")[2].strip()
            return None
        session = scope.get("session")
        if session is None:
            raise RuntimeError("SignInGate needs a session middleware (SessionMiddleware, ServerSessions) in front")
        person, expired = signin.session_state(session)
        token: str | None = None
        if person is not None and not expired and config.keep_tokens:
            token = await signin.access_token(session)
            expired = token is None
        page_request = request.method in ("GET", "HEAD") and not headers.get("x-refresh")
        if person is not None and expired and config.keep_tokens and not page_request \
                and request.url.path != "/auth/logout":
            # A submitted form outlived the session: its handler keeps what was typed (no token: no power).
            state["caller"], state["via"], state["session_expired"] = person, "session", True
            return None
        if person is not None and expired:
            carried = _carry(session, person)
            session.clear()
            session.update(carried)
            person = None
        if person is None:
            if request.url.path == "/auth/logout":
                return RedirectResponse("/auth/signed-out", status_code=303)
            if (config.api_prefix and request.url.path.startswith(config.api_prefix)) or not page_request:
                return signin.problem(request, config.not_signed_in, 401)
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(f"/auth/login?next={quote(target, safe='')}", status_code=303)
        if person.role not in config.allowed_roles and request.url.path != "/auth/logout":
            return signin.refused(request, person, session)
        state["caller"], state["via"], state["access_token"] = person, "session", token
        return None


def remember_draft(session: MutableMapping[str, Any], path: str, fields: Mapping[str, str]) -> None:
    drafts = dict(session.get(DRAFTS_KEY) or {})
    drafts[path] = {k: str(v) for k, v in fields.items() if k != "csrf_token"}
    session[DRAFTS_KEY] = drafts


def take_draft(session: MutableMapping[str, Any], path: str) -> dict[str, str] | None:
    drafts = session.get(DRAFTS_KEY)
    if not isinstance(drafts, dict) or path not in drafts:
        return None
    rest = {k: v for k, v in drafts.items() if k != path}
    if rest:
        session[DRAFTS_KEY] = rest
    else:
        session.pop(DRAFTS_KEY, None)
    fields = drafts[path]
    return {str(k): str(v) for k, v in fields.items()} if isinstance(fields, dict) else None
