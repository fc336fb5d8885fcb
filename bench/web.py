"""The web phase of `make bench`: the front door (services/web) at N concurrent operators (default 20).

1. Sign in: each simulated operator is a real session. An HTTP client with its own cookie jar asks the web app
   for /cases, follows the redirects to the identity provider's sign-in page (the real Keycloak of the run),
   posts that form as a person would, and follows the redirects back (code flow with PKCE, done by the app);
   the web's session cookie is then that operator's. Realm users alternate (national-111-operator,
   qn-operator): one person may hold many sessions.
2. Each operator opens a case of their own (RegisterCase over gRPC as that person: three needs, so three
   referrals to providers) and keeps its page open: the page's live stream (server-sent events,
   `/cases/<id>/events`) is read for the whole phase, reconnecting as a browser's EventSource does.
3. Pages: every operator fetches a page every `interval` seconds, `/cases` and `/cases/<id>` in turn, on an
   open-loop schedule (each fetch is due at its time whatever is still in flight, and its latency counts from
   then, so a slow server or a late load generator shows as latency). p50 / p95 / p99 per page and overall.
4. Live updates: meanwhile, one referral at a time (every `commit_interval` s) is accepted, then started, by
   its provider over gRPC (the agency machine, mutual TLS). Measured from the moment the api answered (the
   commit) to the first event on that operator's stream whose referral fingerprint changed ("event seen"),
   and to the referral list fetched again after that event, as the page's script does ("shown").

Pure helpers (the SSE parser, the schedule, the summaries) are unit-tested in tests/unit/bench.
"""

from __future__ import annotations

import asyncio
import html
import http.cookiejar
import json
import re
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc
import httpx2

from bench.load import RECONNECT, case_request
from bench.stack import Stack
from bench.stats import cores_used, cpu_seconds, percentile, summarize
from refnet.intake.v1 import intake_service_pb2_grpc as intake_grpc
from refnet.referral.v1 import referral_service_pb2 as referral_pb
from refnet.referral.v1 import referral_service_pb2_grpc as referral_grpc
from refnet_dev.keycloak import DEV_PASSWORD

# Realm users of the development realm, in turn: each simulated operator signs in as one of them.
PEOPLE = (("national-111-operator", ""), ("qn-operator", "22"))  # (username, the province they must use)
SESSION_COOKIE = "refnet_web_session"
PAGE_TARGET_MS = 300.0  # issue 15: page p95 under 300 ms at 20 concurrent operators
LIVE_TARGET_MS = 1000.0  # issue 15: every hand-off on the operator's screen within a second
LIVE_TIMEOUT_S = 10.0
EVENTS_PATH = "/cases/{case_id}/events"
REFERRALS_PATH = "/cases/{case_id}/referrals"


# -- pure helpers --------------------------------------------------------------------------------------------


def latency_summary(values: Sequence[float]) -> dict[str, float | int | None]:
    """bench.stats.summarize plus the 95th percentile (the web targets are p95)."""
    return {**summarize(values), "p95": percentile(values, 95)}


def schedule(operators: int, interval_s: float, duration_s: float) -> list[tuple[float, int, int]]:
    """(offset s, operator, k): operator i's k-th fetch is due at i * interval / operators + k * interval, so
    the operators' fetches interleave evenly (operators / interval pages per second in all), sorted by time."""
    if operators <= 0 or interval_s <= 0:
        return []
    per_operator = max(1, round(duration_s / interval_s))
    due = [(i * interval_s / operators + k * interval_s, i, k) for i in range(operators) for k in range(per_operator)]
    return sorted(due)


def page_for(k: int, case_id: str) -> str:
    """An operator's k-th page: the workspace and their case's page, in turn."""
    return "/cases" if k % 2 == 0 else f"/cases/{case_id}"


def page_label(path: str) -> str:
    return re.sub(r"^/cases/[^/]+", "/cases/<id>", path)


def sse_events(lines: Iterable[str]) -> Iterator[tuple[str, str]]:
    """Server-sent events from a stream's lines: (event name, data), data lines joined by newlines; comments
    (`: keep-alive`) and `retry:` / `id:` fields skipped; an event without a name is "message"."""
    name = ""
    data: list[str] = []
    for raw in lines:
        line = raw.rstrip("\r\n")
        if not line:
            if data:
                yield name or "message", "\n".join(data)
            name, data = "", []
            continue
        if line.startswith(":"):
            continue
        key, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if key == "event":
            name = value
        elif key == "data":
            data.append(value)


