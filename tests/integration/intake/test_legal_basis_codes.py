"""Migration erasure_0006: consents' free-text legal bases become codes, a text that says more than a citation
becomes a note sealed by intake-api at start, and the audit log's override entries carry the code."""

from __future__ import annotations

import os
from datetime import UTC, datetime

from alembic import command
from alembic.config import Config
from sqlalchemy import text

from intake.adapters.crypto import Vault
from intake.adapters.repository import CaseRepository
from intake.config import MIGRATIONS
from refnet_platform.engine import make_engine
from refnet_platform.migrations import migrate
from refnet_platform.vocabulary import ServiceType

NOW = datetime(2026, 12, 1, tzinfo=UTC)
TEXTS = {
    "c-child": "Luật Trẻ em 2016, Điều 50",  # a bare citation: the code says it all
    "c-decree": "NĐ 56/2017/NĐ-CP",
    "c-dv": "Luật Phòng, chống bạo lực gia đình 2022, Điều 23",
    "c-other": "Biên bản họp với trưởng thôn Nguyễn Văn Canary",  # not a citation: kept, to be sealed
    "c-long": "Luật Trẻ em 2016 — em bé bị bỏ rơi ở chợ, mẹ là Trần Thị Canary, không liên lạc được với bố",
    "c-none": "",  # the survivor consented herself
}
EXPECTED = {"c-child": "children_law_2016", "c-decree": "decree_56_2017", "c-dv": "domestic_violence_law_2022",
            "c-other": "other", "c-long": "children_law_2016", "c-none": ""}


def test_free_text_legal_bases_become_codes_and_sealed_notes(database_url: str) -> None:
    engine = make_engine(database_url)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    vault = Vault(os.urandom(32))
    key, key_id, wrapped = vault.new_case_key("case-1")
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0005")  # the tables as they were (the migrations are frozen)
        conn.execute(text(
            "INSERT INTO cases (case_id, client_request_id, province_code, commune_code, case_types, is_child, "
            "risk_level, immediate_danger, case_worker_id, registered_at, status) VALUES ('case-1', 'r-1', '22', "
            "'06652', '[]', true, 'high', false, 'cw', :now, 'open')"), {"now": NOW})
        conn.execute(text("INSERT INTO case_keys (case_id, wrapped_key, key_id) VALUES ('case-1', :w, :k)"),
                     {"w": wrapped, "k": key_id})
        for (consent_id, basis), service in zip(TEXTS.items(), list(ServiceType)[:len(TEXTS)], strict=True):
            need_id = f"n-{consent_id}"
            conn.execute(text("INSERT INTO needs (need_id, case_id, service_type, consented, referral_id, "
                              "referral_status, provider_id) VALUES (:n, 'case-1', :s, true, '', '', '')"),
                         {"n": need_id, "s": str(service)})
            conn.execute(text(
                "INSERT INTO consents (consent_id, case_id, need_id, given_by, legal_basis, recipient_sectors, "
                "data_categories, given_at, expires_at, recorded_by) VALUES (:c, 'case-1', :n, 'case_worker', :b, "
                "'[]', '[\"name\"]', :now, :now, 'cw')"), {"c": consent_id, "n": need_id, "b": basis, "now": NOW})
        conn.execute(text(
            "INSERT INTO audit_log (at, actor_id, actor_role, action, case_id, need_id, referral_id, recipient_id, "
            "purpose, detail) VALUES (:now, 'sv', 'supervisor', 'consent_override', 'case-1', 'n-c-other', '', '', "
            "'', :d)"), {"now": NOW, "d": TEXTS["c-other"]})
    migrate(engine, MIGRATIONS)
    with engine.connect() as conn:
        codes = dict(conn.execute(text("SELECT consent_id, legal_basis FROM consents")).all())
        pending = dict(conn.execute(text("SELECT consent_id, pending FROM consent_notes")).all())
        [detail] = conn.execute(text("SELECT detail FROM audit_log")).scalars().all()
    assert codes == EXPECTED
    assert pending == {"c-other": TEXTS["c-other"], "c-long": TEXTS["c-long"]}
    assert detail == "other"

    with engine.begin() as conn:  # what intake-api does at start, with the master key
        assert CaseRepository(conn, vault).seal_pending_notes() == 2
    with engine.connect() as conn:
        notes = conn.execute(text("SELECT consent_id, sealed, pending FROM consent_notes ORDER BY consent_id")).all()
        case = CaseRepository(conn, vault).get("case-1")
    engine.dispose()
    assert [(c, p) for c, _, p in notes] == [("c-long", None), ("c-other", None)]
    for consent_id, sealed, _ in notes:
        assert b"Canary" not in bytes(sealed)
        assert Vault.open_row(key, "case-1", consent_id, bytes(sealed)).decode() == TEXTS[consent_id]
    assert case is not None
    noted = {n.consent.consent_id: n.consent.has_legal_basis_note for n in case.needs if n.consent}
    assert noted == {"c-child": False, "c-decree": False, "c-dv": False, "c-other": True, "c-long": True,
                     "c-none": False}
