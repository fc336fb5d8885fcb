"""intake: a consent's legal basis becomes a code (LegalBasis) instead of free text kept in clear, with an optional
note sealed under the case's key in the new table `consent_notes` (erased with the case).

Existing texts are read for the provision they cite (the Law on Children, Decree 56/2017, the domestic violence
and anti-trafficking laws, an emergency, an authority's decision); the code replaces the text in `consents`
and in the audit log's override entries (the one rewrite of the audit log, by its owner, with its triggers
held off for it). A text that is more than a recognised citation is kept as the consent's note: `pending`, in
clear only until intake-api, which holds the master key, seals it at its next start. This migration runs
without the master key (the migration Job has none).

Revision ID: erasure_0006
"""

import re

import sqlalchemy as sa
from alembic import op

revision = "erasure_0006"
down_revision = "lease_relay"

APPEND_ONLY = "audit_log is append-only"  # as 0002 made the triggers

# First match wins: (pattern on the lower-cased text, code).
CITATIONS = (
    (r"56/2017", "decree_56_2017"),
    (r"trẻ em|tre em|children", "children_law_2016"),
    (r"bạo lực gia đình|bao luc gia dinh|domestic violence", "domestic_violence_law_2022"),
    (r"mua bán người|mua ban nguoi|trafficking", "anti_trafficking_law_2024"),
    (r"khẩn cấp|khan cap|emergency|tính mạng|vital", "vital_interest_emergency"),
    (r"tòa án|toa an|court|quyết định|quyet dinh|decision", "authority_decision"),
)
# What a bare citation may contain besides the words matched: article numbers, years, punctuation.
BARE = re.compile(r"^[\w\s.,;:/()\-\u2013]*$")
CODES = {code for _, code in CITATIONS} | {"other"}


def code_for(text: str) -> str:
    lowered = text.lower()
    for pattern, code in CITATIONS:
        if re.search(pattern, lowered):
            return code
    return "other"


def keep_as_note(text: str, code: str) -> bool:
    """A text is kept (to be sealed) unless it is a short citation its code says all of."""
    return code == "other" or len(text) > 80 or not BARE.match(text)


def upgrade() -> None:
    op.create_table(
        "consent_notes",
        sa.Column("consent_id", sa.String(36), primary_key=True),
        sa.Column("case_id", sa.String(36), nullable=False, index=True),
        sa.Column("sealed", sa.LargeBinary, nullable=True),
        sa.Column("pending", sa.String(300), nullable=True),
    )
    bind = op.get_bind()
    rows = bind.execute(sa.text("SELECT consent_id, case_id, legal_basis FROM consents WHERE legal_basis <> ''"))
    codes: dict[str, str] = {}
    for consent_id, case_id, text in rows.fetchall():
        if text in CODES:
            continue  # already a code
        code = codes[text] = code_for(text)
        bind.execute(sa.text("UPDATE consents SET legal_basis = :code WHERE consent_id = :id"),
                     {"code": code, "id": consent_id})
        if keep_as_note(text, code):
            bind.execute(sa.text("INSERT INTO consent_notes (consent_id, case_id, pending) VALUES (:c, :k, :t)"),
                         {"c": consent_id, "k": case_id, "t": text})
    if codes:
        _rewrite_audit_details(bind, codes)


def _rewrite_audit_details(bind: sa.Connection, codes: dict[str, str]) -> None:
    """The overrides' audit entries carried the text: they carry the code now."""
    postgres = bind.dialect.name == "postgresql"
    if postgres:
        op.execute("ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only")
    else:
        op.execute("DROP TRIGGER audit_log_no_update")
    for text, code in codes.items():
        bind.execute(sa.text("UPDATE audit_log SET detail = :code WHERE action = 'consent_override' AND detail = :t"),
                     {"code": code, "t": text})
    if postgres:
        op.execute("ALTER TABLE audit_log ENABLE TRIGGER audit_log_append_only")
    else:
        op.execute("CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log "
                   f"BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY}'); END")


def downgrade() -> None:
    raise NotImplementedError("refnet migrations roll forward only")