def form_action(body: str, form_id: str) -> str | None:
    """The action of the form with this id (Keycloak's sign-in form is `kc-form-login`), HTML entities undone."""
    found = re.search(rf'<form[^>]*id="{re.escape(form_id)}"[^>]*action="([^"]+)"', body) or \
        re.search(rf'<form[^>]*action="([^"]+)"[^>]*id="{re.escape(form_id)}"', body)
    return html.unescape(found.group(1)) if found else None


def first_change(events: Sequence[tuple[float, str, dict[str, Any]]], since: int, before: str) -> float | None:
    """When the first `referrals` event at or after index `since` carried a fingerprint other than `before`."""
    for at, name, data in events[since:]:
        if name == "referrals" and data.get("referrals") != before:
            return at
    return None


def latest_fingerprint(events: Sequence[tuple[float, str, dict[str, Any]]]) -> str | None:
    return next((d.get("referrals") for _, name, d in reversed(events) if name == "referrals"), None)


def provider_message(body: str) -> str | None:
    """What the identity provider's page says went wrong (Keycloak's feedback or field error), as text."""
    found = re.search(r'(?:id="input-error[^"]*"|class="[^"]*(?:kc-feedback-text|pf-m-danger|alert-error)[^"]*")'
                      r'[^>]*>(.*?)</', body, flags=re.S)
    return html.unescape(re.sub(r"<[^>]+>", "", found.group(1))).strip() if found else None


# -- signing in, as a person at a browser ----------------------------------------------------------------------


class _LocalhostIsSecure(http.cookiejar.DefaultCookiePolicy):
    """As a browser does, http://127.0.0.1 counts as a secure context (Keycloak's cookies are Secure)."""

    def return_ok_secure(self, cookie: http.cookiejar.Cookie, request: urllib.request.Request) -> bool:
        return True


def sign_in(web_url: str, username: str, password: str = DEV_PASSWORD) -> str:
    """A new session of `username` on the web app through the identity provider's sign-in form; returns the
    web's session cookie. Raises RuntimeError when any step does not go as a person's would."""
    jar = http.cookiejar.CookieJar(_LocalhostIsSecure())
    browser = urllib.request.build_opener(urllib.request.ProxyHandler({}), urllib.request.HTTPCookieProcessor(jar))

    def fetch(url: str, form: dict[str, str] | None = None) -> tuple[int, str, str]:
        data = urllib.parse.urlencode(form).encode() if form is not None else None
        try:
            with browser.open(urllib.request.Request(url, data=data), timeout=30) as reply:
                return reply.status, reply.url, reply.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.url, exc.read().decode()

    status, url, body = fetch(f"{web_url}/cases")
    action = form_action(body, "kc-form-login")
    if status != 200 or not action:
        raise RuntimeError(f"{username}: /cases did not lead to the sign-in form ({status} at {url})")
    status, url, body = fetch(urllib.parse.urljoin(url, action), {"username": username, "password": password})
    if status != 200 or not url.startswith(f"{web_url}/cases"):
        raise RuntimeError(f"{username}: signing in ended with {status} at {url.split('?')[0]}: "
                           f"{provider_message(body) or body[:200]!r}")
    cookie = next((c.value for c in jar if c.name == SESSION_COOKIE), None)
    if not cookie:
        raise RuntimeError(f"{username}: signed in, but the web app set no {SESSION_COOKIE} cookie")
    return cookie


# -- the simulated operators ------------------------------------------------------------------------------------


@dataclass
class Operator:
    index: int
    username: str
    province: str
    cookie: str = ""
    client: httpx2.AsyncClient | None = None
    case_id: str = ""
    # (referral id, provider id, status) of the case's referrals, as ListReferrals last said
    referrals: list[tuple[str, str, int]] = field(default_factory=list)
    # What the page's live stream brought: (monotonic time received, event name, data)
    events: list[tuple[float, str, dict[str, Any]]] = field(default_factory=list)
    stream_status: int | None = None
    reconnects: int = 0
    changed: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class Fetch:
    path: str
    late_ms: float
    latency_ms: float | None = None
    error: str = ""


