"""Per-case keys (AES-256-GCM) wrapped by a master key: erasing a case destroys its key.

Each wrapped key is stored with the id of the master key that wrapped it, so the master key can be
rotated: the vault wraps with the current key and unwraps with whichever configured key the row names.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
from collections.abc import Sequence
from dataclasses import asdict, fields
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from intake.domain.model import Contact, SafeTime
from refnet_platform.phone import normalise_phone

PHONE_KEY_INFO = b"refnet intake: survivor phone lookup v1"

NONCE_BYTES = 12


class MasterKeyError(Exception):
    pass


def load_master_key(value: str | None, path: Path | None) -> bytes:
    raw = path.read_text().strip() if path else value
    if not raw:
        raise MasterKeyError("no master key: set INTAKE_MASTER_KEY or INTAKE_MASTER_KEY_FILE (base64, 32 bytes)")
    return _decode(raw, str(path) if path else "INTAKE_MASTER_KEY")


def load_previous_keys(values: str | None, directory: Path | None) -> list[bytes]:
    """INTAKE_PREVIOUS_MASTER_KEYS (comma-separated) and every file in INTAKE_PREVIOUS_MASTER_KEYS_DIR, one
    key each. Hidden entries are skipped: a mounted Kubernetes Secret keeps its own `..data` there."""
    keys = [_decode(raw.strip(), f"INTAKE_PREVIOUS_MASTER_KEYS[{n}]")
            for n, raw in enumerate((values or "").split(",")) if raw.strip()]
    if directory is not None:
        if not directory.is_dir():
            raise MasterKeyError(f"INTAKE_PREVIOUS_MASTER_KEYS_DIR: {directory} is not a directory")
        for path in sorted(directory.iterdir()):
            if not path.name.startswith(".") and path.is_file():
                keys.append(_decode(path.read_text().strip(), str(path)))
    return keys


def _decode(raw: str, source: str) -> bytes:
    """The key in `raw`; errors name its source, never its content."""
    try:
        key = base64.b64decode(raw)
    except binascii.Error:
        key = b""
    if len(key) != 32:
        raise MasterKeyError(f"{source}: a master key must be 32 bytes (AES-256), base64-encoded")
    return key


# Her contact as sealed: sms_stopped is recorded beside the sealed data, from her texts.
_SEALED_CONTACT_FIELDS = tuple(f.name for f in fields(Contact) if f.name != "sms_stopped")


def key_id(master_key: bytes) -> str:
    """Names a master key without revealing it: the first 8 bytes of its SHA-256, in hex."""
    return hashlib.sha256(master_key).hexdigest()[:16]


def generate_key_b64() -> str:
    return base64.b64encode(AESGCM.generate_key(bit_length=256)).decode()


def _seal(key: bytes | AESGCM, plaintext: bytes, associated: bytes) -> bytes:
    nonce = os.urandom(NONCE_BYTES)
    return nonce + (key if isinstance(key, AESGCM) else AESGCM(key)).encrypt(nonce, plaintext, associated)


def _open(key: bytes | AESGCM, sealed: bytes, associated: bytes) -> bytes:
    cipher = key if isinstance(key, AESGCM) else AESGCM(key)
    return cipher.decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], associated)


class Vault:
    """Wraps case keys with the current master key; unwraps with it or any previous one."""

    def __init__(self, master_key: bytes, previous: Sequence[bytes] = ()) -> None:
        self.key_id = key_id(master_key)
        # The current key first: a row without a key id most likely opens with it. Each master key's cipher and
        # phone lookup key are made once, not per case.
        self._keys = {self.key_id: AESGCM(master_key)} | {key_id(key): AESGCM(key) for key in previous}
        self._master = self._keys[self.key_id]
        self._lookup_keys = [_lookup_key(master_key)] + [_lookup_key(key) for key in previous]

    @property
    def key_ids(self) -> list[str]:
        """Every configured master key's id, the current one first."""
        return list(self._keys)

    def new_case_key(self, case_id: str) -> tuple[bytes, str, bytes]:
        """(case key, the current master key's id, the case key wrapped by it, bound to the case id)."""
        key = AESGCM.generate_key(bit_length=256)
        return key, *self.wrap(case_id, key)

    def wrap(self, case_id: str, case_key: bytes) -> tuple[str, bytes]:
        """(the current master key's id, `case_key` wrapped by it, bound to the case id)."""
        return self.key_id, _seal(self._master, case_key, case_id.encode())

    def unwrap(self, case_id: str, wrapped: bytes, wrapped_by: str | None) -> bytes:
        """The case key, unwrapped by the master key whose id is `wrapped_by`. None: wrapped before key ids
        were recorded, by the current key or (once that changed) one it replaced: GCM's tag tells which."""
        if wrapped_by is not None:
            master = self._keys.get(wrapped_by)
            if master is None:
                raise MasterKeyError(f"master key {wrapped_by} is not configured: add it to "
                                     "INTAKE_PREVIOUS_MASTER_KEYS_DIR (or INTAKE_PREVIOUS_MASTER_KEYS)")
            return _open(master, wrapped, case_id.encode())
        for master in self._keys.values():
            try:
                return _open(master, wrapped, case_id.encode())
            except InvalidTag:
                continue
        raise MasterKeyError("no configured master key opens this case key (it has no key id)")

    def phone_key(self, phone: str) -> str:
        """Her number as the current master key's keyed hash ("" for no number): what finds her case from a
        text (STOP) without the number being stored anywhere but her encrypted contact."""
        return _phone_key(self._lookup_keys[0], phone)

    def phone_keys(self, phone: str) -> list[str]:
        """The number's hash under every configured master key (a case recorded before a rotation is found)."""
        return [k for k in (_phone_key(lookup, phone) for lookup in dict.fromkeys(self._lookup_keys)) if k]

    def rewrap(self, case_id: str, wrapped: bytes, wrapped_by: str | None) -> tuple[str, bytes]:
        """The case key wrapped by the current master key instead: the data it seals is not touched."""
        return self.wrap(case_id, self.unwrap(case_id, wrapped, wrapped_by))

    @staticmethod
    def seal_personal_data(case_key: bytes, case_id: str, contact: Contact, narrative: str) -> bytes:
        # As asdict() would give it, without its deep copy of every string: each field but sms_stopped.
        data: dict[str, object] = {name: getattr(contact, name) for name in _SEALED_CONTACT_FIELDS}
        data["safe_times"] = [asdict(t) for t in contact.safe_times]
        data["narrative"] = narrative
        return _seal(case_key, json.dumps(data, ensure_ascii=False).encode(), case_id.encode())

    @staticmethod
    def open_personal_data(case_key: bytes, case_id: str, sealed: bytes) -> tuple[Contact, str]:
        data = json.loads(_open(case_key, sealed, case_id.encode()))
        narrative = data.pop("narrative")
        # Sealed before safe times were recorded: none.
        times = tuple(SafeTime(tuple(t["weekdays"]), t["start"], t["end"]) for t in data.pop("safe_times", ()))
        return Contact(**data, safe_times=times), narrative

    @staticmethod
    def seal_row(case_key: bytes, case_id: str, row_id: str, data: bytes) -> bytes:
        """What a row of the case keeps (a consent's legal-basis note; case work's note, goal or assessment's
        details), bound to its case and row ("<case>/<row>"): a ciphertext moved to another row or case does not
        open."""
        return _seal(case_key, data, f"{case_id}/{row_id}".encode())

    @staticmethod
    def open_row(case_key: bytes, case_id: str, row_id: str, sealed: bytes) -> bytes:
        return _open(case_key, sealed, f"{case_id}/{row_id}".encode())


