from __future__ import annotations

from referral.config import MIGRATIONS, Settings
from refnet_platform.runtime import run_relay


def main() -> None:
    run_relay(Settings(), MIGRATIONS)
