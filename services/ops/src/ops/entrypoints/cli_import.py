"""`refnet import`: past call logs and cases (CSV or XLSX) checked row by row, then sent to intake; the column
set and an empty log to fill in."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import grpc

from ops.adapters.history_file import HistoryFileError, read_rows, write_template
from ops.adapters.intake_import import IntakeImporter
from ops.domain.history import COLUMNS, HistoryCall, HistoryCase, read_history
from ops.entrypoints.cli_client import Client, Progress, dump, table
from ops.entrypoints.cli_signin import Credentials, SignInError


def add_arguments(importing: argparse.ArgumentParser) -> None:
    importing.add_argument("file", nargs="?", help="the file: one row per call or case (see --columns)")
    importing.add_argument("--dry-run", action="store_true", help="check every row, print the bad ones, send nothing")
    importing.add_argument("--columns", action="store_true", help="print the column set and exit")
    importing.add_argument("--template", help="write an empty log to fill in (.xlsx or .csv) and exit")
    importing.add_argument("--source", default="", help="what the rows' ids are unique within (default: their line)")
    importing.add_argument("--intake", default=os.environ.get("REFNET_INTAKE_ADDRESS", "127.0.0.1:50051"),
                           help="intake's api (default: $REFNET_INTAKE_ADDRESS or 127.0.0.1:50051)")
    importing.add_argument("--batch", type=int, default=200, help="rows per request to intake (at most 500)")
    importing.set_defaults(run=cmd_import)


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
            dump({"rows": history.rows, "cases": len(history.cases), "calls": len(history.calls),
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
        dump({"rows": history.rows, "new": new, "already_imported": repeated})
    return 0
