"""ops-console: the operations console (a web page that refreshes itself) and the JSON API the refnet CLI uses.

Pages: / (processes, throughput, lag, outbox, provinces, beds), /referrals (overdue, stuck, escalations),
/dlq (dead letters, replay), /trace (one case's hops across services), /report (indicators, CSV, chart).
It shows ids, codes, counts and times only: ops holds no personal data, so there is none to show.
It serves its own /metrics (with beds free and overdue referrals per province), /healthz and /readyz.

People sign in through refnet's identity provider (signin.py); only the operations team and supervisors may
use it, each within their provinces: every figure, list and report is narrowed to the provinces the signed-in
person covers (the national line and the operations team: all). Every replay is audited as that person.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import sys
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import uvicorn
from jinja2 import Environment, PackageLoader, select_autoescape
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from sqlalchemy import Engine
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

import refnet_geo as geo
from ops.adapters import charts
from ops.adapters.kafka import KafkaInspector
from ops.adapters.scrape import Scraper
from ops.bootstrap import bootstrap
from ops.config import MIGRATIONS, Settings
from ops.domain import commands
from ops.entrypoints.console_report import Reports
from ops.entrypoints.console_views import ago, jsonable, parse_province, province_names, remit, sparkline
from ops.entrypoints.ops_metrics import OpsMetrics
from ops.entrypoints.signin import SESSION_COOKIE, SignIn, SignInGate, SignInNotConfigured
from refnet_frontdoor.security import CSRF_SESSION_KEY, CsrfProtect, SecurityHeaders
from refnet_platform.bus import MessageBus
from refnet_platform.caller import Caller, Role
from refnet_platform.errors import (
    AlreadyExists,
    DomainError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
)
from refnet_platform.health_http import database_check, kafka_check
from refnet_platform.runtime import migrate_only_requested, open_database
from refnet_platform.telemetry import setup_logging
from refnet_platform.topics import TOPICS

log = logging.getLogger(__name__)
WEB = Path(__file__).resolve().parent.parent / "web"


class Snapshot:
    """What the broker said last: refreshed in the background, so a slow or absent Kafka never holds up a page."""

    def __init__(self, fetch: Callable[[], Any]) -> None:
        self.fetch = fetch
        self._value: Any = None
        self._error = "not asked yet"

    def refresh(self) -> None:
        try:
            self._value, self._error = self.fetch(), ""
        except Exception as exc:  # shown on the page: the console must work when Kafka does not
            self._error = f"{type(exc).__name__}: {exc}"[:300]

    def get(self) -> tuple[Any, str]:
        return self._value, self._error

    def get_now(self) -> tuple[Any, str]:
        """For the API: asks the broker itself when the background has no answer yet."""
        if self._value is None:
            self.refresh()
        return self.get()


class Console:
    def __init__(self, settings: Settings, bus: MessageBus, engine: Engine, inspector: KafkaInspector,
                 scraper: Scraper) -> None:
        self.settings = settings
        self.bus = bus
        self.engine = engine
        self.scraper = scraper
        self.lag = Snapshot(inspector.lag)
        self.topics = Snapshot(inspector.topics)
        self.names = province_names()
        self.checks = {"database": database_check(engine), "kafka": kafka_check(settings.kafka_bootstrap_servers)}
        self.env = Environment(loader=PackageLoader("ops", "web/templates"), autoescape=select_autoescape())
        self.env.globals.update(names=self.names, refresh_s=settings.refresh_s)
        self.env.filters["when"] = lambda d: d.astimezone(geo.VIETNAM_TZ).strftime("%Y-%m-%d %H:%M:%S") if d else ""
        self.env.filters["ago"] = ago
        self.env.filters["when_ns"] = lambda ns: self.env.filters["when"](datetime.fromtimestamp(ns / 1e9, UTC))
        self.reports = Reports(self)

    # Who asks, and within what remit.

    @staticmethod
    def caller(request: Request) -> Caller:
        """The signed-in person, resolved by the sign-in gate before any handler runs."""
        caller = getattr(request.state, "caller", None)
        if not isinstance(caller, Caller):  # never serve a page nobody signed in for
            raise RuntimeError("the sign-in gate did not run before this handler")
        return caller

    def province(self, caller: Caller, code: str | None) -> str:
        """The province a view is narrowed to ("" for all the person may see). A province outside their
        remit is refused exactly like one that does not exist."""
        code = (code or "").strip()
        if code in ("", "all", "national"):
            return ""
        if caller.national:
            return parse_province(code, self.names)
        if code not in self.names or not caller.covers(code):
            raise InvalidArgument("province", f"{code!r} is not one of your provinces")
        return code

    def choices(self, caller: Caller) -> list[tuple[str, str]]:
        """The provinces a person may pick in the filters, by name."""
        return sorted(((c, n) for c, n in self.names.items() if caller.covers(c)), key=lambda kv: kv[1])

    # Pages.

    def page(self, request: Request, template: str, **context: Any) -> HTMLResponse:
        caller = self.caller(request)
        html = self.env.get_template(template).render(
            request=request, path=request.url.path, query=dict(request.query_params), now=datetime.now(UTC),
            me=caller, csrf=request.session.get(CSRF_SESSION_KEY, ""), province_choices=self.choices(caller),
            can_replay=caller.role is Role.OPS, **context)
        return HTMLResponse(html)

    def overview(self, request: Request) -> HTMLResponse:
        caller = self.caller(request)
        return self.page(request, "overview.html", **self.status(
            caller, self.province(caller, request.query_params.get("province")),
            request.query_params.get("service", "")))

    def referrals(self, request: Request) -> HTMLResponse:
        caller = self.caller(request)
        province = self.province(caller, request.query_params.get("province"))
        return self.page(request, "referrals.html", province=province,
                         overdue=self.bus.handle(commands.ListOverdue(province, within=remit(caller))),
                         escalations=self.bus.handle(commands.ListEscalations(province, within=remit(caller))))

    def dead_letters(self, request: Request) -> HTMLResponse:
        caller = self.caller(request)
        consumer = request.query_params.get("consumer", "")
        letters = self.bus.handle(commands.ListDeadLetters(consumer, within=remit(caller)))
        consumers = sorted({t.name.split(".", 1)[0] + "-worker" for t in TOPICS if t.dead_letter})
        return self.page(request, "dlq.html", letters=letters, consumer=consumer, consumers=consumers,
                         flash=request.query_params.get("flash", ""), flash_kind=request.query_params.get("kind", ""))

    def replay(self, caller: Caller, letter_id: int) -> dict[str, Any]:
        """Replays are the operations team's, and audited as the signed-in person: nobody else's name."""
        if caller.role is not Role.OPS:
            raise PermissionDenied(f"only the operations team replays dead letters, not the {caller.role} role")
        result: dict[str, Any] = self.bus.handle(commands.ReplayDeadLetter(letter_id, caller.subject_id,
                                                                           within=remit(caller)))
        log.info("dead letter replayed", extra={"fields": {"letter_id": letter_id, "actor": caller.subject_id}})
        return result

    def replay_form(self, request: Request) -> Response:
        # Behind the sign-in gate and the CSRF check: only the console's own form, in the person's session.
        letter_id = int(request.path_params["letter_id"])
        try:
            result = self.replay(self.caller(request), letter_id)
            flash, kind = (f"Replayed dead letter {letter_id} to {result['topic']} "
                           f"(offset {result['offset']}).", "ok")
        except DomainError as exc:
            flash, kind = str(exc), "refused"
        return RedirectResponse(f"/dlq?flash={quote(flash, safe='')}&kind={kind}#letter-{letter_id}", status_code=303)

    def trace(self, request: Request) -> HTMLResponse:
        caller = self.caller(request)
        subject = request.query_params.get("id", "").strip()
        include_db = request.query_params.get("db") == "1"
        traces, problem = [], ""
        if subject:
            try:
                traces = self.bus.handle(commands.GetTrace(subject, include_db, within=remit(caller)))
            except NotFound as exc:
                problem = str(exc)
        charts_svg = [charts.waterfall([(h.span.service, h.label, h.start_ms, h.duration_ms) for h in t.hops],
                                       f"trace {t.trace_id} · {t.duration_ms:.0f} ms · {len(t.services)} services")
                      for t in traces]
        services = sorted({s for t in traces for s in t.services})
        return self.page(request, "trace.html", subject=subject, traces=list(zip(traces, charts_svg, strict=True)),
                         problem=problem, include_db=include_db, services=services)

    # What the overview and `refnet status` show.

    def status(self, caller: Caller, province: str = "", service: str = "") -> dict[str, Any]:
        within = remit(caller)
        views = [v for v in self.scraper.views() if not service or v.service == service]
        lag, lag_error = self.lag.get()
        lag = lag or []
        now = datetime.now(UTC)
        flows = self.bus.handle(commands.Throughput(now - timedelta(minutes=60), province, within))
        if service:
            flows = {k: v for k, v in flows.items() if k == service}
        labels = [m.astimezone(geo.VIETNAM_TZ).strftime("%H:%M") for m, _ in next(iter(flows.values()), [])]
        throughput_svg = charts.line_chart({k: [float(n) for _, n in v] for k, v in flows.items()}, labels,
                                           "events per minute, last hour, by producing service"
                                           + (f" · province {province}" if province else ""))
        groups: dict[str, dict[str, int]] = {}
        for row in lag:
            g = groups.setdefault(row.group, {"lag": 0, "partitions": 0, "members": row.members})
            g["lag"] += row.lag
            g["partitions"] += 1
        lag_svg = charts.bar_chart([(g, float(v["lag"])) for g, v in sorted(groups.items())],
                                   "consumer lag by group (records)")
        provinces = self.bus.handle(commands.ProvinceSummary(now - timedelta(hours=24), within=within))
        beds = self.bus.handle(commands.BedsFree(within))
        beds_svg = charts.bar_chart([(self.names.get(p, p), float(n)) for p, n in sorted(beds.items())],
                                    "shelter beds free by province")
        pending = self.bus.handle(commands.PendingDeadLetters(within))
        overdue = self.bus.handle(commands.ListOverdue(province, within=within))
        return {
            "province": province, "service": service, "processes": views, "lag": lag, "lag_error": lag_error,
            "groups": groups, "throughput_svg": throughput_svg, "lag_svg": lag_svg, "beds_svg": beds_svg,
            "provinces": provinces, "overdue_count": len(overdue), "dead_letters_pending": sum(pending.values()),
            "events_last_5_min": sum(n for series in flows.values() for _, n in series[-5:]),
            "services": sorted({v.service for v in self.scraper.views()}),
            "ready_count": sum(1 for v in views if v.state == "ready"),
            "backlog": sum(v.values.get("backlog", 0) for v in views),
            "total_lag": sum(row.lag for row in lag),
            "sparklines": {v.name: sparkline(v) for v in views},
        }

    # JSON API for the refnet CLI and scripts (a bearer token, or the page's own session and CSRF header).

    def api_whoami(self, request: Request) -> JSONResponse:
        caller = self.caller(request)
        return JSONResponse({"username": caller.subject_id, "role": str(caller.role),
                             "provinces": sorted(caller.provinces), "national": caller.national,
                             "via": request.state.via})

    def api_status(self, request: Request) -> JSONResponse:
        caller = self.caller(request)
        status = self.status(caller, self.province(caller, request.query_params.get("province")),
                             request.query_params.get("service", ""))
        processes = [{"name": v.name, "state": v.state, "alive": v.alive, "ready": v.ready, "checks": v.checks,
                      "error": v.error, "rates": v.rates, "values": v.values} for v in status["processes"]]
        return JSONResponse(jsonable({
            "processes": processes, "provinces": status["provinces"], "groups": status["groups"],
            "lag_error": status["lag_error"], "overdue": status["overdue_count"],
            "dead_letters_pending": status["dead_letters_pending"],
            "events_last_5_min": status["events_last_5_min"]}))

    def api_topics(self, request: Request) -> JSONResponse:
        topics, error = self.topics.get_now()
        if error and topics is None:
            return JSONResponse({"error": error}, status_code=503)
        return JSONResponse(jsonable({"topics": topics}))

    def api_lag(self, request: Request) -> JSONResponse:
        lag, error = self.lag.get_now()
        if error and lag is None:
            return JSONResponse({"error": error}, status_code=503)
        group = request.query_params.get("group", "")
        rows = [dict(asdict(r), lag=r.lag) for r in lag if not group or r.group == group]
        return JSONResponse({"lag": rows})

    def api_dlq(self, request: Request) -> JSONResponse:
        letters = self.bus.handle(commands.ListDeadLetters(request.query_params.get("consumer", ""),
                                                           request.query_params.get("all", "1") != "0",
                                                           within=remit(self.caller(request))))
        return JSONResponse(jsonable({"dead_letters": letters}))

    def api_replay(self, request: Request) -> JSONResponse:
        letter_id = int(request.path_params["letter_id"])
        try:
            return JSONResponse({"replayed": True, **self.replay(self.caller(request), letter_id)})
        except DomainError as exc:
            status = {AlreadyExists: 409, NotFound: 404, FailedPrecondition: 412, PermissionDenied: 403}.get(
                type(exc), 400)
            return JSONResponse({"replayed": False, "letter_id": letter_id, "reason": str(exc)}, status_code=status)

    def api_trace(self, request: Request) -> JSONResponse:
        try:
            traces = self.bus.handle(commands.GetTrace(request.path_params["subject"],
                                                       request.query_params.get("db") == "1",
                                                       within=remit(self.caller(request))))
        except NotFound as exc:
            return JSONResponse({"error": str(exc)}, status_code=404)
        return JSONResponse(jsonable({"traces": [{
            "trace_id": t.trace_id, "duration_ms": t.duration_ms, "services": t.services,
            "hidden_database_spans": t.hidden_database_spans,
            "started_at": datetime.fromtimestamp(t.started_at_ns / 1e9, UTC),
            "hops": [{"service": h.span.service, "name": h.span.name, "kind": h.span.kind, "start_ms": h.start_ms,
                      "duration_ms": h.duration_ms, "status": h.span.status, "span_id": h.span.span_id,
                      "parent_span_id": h.span.parent_span_id, "attributes": h.span.attributes}
                     for h in t.hops]} for t in traces]}))

    def api_overdue(self, request: Request) -> JSONResponse:
        caller = self.caller(request)
        items = self.bus.handle(commands.ListOverdue(self.province(caller, request.query_params.get("province")),
                                                     within=remit(caller)))
        return JSONResponse(jsonable({"overdue": items}))

    # The console's own side door (open: probes and the Prometheus scrape).

    def metrics(self, request: Request) -> Response:
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    def healthz(self, request: Request) -> JSONResponse:
        return JSONResponse({"alive": True, "reason": "ok"})

    def readyz(self, request: Request) -> JSONResponse:
        results = {}
        for name, check in self.checks.items():
            try:
                check()
                results[name] = "ok"
            except Exception as exc:
                results[name] = f"{type(exc).__name__}: {str(exc)[:200]}"
        ready = all(v == "ok" for v in results.values())
        return JSONResponse({"ready": ready, "checks": results}, status_code=200 if ready else 503)


def session_secret(settings: Settings) -> str:
    """The key that signs the session cookie: the configured one, else a random one for this process."""
    if settings.console_session_secret:
        return settings.console_session_secret
    return secrets.token_urlsafe(48)


def create_app(settings: Settings, bus: MessageBus, engine: Engine, inspector: KafkaInspector,
               scraper: Scraper, signin: SignIn | None = None) -> Starlette:
    """The console behind its sign-in: raises SignInNotConfigured when no identity provider is set."""
    signin = signin or SignIn(settings)
    console = Console(settings, bus, engine, inspector, scraper)
    figures = OpsMetrics(bus)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        stopping = threading.Event()

        def sample_forever() -> None:
            while not stopping.is_set():
                try:
                    scraper.scrape_once()
                except Exception:
                    log.exception("sampling the processes failed")
                console.lag.refresh()
                console.topics.refresh()
                stopping.wait(settings.scrape_interval_s)

        sampler = threading.Thread(target=sample_forever, name="scraper", daemon=True)
        sampler.start()
        REGISTRY.register(figures)
        try:
            yield
        finally:
            stopping.set()
            sampler.join(timeout=5)
            scraper.close()
            inspector.close()
            REGISTRY.unregister(figures)

    routes = [
        Route("/", console.overview),
        Route("/referrals", console.referrals),
        Route("/dlq", console.dead_letters),
        Route("/dlq/{letter_id:int}/replay", console.replay_form, methods=["POST"]),
        Route("/trace", console.trace),
        Route("/report", console.reports.page),
        Route("/report.csv", console.reports.csv),
        Route("/report.svg", console.reports.svg),
        Route("/report.xlsx", console.reports.xlsx),
        Route("/api/whoami", console.api_whoami),
        Route("/api/status", console.api_status),
        Route("/api/topics", console.api_topics),
        Route("/api/lag", console.api_lag),
        Route("/api/dlq", console.api_dlq),
        Route("/api/dlq/{letter_id:int}/replay", console.api_replay, methods=["POST"]),
        Route("/api/trace/{subject}", console.api_trace),
        Route("/api/report", console.reports.api),
        Route("/api/report/ids", console.reports.api_ids),
        Route("/api/overdue", console.api_overdue),
        *signin.routes(),
        Route("/auth/cli", signin.cli_settings),
        Route("/metrics", console.metrics),
        Route("/healthz", console.healthz),
        Route("/readyz", console.readyz),
        Mount("/static", StaticFiles(directory=WEB / "static"), name="static"),
    ]

    async def invalid(request: Request, exc: Exception) -> Response:
        if request.url.path.startswith("/api/"):
            return JSONResponse({"error": str(exc)}, status_code=400)
        return PlainTextResponse(str(exc), status_code=400)

    middleware = [
        # Outermost first: headers on every answer, even a refusal; the session before the gate reads it;
        # the CSRF check after the gate, which has told a bearer token's request from a cookie's.
        Middleware(SecurityHeaders, form_targets=[signin.issuer_origin]),
        Middleware(SessionMiddleware, secret_key=session_secret(settings), session_cookie=SESSION_COOKIE,
                   max_age=int(settings.console_session_max_s), same_site="lax", https_only=signin.secure_cookie),
        Middleware(SignInGate, signin=signin),
        Middleware(CsrfProtect, refuse=signin.problem),
    ]
    return Starlette(routes=routes, lifespan=lifespan, middleware=middleware,
                     exception_handlers={InvalidArgument: invalid})


def main() -> None:
    # Kubernetes runs the migration as a Job before any pod of a release starts (deploy/k8s/apply.sh).
    migrate_only = migrate_only_requested("refnet operations console")
    settings = Settings()
    setup_logging("ops-console", settings.log_level)
    engine = open_database(settings, MIGRATIONS)
    if migrate_only:
        log.info("migrations applied")
        return
    try:
        signin = SignIn(settings)
    except SignInNotConfigured as exc:
        log.error("console not started: %s", exc)
        print(f"ops-console: {exc}", file=sys.stderr)
        sys.exit(2)
    bus = bootstrap(settings, engine)
    app = create_app(settings, bus, engine, KafkaInspector(settings.kafka_bootstrap_servers),
                     Scraper(settings.target_urls(), keep=settings.scrape_history), signin)
    log.info("console listening", extra={"fields": {"host": settings.console_host, "port": settings.console_port,
                                                    "issuer": settings.oidc_issuer}})
    uvicorn.run(app, host=settings.console_host, port=settings.console_port, log_level="warning",
                access_log=False, timeout_graceful_shutdown=3)