class WebPhase:
    def __init__(self, stack: Stack, operators: int = 20, seconds: float = 30, interval_s: float = 1.0,
                 commit_interval_s: float = 1.0, progress: Any = print) -> None:
        self.stack, self.network = stack, stack.network
        self.n, self.seconds, self.interval_s, self.commit_interval_s = operators, seconds, interval_s, \
            commit_interval_s
        self.progress = progress
        self.operators: list[Operator] = []
        self.channels: dict[tuple[str, str], grpc.aio.Channel] = {}
        self.live_supported = True
        self.notes: list[str] = []

    # -- set-up ----------------------------------------------------------------------------------------------

    def _channel(self, service: str, subject: str, role: str) -> grpc.aio.Channel:
        key = (f"{service}:{subject}", role)
        if key not in self.channels:
            self.channels[key] = grpc.aio.secure_channel(self.network.address(service),
                                                         self.network.credentials(subject, role), options=RECONNECT)
        return self.channels[key]

    async def sign_in_all(self) -> list[float]:
        web_url = self.network.web_url
        took: list[float] = []

        async def one(i: int) -> Operator:
            username, province = PEOPLE[i % len(PEOPLE)]
            started = time.monotonic()
            cookie = await asyncio.to_thread(sign_in, web_url, username)
            took.append((time.monotonic() - started) * 1000)
            client = httpx2.AsyncClient(base_url=web_url, cookies={SESSION_COOKIE: cookie}, trust_env=False,
                                        timeout=httpx2.Timeout(30.0), follow_redirects=False)
            return Operator(i, username, province, cookie, client)

        # A few at a time, as people arriving for a shift do, each person at one browser at a time; every one
        # a session of its own.
        gate = asyncio.Semaphore(4)
        people = {username: asyncio.Lock() for username, _ in PEOPLE}

        async def gated(i: int) -> Operator:
            async with gate, people[PEOPLE[i % len(PEOPLE)][0]]:
                return await one(i)

        self.operators = list(await asyncio.gather(*(gated(i) for i in range(self.n))))
        return took

    async def open_cases(self, run: str) -> None:
        """Each operator registers a case of their own (as themselves) and waits until its three referrals exist."""
        # The gRPC calls carry each person's token from the development front door's cache: fetch it once per
        # person first. Concurrent password grants for one person are refused by Keycloak's brute-force
        # protection ("Invalid user credentials"), as concurrent sign-ins of one person are.
        for username in {op.username for op in self.operators}:
            await asyncio.to_thread(self.stack.keycloak.token, username)

        async def one(op: Operator) -> None:
            n = op.index * 3  # case_request picks the province by n % 3: 0 is Quảng Ninh (22)
            request = case_request(n, run=run)
            request.case_worker_id = op.username
            if op.province:
                request.province_code, request.commune_code = "22", "06673"
            reply = await intake_grpc.IntakeServiceStub(self._channel("intake", op.username, "operator")).RegisterCase(
                request, timeout=30)
            op.case_id = reply.case.case_id
            stub = referral_grpc.ReferralServiceStub(self._channel("referral", op.username, "operator"))
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                listed = await stub.ListReferrals(referral_pb.ListReferralsRequest(case_id=op.case_id), timeout=10)
                op.referrals = [(r.referral_id, r.provider_id, r.status) for r in listed.referrals
                                if r.status == referral_pb.REFERRAL_STATUS_REQUESTED and r.provider_id]
                if len(op.referrals) >= len(request.needs):
                    return
                await asyncio.sleep(0.2)
            raise TimeoutError(f"case {op.case_id} of {op.username}: its referrals did not appear within 60 s")

        await asyncio.gather(*(one(op) for op in self.operators))

    # -- the live stream, as the page's EventSource reads it -----------------------------------------------------

    async def follow(self, op: Operator, stop: asyncio.Event) -> None:
        assert op.client is not None
        path = EVENTS_PATH.format(case_id=op.case_id)
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            try:
                async with op.client.stream("GET", path, headers={"Accept": "text/event-stream"},
                                            timeout=httpx2.Timeout(30.0, read=None)) as reply:
                    op.stream_status = reply.status_code
                    if reply.status_code != 200:
                        return
                    lines: list[str] = []
                    async for line in reply.aiter_lines():
                        lines.append(line)
                        if line:
                            continue
                        for name, data in sse_events(lines):
                            try:
                                parsed = json.loads(data)
                            except ValueError:
                                parsed = {"raw": data}
                            op.events.append((loop.time(), name, parsed))
                            op.changed.set()
                        lines = []
                        if stop.is_set():
                            return
            except (httpx2.HTTPError, OSError) as exc:
                if stop.is_set():
                    return
                self.notes.append(f"{op.username}'s live stream broke: {type(exc).__name__}")
                await asyncio.sleep(1)
            op.reconnects += 1
            await asyncio.sleep(1.0)  # retry: 1000, as the stream asks

    async def wait_streams(self, timeout: float = 30) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(op.stream_status not in (None, 200) for op in self.operators):
                return False
            if all(latest_fingerprint(op.events) for op in self.operators):
                return True
            await asyncio.sleep(0.1)
        return False

    # -- pages ------------------------------------------------------------------------------------------------

    async def fetch(self, op: Operator, path: str, due: float) -> Fetch:
        assert op.client is not None
        loop = asyncio.get_running_loop()
        result = Fetch(page_label(path), (loop.time() - due) * 1000)
        try:
            reply = await op.client.get(path)
            await reply.aread()
            if reply.status_code != 200:
                result.error = f"HTTP {reply.status_code}" + (" (signed out)" if reply.status_code in (302, 303)
                                                              else "")
            else:
                result.latency_ms = (loop.time() - due) * 1000
        except httpx2.HTTPError as exc:
            result.error = type(exc).__name__
        return result

    async def pages(self, duration_s: float, record: bool = True) -> list[Fetch]:
        loop = asyncio.get_running_loop()
        start = loop.time() + 0.05
        tasks: list[asyncio.Task[Fetch]] = []
        for offset, i, k in schedule(len(self.operators), self.interval_s, duration_s):
            due = start + offset
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            op = self.operators[i]
            tasks.append(asyncio.create_task(self.fetch(op, page_for(k, op.case_id), due)))
        done = list(await asyncio.gather(*tasks))
        return done if record else []

    # -- live updates -------------------------------------------------------------------------------------------

    async def live(self, duration_s: float) -> list[dict[str, Any]]:
        """One hand-off at a time, round-robin over the operators' cases: accept (then start) a referral as its
        provider, and time it to the operator's stream and to the re-fetched list."""
        loop = asyncio.get_running_loop()
        steps: list[tuple[Operator, str, str, str]] = []  # (operator, referral, provider, action)
        for action in ("accept", "start"):
            for position in range(3):
                for op in self.operators:
                    if position < len(op.referrals):
                        referral_id, provider_id, _ = op.referrals[position]
                        steps.append((op, referral_id, provider_id, action))
        measured: list[dict[str, Any]] = []
        ends = loop.time() + duration_s
        for op, referral_id, provider_id, action in steps:
            if loop.time() >= ends:
                break
            step_started = loop.time()
            stub = referral_grpc.ReferralServiceStub(self._channel("referral", provider_id, "agency"))
            since = len(op.events)
            before = latest_fingerprint(op.events) or ""
            op.changed.clear()
            sent = loop.time()
            row: dict[str, Any] = {"action": action, "case": op.index}
            try:
                if action == "accept":
                    await stub.AcceptReferral(referral_pb.AcceptReferralRequest(
                        referral_id=referral_id, client_request_id=str(uuid.uuid4())), timeout=10)
                else:
                    await stub.StartService(referral_pb.StartServiceRequest(
                        referral_id=referral_id, client_request_id=str(uuid.uuid4())), timeout=10)
            except grpc.aio.AioRpcError as exc:
                row["error"] = exc.code().name
                measured.append(row)
                continue
            committed = loop.time()
            row["commit_ms"] = (committed - sent) * 1000
            seen = first_change(op.events, since, before)
            while seen is None and loop.time() < committed + LIVE_TIMEOUT_S:
                op.changed.clear()
                try:
                    await asyncio.wait_for(op.changed.wait(), committed + LIVE_TIMEOUT_S - loop.time())
                except TimeoutError:
                    break
                seen = first_change(op.events, since, before)
            if seen is None:
                row["error"] = "no event"
                measured.append(row)
                continue
            row["event_ms"] = (seen - committed) * 1000
            assert op.client is not None
            reply = await op.client.get(REFERRALS_PATH.format(case_id=op.case_id))
            await reply.aread()
            if reply.status_code == 200:
                row["shown_ms"] = (loop.time() - committed) * 1000
            else:
                row["error"] = f"list HTTP {reply.status_code}"
            measured.append(row)
            # Steady: the next hand-off at its time, not as soon as this one is seen.
            await asyncio.sleep(max(0.0, step_started + self.commit_interval_s - loop.time()))
        return measured

    # -- the phase -------------------------------------------------------------------------------------------------

    async def run(self, run_id: str) -> dict[str, Any]:
        self.progress(f"web: signing {self.n} operators in through the identity provider's form")
        sign_in_ms = await self.sign_in_all()
        self.progress(f"web: {self.n} sessions; each operator opens a case (three referrals each)")
        await self.open_cases(run_id)
        stop = asyncio.Event()
        followers = [asyncio.create_task(self.follow(op, stop)) for op in self.operators]
        try:
            if not await self.wait_streams():
                statuses = sorted({str(op.stream_status) for op in self.operators})
                self.live_supported = False
                self.notes.append(f"web live delay not measured: {EVENTS_PATH} answered {', '.join(statuses)} "
                                  "(no live endpoint yet?)")
            self.progress("web: warming up (every page once per operator)")
            await self.pages(min(2 * self.interval_s, self.seconds), record=False)
            self.progress(f"web: {self.n} operators, a page each every {self.interval_s:g} s for {self.seconds:g} s"
                          + (", hand-offs committed meanwhile" if self.live_supported else ""))
            pids = self.stack.pids()
            cpu_before, started = cpu_seconds(pids), time.monotonic()
            page_task = asyncio.create_task(self.pages(self.seconds))
            live = await self.live(self.seconds) if self.live_supported else []
            fetches = await page_task
            cpu = cores_used(cpu_before, cpu_seconds(pids), time.monotonic() - started)
        finally:
            stop.set()
            for task in followers:
                task.cancel()
            await asyncio.gather(*followers, return_exceptions=True)
            for op in self.operators:
                if op.client:
                    await op.client.aclose()
            for channel in self.channels.values():
                await channel.close()
        return self.figures(fetches, live, sign_in_ms, cpu)

    def figures(self, fetches: list[Fetch], live: list[dict[str, Any]], sign_in_ms: list[float],
                cpu: dict[str, float]) -> dict[str, Any]:
        errors: dict[str, int] = {}
        for f in fetches:
            if f.error:
                errors[f.error] = errors.get(f.error, 0) + 1
        by_page: dict[str, list[float]] = {}
        for f in fetches:
            if f.latency_ms is not None:
                by_page.setdefault(f.path, []).append(f.latency_ms)
        ok = [f.latency_ms for f in fetches if f.latency_ms is not None]
        live_errors: dict[str, int] = {}
        for row in live:
            if "error" in row:
                live_errors[row["error"]] = live_errors.get(row["error"], 0) + 1
        return {
            "operators": len(self.operators), "seconds": self.seconds, "interval_s": self.interval_s,
            "people": sorted({op.username for op in self.operators}),
            "sign_in_ms": latency_summary(sign_in_ms),
            "pages": {"all": latency_summary(ok), **{p: latency_summary(v) for p, v in sorted(by_page.items())}},
            "fetches": len(fetches), "errors": errors, "pages_per_s": len(ok) / self.seconds if self.seconds else None,
            "sender_late_ms": latency_summary([f.late_ms for f in fetches]),
            "live": {
                "measured": self.live_supported, "endpoint": EVENTS_PATH, "hand_offs": len(live),
                "commit_ms": latency_summary([r["commit_ms"] for r in live if "commit_ms" in r]),
                "event_ms": latency_summary([r["event_ms"] for r in live if "event_ms" in r]),
                "shown_ms": latency_summary([r["shown_ms"] for r in live if "shown_ms" in r]),
                "errors": live_errors,
                "reconnects": sum(op.reconnects for op in self.operators),
            },
            "cores_used": cpu,
            "notes": self.notes,
        }
