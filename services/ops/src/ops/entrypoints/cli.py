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
import os
import signal
import sys
import urllib.error
import urllib.parse
from pathlib import Path

from ops.entrypoints import cli_import, cli_report
from ops.entrypoints.cli_client import Client, ConsoleError, Progress, dump, table
from ops.entrypoints.cli_signin import SignInError, claims_of, device_sign_in, http_json, provider_metadata

DEFAULT_CONSOLE = "http://127.0.0.1:8480"


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
        dump(data)
        return 0
    provinces = "all provinces" if data["national"] else ", ".join(data["provinces"])
    print(f"{data['username']} ({data['role']}; {provinces})")
    return 0


def cmd_status(client: Client, args: argparse.Namespace) -> int:
    data = client.get("/api/status", province=args.province or "")
    not_ready = [p["name"] for p in data["processes"] if p["state"] != "ready"]
    if args.json:
        dump(data)
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
        dump(data)
        return 0
    table(["topic", "partitions", "records", "lane", "writer", "readers"],
          [(t["name"], t["partitions"], t["records"], t["lane"], t["writer"], ",".join(t["readers"]))
           for t in data["topics"]])
    return 0


def cmd_lag(client: Client, args: argparse.Namespace) -> int:
    data = client.get("/api/lag", group=args.group or "")
    rows = [r for r in data["lag"] if r["lag"] or not args.lagging]
    if args.json:
        dump({"lag": rows})
        return 0
    table(["group", "topic", "partition", "committed", "end", "lag", "members"],
          [(r["group"], r["topic"], r["partition"], r["committed"], r["end"], r["lag"], r["members"]) for r in rows])
    print(f"\ntotal lag: {sum(r['lag'] for r in rows)}")
    return 0


def cmd_dlq_list(client: Client, args: argparse.Namespace) -> int:
    data = client.get("/api/dlq", consumer=args.consumer or "", all="0" if args.pending else "1")
    if args.json:
        dump(data)
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
        dump({"replays": results})
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
        dump(data)
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
    cli_report.add_arguments(report)
    importing = sub.add_parser("import", parents=[common],
                               help="past call logs and cases (CSV or XLSX), through intake")
    cli_import.add_arguments(importing)
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
    if argv is None:  # the command itself (not a caller in-process, whose own pipes this would make fatal)
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
