"""One sealing for every row a case's key protects (a consent's legal-basis note, case work's notes and details):
rows sealed before it was one still open, and a ciphertext moved to another row or case does not."""

from __future__ import annotations

import json

import pytest
from cryptography.exceptions import InvalidTag

from intake.adapters.crypto import Vault

CASE_KEY = bytes(range(32))
# Sealed under CASE_KEY by the code before (Vault.seal_note and Vault.seal_record): stored rows look like this.
OLD_NOTE = bytes.fromhex("8259124be055611c656644d258e3f2604b771997b3137a376a369dc22e8c6a133d403e0e7ce56cbc40387790cc"
                         "405d959bc7ea")
OLD_RECORD = bytes.fromhex("f686c3f6b440ef6d4095cd70c8c76b6f13d1037fd9e0c24bed4ec1ce74db8b3fd1c6e75960e49eb7d4a8177c"
                           "2883610ff7b8aef9c4e5e3c6d03d524cc9f6771f7a0e97")


def test_rows_sealed_before_still_open() -> None:
    assert Vault.open_row(CASE_KEY, "case-1", "consent-1", OLD_NOTE).decode() == "Điều 14: court order"
    assert json.loads(Vault.open_row(CASE_KEY, "case-1", "note-1", OLD_RECORD)) == {"text": "Chị ấy an toàn", "n": 1}


def test_a_sealed_row_opens_only_as_its_own_row_of_its_own_case() -> None:
    sealed = Vault.seal_row(CASE_KEY, "case-1", "goal-1", "ở nhà chị gái".encode())
    assert Vault.open_row(CASE_KEY, "case-1", "goal-1", sealed).decode() == "ở nhà chị gái"
    for case_id, row_id in (("case-1", "goal-2"), ("case-2", "goal-1")):
        with pytest.raises(InvalidTag):
            Vault.open_row(CASE_KEY, case_id, row_id, sealed)
