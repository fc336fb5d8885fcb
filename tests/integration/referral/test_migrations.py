"""Referral's migrations, on SQLite and PostgreSQL: a fresh database ends up exactly as adapters/tables.py
says, and a database made by the first revision keeps its rows when brought up to date."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import text

from referral.adapters.tables import metadata
from referral.config import MIGRATIONS
from refnet_platform.db import make_engine, migrate

pytestmark = pytest.mark.integration


def differences(url: str) -> list[object]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={
                "compare_type": True, "include_name": lambda name, kind, parent: kind != "table"
                or name in metadata.tables})
            return list(compare_metadata(context, metadata))
    finally:
        engine.dispose()


def test_a_fresh_database_matches_the_tables(database_url: str) -> None:
    engine = make_engine(database_url)
    migrate(engine, MIGRATIONS)
    migrate(engine, MIGRATIONS)  # a second start changes nothing
    engine.dispose()
    assert differences(database_url) == []


def test_rows_from_the_first_revision_survive_the_upgrade(database_url: str) -> None:
    engine = make_engine(database_url)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0001")
        conn.execute(text(
            "INSERT INTO referrals (referral_id, case_id, need_id, service_type, provider_id, province_code, status,"
            " emergency, risk_level, case_worker_id, requested_at, shelter_id, reason) VALUES ('r1', 'c1', 'n1',"
            " 'police_protection', 'qn-police-baichay', '22', 'requested', false, 'medium', 'w1', :at, '', '')"),
            {"at": datetime(2026, 1, 1, tzinfo=UTC)})
        conn.execute(text(
            "INSERT INTO providers (provider_id, name, sector, service_type, province_code, commune_code,"
            " public_contact, open_24_7, shelter_id) VALUES ('p1', 'P', 'police', 'police_protection', '22', '06673',"
            " '113', true, '')"))
    migrate(engine, MIGRATIONS)
    with engine.connect() as conn:
        row = conn.execute(text("SELECT attempt, bed, version, previous_referral_id, due_at FROM referrals")).one()
        provider = conn.execute(text("SELECT age_group, active, organization_id FROM providers")).one()
        # The one-referral-per-need-and-provider rule is gone: a need may come back to a provider.
        conn.execute(text(
            "INSERT INTO referrals (referral_id, case_id, need_id, service_type, provider_id, province_code, status,"
            " emergency, risk_level, case_worker_id, requested_at, shelter_id, reason) VALUES ('r2', 'c1', 'n1',"
            " 'police_protection', 'qn-police-baichay', '22', 'requested', false, 'medium', 'w1', :at, '', '')"),
            {"at": datetime(2026, 1, 2, tzinfo=UTC)})
    engine.dispose()
    assert tuple(row) == (1, "none", 1, "", None)
    assert (provider.age_group, bool(provider.active), provider.organization_id) == ("any", True, "")
    assert differences(database_url) == []
