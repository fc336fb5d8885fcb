"""`referral-directory import FILE` / `referral-directory export [FILE]`: the provider directory as
Open Referral HSDS JSON (see adapters/hsds.py). Works on the database the service's settings name."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from referral.adapters import hsds
from referral.bootstrap import bootstrap
from referral.config import MIGRATIONS, Settings
from referral.domain import commands
from refnet_platform.errors import DomainError
from refnet_platform.runtime import open_database


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="referral-directory", description=__doc__)
    sub = parser.add_subparsers(dest="action", required=True)
    load = sub.add_parser("import", help="add or update the providers of an HSDS JSON file "
                                         "(or demo/directory.json's shape)")
    load.add_argument("file", type=Path)
    dump = sub.add_parser("export", help="write every provider as HSDS JSON (shelters without a location)")
    dump.add_argument("file", type=Path, nargs="?", help="default: standard output")
    args = parser.parse_args(argv)

    settings = Settings()
    try:
        if args.action == "import":
            providers = hsds.load_file(args.file)
            bus = bootstrap(settings, open_database(settings, MIGRATIONS))
            written = bus.handle(commands.LoadDirectory(providers, update_existing=True))
            print(f"imported {written} providers from {args.file}", file=sys.stderr)
            return 0
        bus = bootstrap(settings, open_database(settings, MIGRATIONS))
        text = json.dumps(hsds.to_hsds(bus.handle(commands.ExportDirectory())), ensure_ascii=False, indent=2)
    except DomainError as exc:
        print(f"referral-directory: {exc}", file=sys.stderr)
        return 2
    if args.file:
        args.file.write_text(text + "\n", encoding="utf-8")
    else:
        print(text)
    return 0


def run() -> None:
    raise SystemExit(main())
