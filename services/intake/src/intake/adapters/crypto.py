"""Per-case keys (AES-256-GCM) wrapped by a master key: erasing a case destroys its key."""

from __future__ import annotations

import base64
import json
import os
from dataclasses import asdict
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from intake.domain.model import Contact, SafeTime

NONCE_BYTES = 12


class MasterKeyError(Exception):
    pass


def load_master_key(value: str | None, path: Path | None) -> bytes:
    raw = path.read_text().strip() if path else value
    if not raw:
        raise MasterKeyError("no master key: set INTAKE_MASTER_KEY or INTAKE_MASTER_KEY_FILE (base64, 32 bytes)")
    key = base64.b64decode(raw)
    if len(key) != 32:
        raise MasterKeyError("the master key must be 32 bytes (AES-256), base64-encoded")
    return key


def generate_key_b64() -> str:
    return base64.b64encode(AESGCM.generate_key(bit_length=256)).decode()


def _seal(key: bytes, plaintext: bytes, associated: bytes) -> bytes:
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, associated)


def _open(key: bytes, sealed: bytes, associated: bytes) -> bytes:
    return AESGCM(key).decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], associated)


class Vault:
    def __init__(self, master_key: bytes) -> None:
        self._master = master_key

    def new_case_key(self, case_id: str) -> tuple[bytes, bytes]:
        """(case key, the same key wrapped by the master key, bound to the case id)."""
        key = AESGCM.generate_key(bit_length=256)
        return key, _seal(self._master, key, case_id.encode())

    def unwrap(self, case_id: str, wrapped: bytes) -> bytes:
        return _open(self._master, wrapped, case_id.encode())

    @staticmethod
    def seal_personal_data(case_key: bytes, case_id: str, contact: Contact, narrative: str) -> bytes:
        data = {**asdict(contact), "narrative": narrative}
        return _seal(case_key, json.dumps(data, ensure_ascii=False).encode(), case_id.encode())

    @staticmethod
    def open_personal_data(case_key: bytes, case_id: str, sealed: bytes) -> tuple[Contact, str]:
        data = json.loads(_open(case_key, sealed, case_id.encode()))
        narrative = data.pop("narrative")
        # Sealed before safe times were recorded: none.
        times = tuple(SafeTime(tuple(t["weekdays"]), t["start"], t["end"]) for t in data.pop("safe_times", ()))
        return Contact(**data, safe_times=times), narrative
