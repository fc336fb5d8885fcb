"""What the browser tests share: Debian's chromium through Playwright, once per module (refnet_dev.browser).

A module that needs no network settings of its own runs on the session's `shared_network` (tests/conftest.py: how
to use it, and the rules: own ids, assertions about your own cases only, never stop it)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from refnet_dev.browser import chromium

    with chromium() as launched:
        yield launched
