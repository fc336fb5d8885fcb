"""What every refnet subcommand shares: the ops console's API client (carrying the person's token) and the
terminal's output (tables, a progress bar, JSON)."""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Sequence
from typing import Any, TextIO

from ops.entrypoints.cli_signin import Credentials


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
        return self.content(path, **params).decode()

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


def dump(data: Any) -> None:
    json.dump(data, sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")
