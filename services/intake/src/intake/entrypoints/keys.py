"""intake-keys: rotating intake's master key. Run it where intake-api runs, with the same settings
(database, INTAKE_MASTER_KEY_FILE, INTAKE_PREVIOUS_MASTER_KEYS_DIR), e.g.
`kubectl -n refnet exec deploy/intake-api -- intake-keys status`.

    intake-keys status                      case keys per master key id (exit 1 if some key is not configured)
    intake-keys rotate [--batch-size N]     re-wrap every case key not under the current master key
    intake-keys index-phones [--batch-size N]   hash every case's number under the current master key, so a
                                            survivor's STOP by text finds her case (cases older than the hashes,
                                            and after a rotation, before a previous key is removed)

Key ids (the first 8 bytes of a key's SHA-256, hex) name the keys; the keys themselves are never printed.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from intake.adapters.crypto import MasterKeyError
from intake.bootstrap import make_vault
from intake.config import MIGRATIONS, Settings
from intake.service_layer import keys
from intake.service_layer.unit_of_work import IntakeUnitOfWork
from refnet_platform.runtime import open_database


def _batch_size(value: str) -> int:
    size = int(value)
    if size < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return size


def print_status(status: keys.KeyStatus) -> int:
    rows: list[tuple[str, int, str]] = []
    for key_id in status.configured:
        role = "current" if key_id == status.current else "previous"
        left = status.counts.get(key_id, 0)
        rows.append((key_id, left, role if left or role == "current" else "previous: none left, can be removed"))
    if status.counts.get(None):
        rows.append(("(none)", status.counts[None], "wrapped before key ids were recorded: rotate re-wraps them"))
    rows += [(key_id, n, "NOT CONFIGURED: unreadable until this key is added")
             for key_id, n in sorted(status.unknown.items())]
    width = max(len(key_id) for key_id, _, _ in rows)
    print(f"{'master key':<{width}}  case keys  state")
    for key_id, count, state in rows:
        print(f"{key_id:<{width}}  {count:>9}  {state}")
    print(f"\n{status.left} case keys left to re-wrap under {status.current}; "
          f"{status.erased} erased cases (no key: nothing to re-wrap)")
    return 1 if status.unknown else 0


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="intake-keys", description="Rotate intake's master key.")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("status", help="how many case keys each master key wraps")
    rotate = commands.add_parser("rotate", help="re-wrap every case key not under the current master key")
    rotate.add_argument("--batch-size", type=_batch_size, default=500,
                        help="case keys per transaction (default 500)")
    index = commands.add_parser("index-phones", help="hash every case's number under the current master key")
    index.add_argument("--batch-size", type=_batch_size, default=500, help="cases per transaction (default 500)")
    args = parser.parse_args(argv)

    settings = Settings()
    try:
        vault = make_vault(settings)
    except MasterKeyError as exc:
        sys.exit(f"intake-keys: {exc}")
    schema = settings.database[1]
    engine = open_database(settings, MIGRATIONS)

    def uow() -> IntakeUnitOfWork:
        return IntakeUnitOfWork(engine, vault, schema)

    try:
        if args.command == "status":
            sys.exit(print_status(keys.key_status(uow)))
        if args.command == "index-phones":
            added = keys.index_phones(uow, args.batch_size,
                                      lambda seen, added: print(f"{seen} cases read, {added} hashes added", flush=True))
            print(f"done: {added} hashes added under master key {vault.key_id}")
            return
        print(f"re-wrapping every case key not under master key {vault.key_id}, {args.batch_size} per transaction",
              flush=True)
        done = keys.rotate(uow, args.batch_size,
                           lambda done, total: print(f"re-wrapped {done}/{total}", flush=True))
        left = keys.key_status(uow).left
        if left:  # wrapped meanwhile by an intake-api still running with the old key as its current one
            sys.exit(f"intake-keys: {left} case keys were wrapped under another key meanwhile: restart every "
                     "intake-api with the new key current, then run `intake-keys rotate` again")
        if done:
            print(f"done: {done} case keys re-wrapped; every case key is under {vault.key_id}. A previous key "
                  "that `intake-keys status` shows with none left can be removed from the settings.")
        else:
            print(f"nothing to re-wrap: every case key is under {vault.key_id}")
    except MasterKeyError as exc:
        sys.exit(f"intake-keys: {exc}")
    finally:
        engine.dispose()
