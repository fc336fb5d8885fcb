"""`web`: the web front door (operator workspace, partner portal, shelter page) on WEB_HOST:WEB_PORT.

Middleware, outermost first: security headers on every answer (CSP without inline script, frame-ancestors
'none'); server-side sessions (the cookie carries only the signed session id); the sign-in gate (the person in
request.state.caller, their token in request.state.access_token); the CSRF check on every POST. Open:
/healthz, /readyz, /metrics, /static/, /lang and the sign-in routes.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from sqlalchemy import Engine
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from refnet_frontdoor.security import CsrfProtect, SecurityHeaders
from refnet_frontdoor.sessions import ServerSessions, SessionStore
from refnet_frontdoor.signin import SignInGate, SignInNotConfigured
from refnet_platform.health_http import database_check
from refnet_platform.runtime import migrate_only_requested, open_database
from refnet_platform.telemetry import setup_logging
from web.adapters.sessions import SqlSessionStore
from web.bootstrap import SESSION_COOKIE, bootstrap
from web.config import MIGRATIONS, Settings
from web.entrypoints.pages import casework, home, operator, partner, shelter
from web.entrypoints.pages.common import AppContext

log = logging.getLogger(__name__)
STATIC = Path(__file__).resolve().parent.parent / "static"


def session_secret(settings: Settings) -> str:
    return settings.session_secret or secrets.token_urlsafe(48)


def create_app(ctx: AppContext, store: SessionStore, engine: Engine | None = None) -> Starlette:
    checks = {"database": database_check(engine)} if engine is not None else {}

    async def healthz(request: Request) -> Response:
        return JSONResponse({"alive": True, "reason": "ok"})

    async def readyz(request: Request) -> Response:
        results = {}
        for name, check in checks.items():
            try:
                check()
                results[name] = "ok"
            except Exception as exc:
                results[name] = f"{type(exc).__name__}: {str(exc)[:200]}"
        ready = all(v == "ok" for v in results.values())
        return JSONResponse({"ready": ready, "checks": results}, status_code=200 if ready else 503)

    async def metrics(request: Request) -> Response:
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await ctx.apis.close()

    routes: list[BaseRoute] = [
        *home.routes(ctx), *operator.routes(ctx), *casework.routes(ctx), *partner.routes(ctx),
        *shelter.routes(ctx),
        *ctx.signin.routes(),
        Route("/healthz", healthz), Route("/readyz", readyz), Route("/metrics", metrics),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    signin = ctx.signin
    middleware = [
        Middleware(SecurityHeaders, form_targets=[signin.issuer_origin]),
        Middleware(ServerSessions, store=store, secret_key=session_secret(ctx.settings), cookie_name=SESSION_COOKIE,
                   max_age_s=ctx.settings.session_max_s, https_only=signin.secure_cookie),
        Middleware(SignInGate, signin=signin),
        Middleware(CsrfProtect, refuse=signin.problem),
    ]
    return Starlette(routes=routes, middleware=middleware, lifespan=lifespan)


def main() -> None:
    migrate_only = migrate_only_requested("refnet web front door")
    settings = Settings()
    setup_logging("web", settings.log_level)
    engine = open_database(settings, MIGRATIONS)
    if migrate_only:
        log.info("migrations applied")
        return
    try:
        ctx = bootstrap(settings)
    except SignInNotConfigured as exc:
        log.error("web not started: %s", exc)
        print(f"web: {exc}", file=sys.stderr)
        sys.exit(2)
    app = create_app(ctx, SqlSessionStore(engine), engine)
    log.info("web listening", extra={"fields": {"host": settings.host, "port": settings.port,
                                                "issuer": settings.oidc_issuer}})
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="warning", access_log=False,
                timeout_graceful_shutdown=3)
