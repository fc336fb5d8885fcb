"""Who is using the console: people sign in through refnet's identity provider; the CLI sends their token.

- In a browser: the OpenID Connect authorization code flow with PKCE (S256), as the confidential client
  `OPS_CONSOLE_OIDC_CLIENT_ID` (Authlib's Starlette client; the provider's metadata from
  `{OIDC_ISSUER}/.well-known/openid-configuration`). The access token that comes back is verified like every
  refnet api verifies one (refnet_platform.identity.TokenVerifier: signature, issuer, audience, expiry) and
  read for the person's user name, role and provinces; then it is dropped. The session cookie (signed,
  HttpOnly, SameSite=Lax; Secure behind https) keeps only those, a CSRF token, when the sign-in happened and
  the ID token (for signing out of the provider). It ends `OPS_CONSOLE_SESSION_MAX_S` after sign-in.
- From the CLI or a script: `Authorization: Bearer <access token>`, verified the same way on every request.
  The cookie is then ignored, so such requests need no CSRF token.
- Only the operations team (role ops) and supervisors may use the console; anyone else who signs in gets a
  403 page saying so, in Vietnamese and English, with a way to sign out.
- Signing out clears the session and ends the person's session at the provider (RP-initiated logout:
  `end_session_endpoint` with `id_token_hint` and `post_logout_redirect_uri`).
- /healthz, /readyz and /metrics (probes, the Prometheus scrape) and the sign-in routes stay open.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import anyio.to_thread
from authlib.integrations.starlette_client import OAuth, OAuthError
from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from ops.config import Settings
from ops.entrypoints.web_security import CSRF_SESSION_KEY, new_csrf_token
from refnet_platform.caller import Caller, Role
from refnet_platform.errors import Unauthenticated
from refnet_platform.identity import OidcConfig, TokenVerifier

log = logging.getLogger(__name__)

CONSOLE_ROLES = frozenset({Role.OPS, Role.SUPERVISOR})
SESSION_COOKIE = "refnet_ops_session"
# Open to anyone: the probes and the Prometheus scrape, the sign-in routes, the CLI's sign-in settings.
OPEN_PATHS = frozenset({"/healthz", "/readyz", "/metrics", "/auth/login", "/auth/callback", "/auth/signed-out",
                        "/auth/cli"})
OPEN_PREFIXES = ("/static/",)
PERSON_KEY, ID_TOKEN_KEY, NEXT_KEY = "person", "id_token", "next"


class SignInNotConfigured(RuntimeError):
    pass


def refused_message(role: str) -> tuple[str, str]:
    """(Vietnamese, English): what a signed-in person whose role may not use the console is told."""
    return (f"Vai trò của bạn ({role}) không được dùng bảng điều khiển vận hành: bảng này chỉ dành cho "
            "đội vận hành (ops) và giám sát viên (supervisor).",
            f"Your role ({role}) cannot use the operations console: it is for the operations team (ops) and "
            "supervisors only.")


def safe_next(target: str | None) -> str:
    """A path on this console to go back to after signing in; anything else (another site) is ignored."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")) or target.startswith("/auth/"):
        return "/"
    return target


def _person_record(caller: Caller) -> dict[str, Any]:
    return {"username": caller.subject_id, "role": str(caller.role), "provinces": sorted(caller.provinces),
            "since": time.time()}


