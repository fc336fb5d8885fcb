"""SQL errors carry no bound values: a failed statement's message (what a log line or a dead letter's reason
holds) names the SQL, never the survivor data it was given. On SQLite and on PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import Column, MetaData, String, Table, insert
from sqlalchemy.exc import IntegrityError

from refnet_platform.engine import make_engine

pytestmark = pytest.mark.integration

metadata = MetaData()
contacts = Table("contacts", metadata, Column("contact_id", String(40), primary_key=True),
                 Column("phone", String(40), nullable=False))
PHONE = "+84 912 345 678"


def test_a_failing_statement_error_has_no_parameter_values(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        with engine.begin() as conn:
            metadata.create_all(conn)
            conn.execute(insert(contacts).values(contact_id="c-1", phone=PHONE))
        with pytest.raises(IntegrityError) as failed, engine.begin() as conn:
            conn.execute(insert(contacts).values(contact_id="c-1", phone=PHONE))  # the same key again
        error = str(failed.value)
        assert "INSERT INTO contacts" in error and "parameters hidden" in error
        assert PHONE not in error and PHONE not in repr(failed.value)
    finally:
        engine.dispose()
