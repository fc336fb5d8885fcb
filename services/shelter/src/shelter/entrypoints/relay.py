from __future__ import annotations

from refnet_platform.runtime import run_relay
from shelter.config import MIGRATIONS, Settings


def main() -> None:
    run_relay(Settings(), MIGRATIONS)
