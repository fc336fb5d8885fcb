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
from refnet_platform.engine import make_engine
from refnet_platform.migrations import migrate

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


def test_live_beds_per_shelter_become_beds_per_pool(database_url: str) -> None:
    """0005: a shelter's figure stays under the one group its directory entry names; a figure of a shelter
    listed for several groups (or none) cannot be placed in a pool and goes."""
    engine = make_engine(database_url)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    at = datetime(2026, 1, 1, tzinfo=UTC)
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0004")
        for provider_id, shelter_id, groups in (("p-one", "s-one", "women_with_children"),
                                                ("p-two", "s-two", "children,women"), ("p-none", "s-none", "")):
            conn.execute(text(
                "INSERT INTO providers (provider_id, name, sector, service_type, province_code, commune_code,"
                " public_contact, open_24_7, shelter_id, target_groups) VALUES (:p, 'P', 'shelter', 'shelter', '22',"
                " '', '1800', true, :s, :g)"), {"p": provider_id, "s": shelter_id, "g": groups})
        for shelter_id in ("s-one", "s-two", "s-none", "s-unknown"):
            conn.execute(text("INSERT INTO shelter_beds (shelter_id, capacity, free, updated_at)"
                              " VALUES (:s, 6, 4, :at)"), {"s": shelter_id, "at": at})
    migrate(engine, MIGRATIONS)
    with engine.begin() as conn:
        rows = conn.execute(text("SELECT shelter_id, target_group, capacity, free FROM shelter_beds")).all()
        # One shelter, two pools: the new key allows it.
        conn.execute(text("INSERT INTO shelter_beds (shelter_id, target_group, capacity, free, updated_at)"
                          " VALUES ('s-one', 'women', 2, 2, :at)"), {"at": at})
    engine.dispose()
    assert [tuple(r) for r in rows] == [("s-one", "women_with_children", 6, 4)]
    assert differences(database_url) == []
