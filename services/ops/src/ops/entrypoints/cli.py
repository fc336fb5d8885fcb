"""refnet: the operations console's tasks from a terminal, as the person signed in.

    refnet login [--issuer URL]            sign in through the identity provider (device flow: a code to enter
                                           in a browser); the token is kept in ~/.config/refnet/token (0600)
    refnet logout                          forget the token (and end it at the identity provider)
    refnet whoami                          who the console takes you for: name, role, provinces
    refnet status                          every process: alive, ready, rates, lag, outbox (exit 1 if any is not ready)
    refnet topics                          the registry's topics with partitions and records written
    refnet lag [--group G] [--lagging]     consumer lag per group and partition
    refnet dlq list [--consumer C] [--pending]
    refnet dlq replay ID [ID ...] | --pending [--consumer C]    replay dead letters, once each (audited)
    refnet trace CASE_OR_REFERRAL_ID [--db]
    refnet report [--line 18001769 | --place 22 | --province 22[,42,...] [--by line|place]] [--from YYYY-MM-DD]
                  [--to YYYY-MM-DD] [--csv FILE|-] [--xlsx FILE] [--svg FILE] [--ids INDICATOR[:DIMENSION=VALUE]]
    refnet import FILE.xlsx|FILE.csv [--dry-run] [--source NAME]    past call logs and cases, through intake
    refnet import --columns | --template FILE.xlsx   the column set (English and Vietnamese); a log to fill in

Tables for people; --json for scripts. It talks to ops-console's API at $REFNET_CONSOLE_URL
(default http://127.0.0.1:8480), every request carrying the person's access token: $REFNET_TOKEN when set
(a token got elsewhere, for scripts), else the one `refnet login` stored (renewed with its refresh token as
it nears expiry). Replays are audited as that person. Running the network itself is `refnet-dev run` /
`refnet-dev demo`.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, TextIO

import grpc

from ops.adapters.history_file import HistoryFileError, read_rows, write_template
from ops.adapters.intake_import import IntakeImporter
from ops.domain.history import COLUMNS, HistoryCall, HistoryCase, read_history
from ops.domain.report import line_code
from ops.entrypoints.cli_signin import (
    Credentials,
    SignInError,
    claims_of,
    device_sign_in,
    http_json,
    provider_metadata,
)

DEFAULT_CONSOLE = "http://127.0.0.1:8480"


class ConsoleError(Exception):
    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(body.get("reason") or body.get("error") or f"HTTP {status}")
        self.status = status
        self.body = body



class Client:
    def __init__(self, base: str, timeout: float = 30, credentials: Credentials | None = None) -> None:
        self.base = base.rstrip("/")
        self.timeout = timeout
        self.credentials = credentials or Credentials()

    def _request(self, method: str, path: str, params: dict[str, str] | None = None,
                 signed_in: bool = True) -> tuple[int, bytes]:
        query = f"?{urllib.parse.urlencode({k: v for k, v in (params or {}).items() if v})}" if params else ""
        headers = {}
        token = self.credentials.token() if signed_in else None
        if token:
            headers["Authorization"] = f"Bearer {token}"
        request = urllib.request.Request(f"{self.base}{path}{query}", method=method, headers=headers,
                                         data=b"" if method == "POST" else None)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as reply:
                return reply.status, reply.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def get(self, path: str, **params: str) -> Any:
        return self._json(*self._request("GET", path, params))

    def get_open(self, path: str) -> Any:
        """An open route of the console (no token: e.g. where to sign in)."""
        return self._json(*self._request("GET", path, signed_in=False))

    def post(self, path: str, **params: str) -> Any:
        return self._json(*self._request("POST", path, params))

    def content(self, path: str, **params: str) -> bytes:
        status, body = self._request("GET", path, params)
        if status >= 400:
            raise ConsoleError(status, {"error": body.decode(errors="replace")})
        return body

    def text(self, path: str, **params: str) -> str:
        status, body = self._request("GET", path, params)
        if status >= 400:
            raise ConsoleError(status, {"error": body.decode(errors="replace")})
        return body.decode()

    @staticmethod
    def _json(status: int, body: bytes) -> Any:
        try:
            data = json.loads(body or b"{}")
        except ValueError:
            data = {"error": body.decode(errors="replace")[:300]}
        if status >= 400:
            raise ConsoleError(status, data)
        return data


class Progress:
    """A one-line bar on a terminal; a line per step otherwise (logs of scripts and CI)."""

    def __init__(self, total: int, what: str, out: TextIO | None = None) -> None:
        self.total, self.what, self.out, self.done = total, what, out or sys.stderr, 0
        self.tty = self.out.isatty()

    def step(self, label: str) -> None:
        self.done += 1
        if self.tty:
            filled = int(24 * self.done / max(self.total, 1))
            self.out.write(f"\r{self.what} [{'#' * filled}{'.' * (24 - filled)}] {self.done}/{self.total} {label:<40}")
            if self.done == self.total:
                self.out.write("\n")
        else:
            self.out.write(f"{self.what} {self.done}/{self.total}: {label}\n")
        self.out.flush()


def table(headers: Sequence[str], rows: Iterable[Sequence[object]], out: TextIO | None = None) -> None:
    out = out or sys.stdout
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    for n, row in enumerate(cells):
        out.write("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() + "\n")
        if n == 0:
            out.write("  ".join("-" * w for w in widths) + "\n")
    if len(cells) == 1:
        out.write("(none)\n")


def _dump(data: Any) -> None:
    json.dump(data, sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")


def _rate(value: float) -> str:
    return f"{value:.1f}" if value else "0"


def cmd_login(client: Client, args: argparse.Namespace) -> int:
    issuer, client_id = args.issuer or os.environ.get("REFNET_OIDC_ISSUER", ""), args.client_id
    if not issuer:  # the console says where its people sign in
        settings = client.get_open("/auth/cli")
        issuer, client_id = settings["issuer"], client_id or settings["client_id"]
    data = device_sign_in(issuer, client_id or "refnet-cli")
    client.credentials.store.save(data)
    claims = claims_of(data["access_token"])
    print(f"signed in as {claims.get('preferred_username') or claims.get('sub', '?')}; "
          f"token kept in {client.credentials.store.path}", file=sys.stderr)
    if os.environ.get("REFNET_TOKEN"):
        print("note: REFNET_TOKEN is set and is used instead of this sign-in until you unset it", file=sys.stderr)
    return 0


def cmd_logout(client: Client, args: argparse.Namespace) -> int:
    store = client.credentials.store
    data = store.load()
    if data and data.get("refresh_token"):
        try:  # end the sign-in at the provider too; forgetting it here is what matters
            metadata = provider_metadata(data["issuer"])
            if metadata.get("revocation_endpoint"):
                http_json(metadata["revocation_endpoint"], {"client_id": data["client_id"],
                                                             "token": data["refresh_token"],
                                                             "token_type_hint": "refresh_token"})
        except (SignInError, OSError, urllib.error.URLError):
            pass
    print("signed out" if store.forget() else "not signed in", file=sys.stderr)
    return 0


def cmd_whoami(client: Client, args: argparse.Namespace) -> int:
    data = client.get("/api/whoami")
    if args.json:
        _dump(data)
        return 0
    provinces = "all provinces" if data["national"] else ", ".join(data["provinces"])
    print(f"{data['username']} ({data['role']}; {provinces})")
    return 0


def cmd_status(client: Client, args: argparse.Namespace) -> int:
    data = client.get("/api/status", province=args.province or "")
    not_ready = [p["name"] for p in data["processes"] if p["state"] != "ready"]
    if args.json:
        _dump(data)
        return 1 if not_ready else 0
    table(["process", "state", "consumed/s", "produced/s", "grpc/s", "lag", "outbox", "problem"], [
        (p["name"], p["state"], _rate(p["rates"].get("consumed", 0)), _rate(p["rates"].get("produced", 0)),
         _rate(p["rates"].get("grpc", 0)), int(p["values"].get("lag", 0)), int(p["values"].get("backlog", 0)),
         p["error"] or "; ".join(f"{k}: {v}" for k, v in p["checks"].items() if v != "ok"))
        for p in data["processes"]])
    print(f"\n{len(data['processes']) - len(not_ready)}/{len(data['processes'])} ready · "
          f"{data['events_last_5_min']} events in 5 min · {data['overdue']} overdue referrals · "
          f"{data['dead_letters_pending']} dead letters pending")
    if data.get("lag_error"):
        print(f"kafka: {data['lag_error']}", file=sys.stderr)
    return 1 if not_ready else 0


def cmd_topics(client: Client, args: argparse.Namespace) -> int:
    data = client.get("/api/topics")
    if args.json:
        _dump(data)
        return 0
    table(["topic", "partitions", "records", "lane", "writer", "readers"],
          [(t["name"], t["partitions"], t["records"], t["lane"], t["writer"], ",".join(t["readers"]))
           for t in data["topics"]])
    return 0


def cmd_lag(client: Client, args: argparse.Namespace) -> int:
    data = client.get("/api/lag", group=args.group or "")
    rows = [r for r in data["lag"] if r["lag"] or not args.lagging]
    if args.json:
        _dump({"lag": rows})
        return 0
    table(["group", "topic", "partition", "committed", "end", "lag", "members"],
          [(r["group"], r["topic"], r["partition"], r["committed"], r["end"], r["lag"], r["members"]) for r in rows])
    print(f"\ntotal lag: {sum(r['lag'] for r in rows)}")
    return 0


def cmd_dlq_list(client: Client, args: argparse.Namespace) -> int:
    data = client.get("/api/dlq", consumer=args.consumer or "", all="0" if args.pending else "1")
    if args.json:
        _dump(data)
        return 0
    table(["id", "consumer", "from", "event type", "event id", "reason", "failed", "replayed"], [
        (d["letter_id"], d["consumer"], f"{d['original_topic']}[{d['original_partition']}]@{d['original_offset']}",
         d["event_type"] or "-", d["event_id"] or "-", (d["error"][:60] + "…") if len(d["error"]) > 61 else d["error"],
         d["failed_at"][:19], f"by {d['replayed_by']} {d['replayed_at'][:19]}" if d["replayed_at"] else "")
        for d in data["dead_letters"]])
    return 0


def cmd_dlq_replay(client: Client, args: argparse.Namespace) -> int:
    ids = list(args.ids)
    if args.pending:
        pending = client.get("/api/dlq", consumer=args.consumer or "", all="0")["dead_letters"]
        ids += [d["letter_id"] for d in pending]
    if not ids:
        print("nothing to replay", file=sys.stderr)
        return 0
    progress = Progress(len(ids), "replaying")
    results = []
    for letter_id in ids:
        try:
            result = client.post(f"/api/dlq/{int(letter_id)}/replay")
            outcome = "replayed"
        except ConsoleError as exc:
            # A second replay of one letter is refused by the console: for a script that is a no-op, not a failure.
            result, outcome = exc.body, "already replayed" if exc.status == 409 else "failed"
        results.append({"letter_id": int(letter_id), "outcome": outcome, **result})
        progress.step(f"#{letter_id} {outcome}")
    if args.json:
        _dump({"replays": results})
    else:
        table(["id", "outcome", "topic", "offset", "detail"],
              [(r["letter_id"], r["outcome"], r.get("topic", ""), r.get("offset", ""), r.get("reason", ""))
               for r in results])
    return 1 if any(r["outcome"] == "failed" for r in results) else 0


def cmd_trace(client: Client, args: argparse.Namespace) -> int:
    try:
        data = client.get(f"/api/trace/{urllib.parse.quote(args.id, safe='')}", db="1" if args.db else "")
    except ConsoleError as exc:
        if exc.status == 404:
            print(str(exc), file=sys.stderr)
            return 1
        raise
    if args.json:
        _dump(data)
        return 0
    for t in data["traces"]:
        services = ", ".join(s.removeprefix("refnet-") for s in t["services"])
        print(f"trace {t['trace_id']}  {t['started_at'][:23]}  {t['duration_ms']:.1f} ms  [{services}]")
        table(["+ms", "took ms", "service", "span", "event type", "ids"], [
            (f"{h['start_ms']:.1f}", f"{h['duration_ms']:.1f}", h["service"].removeprefix("refnet-"), h["name"],
             h["attributes"].get("refnet.event_type", "").rsplit(".", 1)[-1],
             " ".join(f"{k.removeprefix('refnet.')}={v}" for k, v in h["attributes"].items()
                      if k in ("refnet.case_id", "refnet.referral_id") and v))
            for h in t["hops"]])
        print()
    return 0


def cmd_report(client: Client, args: argparse.Namespace) -> int:
    by = args.by
    if args.line:
        by, provinces = "line", [line_code(args.line)]
    elif args.place:
        by, provinces = "place", [args.place.strip()]
    else:
        provinces = [p.strip() for p in (args.province or "").split(",")] or [""]
    period = {"from": args.date_from or "", "to": args.date_to or "", "by": by}
    if args.ids:
        indicator, _, row = args.ids.partition(":")
        dimension, _, value = row.partition("=")
        found = client.get("/api/report/ids", province=provinces[0], indicator=indicator, dimension=dimension,
                           value=value, **period)
        if args.json:
            _dump(found)
        else:
            print("\n".join(found["ids"]))
            print(f"{found['count']} ids", file=sys.stderr)
        return 0
    progress = Progress(len(provinces), "counting") if len(provinces) > 1 else None
    reports = []
    for province in provinces:
        reports.append(client.get("/api/report", province=province, **period))
        if progress:
            progress.step(province or "national")
    if args.xlsx:
        with open(args.xlsx, "wb") as binary:
            binary.write(client.content("/report.xlsx", province=provinces[0], **period))
        print(f"wrote {args.xlsx}", file=sys.stderr)
    if args.csv:
        texts = [client.text("/report.csv", province=p, **period) for p in provinces]
        text = texts[0] + "".join(t.split("\n", 1)[1] for t in texts[1:])  # one header line
        if args.csv == "-":
            sys.stdout.write(text)
        else:
            with open(args.csv, "w", encoding="utf-8", newline="") as out:
                out.write(text)
            print(f"wrote {args.csv}", file=sys.stderr)
    if args.svg:
        with open(args.svg, "w", encoding="utf-8") as out:
            out.write(client.text("/report.svg", province=provinces[0], **period))
        print(f"wrote {args.svg}", file=sys.stderr)
    if args.csv == "-":
        return 0
    if args.json:
        _dump({"reports": reports})
        return 0
    for data in reports:
        report = data["report"]
        print(f"{report['scope']}  {report['period']['start']} to {report['period']['end']}")
        table(["group", "indicator", "by", "value", "figure"], data["rows"])
        print()
    return 0


def cmd_import(client: Client, args: argparse.Namespace) -> int:
    """Past call logs and cases: every row checked first (all bad rows printed, with line and column, and nothing
    sent if any); then sent to intake in batches, cases before calls, with a progress bar. A re-run sends the
    same idempotency keys, so intake stores nothing twice and says how many rows it already had."""
    if args.columns:
        table(["column", "Vietnamese", "what it holds"], COLUMNS)
        return 0
    if args.template:
        write_template(Path(args.template))
        print(f"wrote {args.template}", file=sys.stderr)
        return 0
    if not args.file:
        print("refnet import: give the file (CSV or XLSX), or --columns or --template", file=sys.stderr)
        return 2
    try:
        rows = read_rows(Path(args.file))
    except (HistoryFileError, OSError) as exc:
        print(f"refnet import: {exc}", file=sys.stderr)
        return 1
    history = read_history(rows, args.source)
    for problem in history.problems:
        print(f"{args.file}: {problem}", file=sys.stderr)
    summary = (f"{history.rows} rows: {len(history.cases)} cases and {len(history.calls)} calls good, "
               f"{len(history.problems)} bad")
    if args.dry_run or history.problems:
        print(summary + ("; nothing imported (dry run)" if args.dry_run else "; nothing imported: fix the rows above"),
              file=sys.stderr)
        if args.json:
            _dump({"rows": history.rows, "cases": len(history.cases), "calls": len(history.calls),
                   "problems": [{"line": p.line, "field": p.field, "problem": p.problem} for p in history.problems]})
        return 1 if history.problems else 0
    missing = [name for name in ("REFNET_TLS_CA", "REFNET_TLS_CERT", "REFNET_TLS_KEY") if not os.environ.get(name)]
    if missing:
        print(f"refnet import: set {', '.join(missing)} (the CLI's front-door certificate for intake)", file=sys.stderr)
        return 2
    credentials = Credentials()

    def token() -> str:
        found = credentials.token()
        if not found:
            raise SignInError("not signed in: run `refnet login` (or set REFNET_TOKEN)")
        return found

    importer = IntakeImporter(args.intake, Path(os.environ["REFNET_TLS_CA"]), Path(os.environ["REFNET_TLS_CERT"]),
                              Path(os.environ["REFNET_TLS_KEY"]), token)
    batches: list[tuple[list[HistoryCase], list[HistoryCall]]] = (
        [(history.cases[i:i + args.batch], []) for i in range(0, len(history.cases), args.batch)]
        + [([], history.calls[i:i + args.batch]) for i in range(0, len(history.calls), args.batch)])
    progress = Progress(len(batches), "importing")
    new = repeated = 0
    try:
        for cases, calls in batches:
            added, had = importer.send(cases, calls)
            new, repeated = new + added, repeated + had
            progress.step(f"{len(cases)} cases" if cases else f"{len(calls)} calls")
    except grpc.RpcError as exc:
        print(f"\nrefnet import: intake refused a batch ({exc.code().name}): {exc.details()}; {new} rows were "
              "imported before it (a re-run imports each row once)", file=sys.stderr)
        return 1
    finally:
        importer.close()
    print(f"{summary}; imported {new} new, {repeated} already imported", file=sys.stderr)
    if args.json:
        _dump({"rows": history.rows, "new": new, "already_imported": repeated})
    return 0


def _options(suppress: bool) -> argparse.ArgumentParser:
    """--json and --console, accepted before or after the command (after: no default, so it never overrides)."""
    options = argparse.ArgumentParser(add_help=False)
    options.add_argument("--json", action="store_true", default=argparse.SUPPRESS if suppress else False,
                         help="machine-readable output")
    options.add_argument("--console", default=argparse.SUPPRESS if suppress else
                         os.environ.get("REFNET_CONSOLE_URL", DEFAULT_CONSOLE),
                         help=f"the ops console's URL (default: $REFNET_CONSOLE_URL or {DEFAULT_CONSOLE})")
    return options


def parser() -> argparse.ArgumentParser:
    common = _options(suppress=True)
    top = argparse.ArgumentParser(prog="refnet", description=(__doc__ or "").splitlines()[0],
                                  parents=[_options(suppress=False)])
    sub = top.add_subparsers(dest="command", required=True)
    login = sub.add_parser("login", parents=[common], help="sign in through the identity provider (device flow)")
    login.add_argument("--issuer", help="the identity provider (default: $REFNET_OIDC_ISSUER, else the console's)")
    login.add_argument("--client-id", default="", help="the provider's client for the CLI (default: refnet-cli)")
    login.set_defaults(run=cmd_login)
    sub.add_parser("logout", parents=[common], help="forget the stored sign-in").set_defaults(run=cmd_logout)
    sub.add_parser("whoami", parents=[common], help="who the console takes you for").set_defaults(run=cmd_whoami)
    status = sub.add_parser("status", parents=[common], help="every process's health and rates")
    status.add_argument("--province", help="limit the figures to one province code")
    status.set_defaults(run=cmd_status)
    sub.add_parser("topics", parents=[common], help="topics, partitions and records").set_defaults(run=cmd_topics)
    lag = sub.add_parser("lag", parents=[common], help="consumer lag per group and partition")
    lag.add_argument("--group")
    lag.add_argument("--lagging", action="store_true", help="only partitions with lag")
    lag.set_defaults(run=cmd_lag)
    dlq = sub.add_parser("dlq", help="dead letters").add_subparsers(dest="dlq_command", required=True)
    listing = dlq.add_parser("list", parents=[common], help="dead letters, newest first")
    listing.add_argument("--consumer")
    listing.add_argument("--pending", action="store_true", help="only those not yet replayed")
    listing.set_defaults(run=cmd_dlq_list)
    replay = dlq.add_parser("replay", parents=[common], help="replay dead letters to their original topics, once")
    replay.add_argument("ids", nargs="*", type=int)
    replay.add_argument("--pending", action="store_true", help="every letter not yet replayed")
    replay.add_argument("--consumer", help="with --pending: only this consumer's letters")
    replay.set_defaults(run=cmd_dlq_replay)
    trace = sub.add_parser("trace", parents=[common], help="every hop of one case's traces")
    trace.add_argument("id", help="a case id or a referral id")
    trace.add_argument("--db", action="store_true", help="include database spans")
    trace.set_defaults(run=cmd_trace)
    report = sub.add_parser("report", parents=[common], help="indicator report per line or place and period")
    report.add_argument("--line", help="a hotline's number (18001769), 111 or a province code: by handling line")
    report.add_argument("--place", help="a province code: figures by the place it happened")
    report.add_argument("--province", default="", help="province code(s), comma-separated; empty for the country")
    report.add_argument("--by", choices=("line", "place"), default="line",
                        help="with --province: by handling line (default) or by place")
    report.add_argument("--xlsx", help="write the spreadsheet (a sheet per indicator group) to this file")
    report.add_argument("--ids", help="list the ids a figure counts (operations team): INDICATOR[:DIMENSION=VALUE]")
    report.add_argument("--from", dest="date_from", help="first day, YYYY-MM-DD (default: 30 days ago)")
    report.add_argument("--to", dest="date_to", help="last day, YYYY-MM-DD (default: today)")
    report.add_argument("--csv", help="write the CSV to this file ('-' for standard output)")
    report.add_argument("--svg", help="write the chart to this file")
    report.set_defaults(run=cmd_report)
    importing = sub.add_parser("import", parents=[common],
                               help="past call logs and cases (CSV or XLSX), through intake")
    importing.add_argument("file", nargs="?", help="the file: one row per call or case (see --columns)")
    importing.add_argument("--dry-run", action="store_true", help="check every row, print the bad ones, send nothing")
    importing.add_argument("--columns", action="store_true", help="print the column set and exit")
    importing.add_argument("--template", help="write an empty log to fill in (.xlsx or .csv) and exit")
    importing.add_argument("--source", default="", help="what the rows' ids are unique within (default: their line)")
    importing.add_argument("--intake", default=os.environ.get("REFNET_INTAKE_ADDRESS", "127.0.0.1:50051"),
                           help="intake's api (default: $REFNET_INTAKE_ADDRESS or 127.0.0.1:50051)")
    importing.add_argument("--batch", type=int, default=200, help="rows per request to intake (at most 500)")
    importing.set_defaults(run=cmd_import)
    directory = sub.add_parser("directory", help="import or export the provider directory as HSDS JSON "
                                                 "(runs referral-directory on referral's database)")
    directory.add_argument("args", nargs=argparse.REMAINDER, help="import FILE | export [FILE]")
    directory.set_defaults(run=cmd_directory)
    return top


def cmd_directory(client: Client, args: argparse.Namespace) -> int:
    # The directory is referral's: its own command works on its own database, with its own settings.
    beside = Path(sys.executable).parent / "referral-directory"
    command = str(beside) if beside.exists() else "referral-directory"
    try:
        os.execvp(command, [command, *args.args])
    except FileNotFoundError:
        print("refnet: referral-directory is not installed here (it comes with services/referral)", file=sys.stderr)
        return 2


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `refnet lag | head` ends quietly
    args = parser().parse_args(argv)
    client = Client(args.console)
    try:
        return int(args.run(client, args))
    except ConsoleError as exc:
        hint = " (run `refnet login`, or set REFNET_TOKEN)" if exc.status == 401 else ""
        print(f"refnet: {exc}{hint}", file=sys.stderr)
        return 1
    except SignInError as exc:
        print(f"refnet: {exc}", file=sys.stderr)
        return 1
    except urllib.error.URLError as exc:
        print(f"refnet: cannot reach the ops console at {args.console} ({exc.reason}); is ops-console running? "
              "Set REFNET_CONSOLE_URL or --console.", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
