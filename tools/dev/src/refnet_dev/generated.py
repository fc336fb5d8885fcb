"""Files generated from a source in the repository (the topic registry, the development realm): written by
their script, or checked for drift with --check (tests/k8s and `make k8s-check` fail on drift)."""

from __future__ import annotations

import difflib
import sys
from collections.abc import Mapping
from pathlib import Path


def write_or_check(files: Mapping[Path, str], root: Path, check: bool, source: str, remedy: str) -> int:
    """Writes each file whose text differs; with `check`, prints the diffs instead and returns 1 if any drifted."""
    drifted = []
    for path, text in files.items():
        current = path.read_text() if path.exists() else ""
        if current == text:
            continue
        rel = path.relative_to(root)
        if check:
            drifted.append(rel)
            sys.stdout.writelines(difflib.unified_diff(current.splitlines(keepends=True),
                                                       text.splitlines(keepends=True),
                                                       f"{rel} (on disk)", f"{rel} (from {source})"))
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            print(f"wrote {rel}")
    if drifted:
        print(f"\n{len(drifted)} generated file(s) drifted from {source}; run `{remedy}`", file=sys.stderr)
        return 1
    return 0
