"""What the browser tests share: Debian's chromium through Playwright, once per module (refnet_dev.browser)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from refnet_dev.browser import chromium

    with chromium() as launched:
        yield launched
