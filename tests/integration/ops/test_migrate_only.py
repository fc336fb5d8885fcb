"""`ops-console --migrate-only`: what Kubernetes' migration Job runs before any ops pod of a release starts
(deploy/k8s/apply.sh). It brings ops' schema to head and exits, serving nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import inspect

from refnet_platform.engine import make_engine

pytestmark = pytest.mark.integration


def test_the_console_migrates_and_exits(database_url: str, tmp_path: Path) -> None:
    console = Path(sys.executable).parent / "ops-console"
    env = {**os.environ, "OPS_DATABASE_URL": database_url, "REFNET_DATA_DIR": str(tmp_path)}
    env.pop("DATABASE_URL", None)
    done = subprocess.run([str(console), "--migrate-only"], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "migrations applied" in done.stderr + done.stdout
    engine = make_engine(database_url)
    try:
        tables = set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
    assert {"cases", "referrals", "spans", "dead_letters", "replays", "inbox", "alembic_version"} <= tables