def _lookup_key(master: bytes) -> bytes:
    return hmac.new(master, PHONE_KEY_INFO, hashlib.sha256).digest()  # never the master key itself


def _phone_key(lookup_key: bytes, phone: str) -> str:
    number = normalise_phone(phone)
    if not number:
        return ""
    return hmac.new(lookup_key, number.encode(), hashlib.sha256).hexdigest()


_NO_MASTER_KEY = "this process holds no master key: only intake-api reads or writes personal data"


class NoMasterKey(Vault):
    """The vault of a process that never reads or writes personal data (intake-worker only records referral
    progress): it holds no master key (on Kubernetes only intake-api mounts it), and any use fails here."""

    def __init__(self) -> None:
        super().__init__(bytes(32))
        self._keys = {}

    def wrap(self, case_id: str, case_key: bytes) -> tuple[str, bytes]:
        raise MasterKeyError(_NO_MASTER_KEY)

    def unwrap(self, case_id: str, wrapped: bytes, wrapped_by: str | None) -> bytes:
        raise MasterKeyError(_NO_MASTER_KEY)

    def phone_key(self, phone: str) -> str:
        raise MasterKeyError(_NO_MASTER_KEY)

    def phone_keys(self, phone: str) -> list[str]:
        raise MasterKeyError(_NO_MASTER_KEY)