class SignIn:
    """The console's side of the identity provider: the sign-in routes, and who a request is from."""

    def __init__(self, settings: Settings, verifier: TokenVerifier | None = None) -> None:
        if not settings.oidc_issuer or not settings.console_oidc_client_secret:
            raise SignInNotConfigured(
                "people sign in to the operations console through refnet's identity provider: set OIDC_ISSUER "
                f"(e.g. http://127.0.0.1:8180/realms/refnet) and OPS_CONSOLE_OIDC_CLIENT_SECRET (the secret of the "
                f"{settings.console_oidc_client_id!r} client); the console does not run without them")
        self.issuer = settings.oidc_issuer
        self.audience = settings.oidc_audience
        self.client_id = settings.console_oidc_client_id
        self.cli_client_id = settings.console_cli_client_id
        self.max_age_s = settings.console_session_max_s
        self.public_url = (settings.console_public_url or "").rstrip("/")
        self.verifier = verifier or TokenVerifier(OidcConfig(settings.oidc_issuer, settings.oidc_audience,
                                                             settings.oidc_jwks_url, settings.oidc_leeway_s))
        oauth = OAuth()
        self.client: Any = oauth.register(
            "refnet", client_id=settings.console_oidc_client_id, client_secret=settings.console_oidc_client_secret,
            server_metadata_url=f"{self.issuer.rstrip('/')}/.well-known/openid-configuration",
            client_kwargs={"scope": "openid", "code_challenge_method": "S256", "timeout": 10})
        self.env = Environment(loader=PackageLoader("ops", "web/templates"), autoescape=select_autoescape())

    @property
    def issuer_origin(self) -> str:
        parts = urlsplit(self.issuer)
        return f"{parts.scheme}://{parts.netloc}"

    @property
    def secure_cookie(self) -> bool:
        return self.public_url.startswith("https://")

    def base_url(self, request: Request) -> str:
        return self.public_url or str(request.base_url).rstrip("/")

    # Who a request is from.

    def session_person(self, session: dict[str, Any]) -> Caller | None:
        """The signed-in person of a browser session (whatever their role), or None: never signed in, or
        the session is older than the console allows."""
        record = session.get(PERSON_KEY)
        if not isinstance(record, Mapping):
            return None
        if time.time() - float(record.get("since", 0)) > self.max_age_s:
            session.clear()
            return None
        try:
            return Caller(str(record["username"]), Role(record["role"]),
                          provinces=frozenset(str(p) for p in record.get("provinces", [])), person=True)
        except (KeyError, ValueError):
            session.clear()
            return None

    async def bearer_person(self, header: str) -> Caller:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("authorization: expected 'Bearer <access token>'")
        caller: Caller = await anyio.to_thread.run_sync(self.verifier.person, token.strip())
        return caller

    # Pages of the sign-in routes and the gate.

    def page(self, template: str, http_status: int = 200, **context: Any) -> HTMLResponse:
        return HTMLResponse(self.env.get_template(template).render(**context), status_code=http_status)

    def refused(self, request: Request, person: Caller, session: Mapping[str, Any]) -> Response:
        vi, en = refused_message(str(person.role))
        if request.url.path.startswith("/api/"):
            return JSONResponse({"error": f"{en} / {vi}"}, status_code=403)
        return self.page("refused.html", 403, person=person, message_vi=vi, message_en=en,
                         csrf=session.get(CSRF_SESSION_KEY, ""))

    def problem(self, request: Request, message: str, status: int) -> Response:
        """A refused request (sign-in needed, CSRF, sign-in failure): JSON for the API, a page otherwise."""
        if request.url.path.startswith("/api/") or "authorization" in request.headers:
            headers = {"WWW-Authenticate": 'Bearer realm="refnet"'} if status == 401 else None
            return JSONResponse({"error": message}, status_code=status, headers=headers)
        return self.page("problem.html", status, message=message, status=status)

    # The routes.

    async def login(self, request: Request) -> Response:
        session = request.session
        person = self.session_person(session)
        target = safe_next(request.query_params.get("next"))
        if person is not None and person.role in CONSOLE_ROLES:
            return RedirectResponse(target, status_code=303)
        session.clear()
        session[NEXT_KEY] = target
        try:
            callback = f"{self.base_url(request)}/auth/callback"
            response: Response = await self.client.authorize_redirect(request, callback)
        except Exception as exc:  # the provider's metadata could not be fetched
            log.warning("identity provider unreachable", extra={"fields": {"error": str(exc)[:200]}})
            return self.page("problem.html", 503, status=503, message=(
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
            return self.page("problem.html", status, status=status, retry=True,
                             message=f"Đăng nhập không thành công / Sign-in failed: {exc}")
        except Exception as exc:  # the provider could not be reached for the code exchange
            log.warning("sign-in: token exchange failed", extra={"fields": {"error": str(exc)[:200]}})
            session.clear()
            return self.page("problem.html", 503, status=503, retry=True, message=(
                "Không kết nối được với máy chủ đăng nhập / The identity provider cannot be reached just now."))
        target = safe_next(session.get(NEXT_KEY))
        session.clear()  # nothing from before sign-in is carried over
        session[PERSON_KEY] = _person_record(person)
        session[CSRF_SESSION_KEY] = new_csrf_token()
        if token.get("id_token"):
            session[ID_TOKEN_KEY] = str(token["id_token"])
        log.info("signed in", extra={"fields": {"username": person.subject_id, "role": str(person.role)}})
        if person.role not in CONSOLE_ROLES:
            return self.refused(request, person, session)
        return RedirectResponse(target, status_code=303)

    async def logout(self, request: Request) -> Response:
        """Behind the gate and the CSRF check: ends the console's session, then the provider's."""
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
        return self.page("signed_out.html", provider_open=request.query_params.get("provider") == "open")

    async def cli_settings(self, request: Request) -> Response:
        """Where `refnet login` signs in (the device authorization flow of the CLI's own client)."""
        return JSONResponse({"issuer": self.issuer, "client_id": self.cli_client_id, "audience": self.audience})


class SignInGate:
    """Resolves the person behind every request that is not open, before any handler runs, and puts them in
    `request.state.caller`: from a bearer token when the request has one (the cookie is then ignored), else
    from the session. Not signed in: pages go to the sign-in; the API and the page's own refreshes get 401.
    Signed in with another role: 403."""

    def __init__(self, app: ASGIApp, signin: SignIn) -> None:
        self.app = app
        self.signin = signin

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        if path in OPEN_PATHS or path.startswith(OPEN_PREFIXES):
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        response = await self._resolve(request, scope)
        if response is not None:
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)

    async def _resolve(self, request: Request, scope: Scope) -> Response | None:
        headers = Headers(scope=scope)
        state = scope.setdefault("state", {})
        authorization = headers.get("authorization")
        if authorization is not None:
            try:
                person = await self.signin.bearer_person(authorization)
            except Unauthenticated as exc:
                return self.signin.problem(request, str(exc), 401)
            if person.role not in CONSOLE_ROLES:
                return self.signin.refused(request, person, {})
            state["caller"], state["via"] = person, "bearer"
            return None
        session = scope.get("session")
        if session is None:
            raise RuntimeError("SignInGate needs Starlette's SessionMiddleware in front of it")
        person = self.signin.session_person(session)
        if person is None:
            if request.url.path == "/auth/logout":
                return RedirectResponse("/auth/signed-out", status_code=303)
            if (request.url.path.startswith("/api/") or headers.get("x-refresh")
                    or request.method not in ("GET", "HEAD")):
                return self.signin.problem(
                    request, "not signed in: sign in to the console (`refnet login` for the CLI, or REFNET_TOKEN)",
                    401)
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(f"/auth/login?next={quote(target, safe='')}", status_code=303)
        if person.role not in CONSOLE_ROLES and request.url.path != "/auth/logout":
            return self.signin.refused(request, person, session)
        state["caller"], state["via"] = person, "session"
        return None
