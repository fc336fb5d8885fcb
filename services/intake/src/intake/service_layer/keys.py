"""The master key's rotation: every case key re-wrapped under the current master key, one transaction per
batch, so a crash leaves each row either as it was (old key, old id) or re-wrapped (current key, its id).
Only the case keys change: the personal data they seal is not re-encrypted."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag

from intake.adapters.crypto import MasterKeyError
from intake.service_layer.unit_of_work import IntakeUnitOfWork
from refnet_platform.unit_of_work import crash_point

UowFactory = Callable[[], IntakeUnitOfWork]


@dataclass(frozen=True)
class KeyStatus:
    current: str
    configured: list[str]  # current first
    # Case keys per master key id; None: wrapped before ids were recorded.
    counts: dict[str | None, int]
    erased: int

    @property
    def left(self) -> int:
        """Case keys not yet under the current master key."""
        return sum(count for key_id, count in self.counts.items() if key_id != self.current)

    @property
    def unknown(self) -> dict[str, int]:
        """Case keys under a master key that is not configured: unreadable until it is."""
        return {key_id: n for key_id, n in self.counts.items() if key_id is not None and key_id not in self.configured}


def key_status(uow: UowFactory) -> KeyStatus:
    with uow().reading() as work:
        return KeyStatus(work.vault.key_id, work.vault.key_ids, work.cases.key_counts(), work.cases.erased_count())


def rotate(uow: UowFactory, batch_size: int, progress: Callable[[int, int], None]) -> int:
    """Re-wraps every case key not under the current master key; returns how many. Erased cases have no key
    left and are skipped. Run again after a failure: it picks up what is left."""
    status = key_status(uow)
    if status.unknown:
        named = ", ".join(f"{key_id} ({n} case keys)" for key_id, n in sorted(status.unknown.items()))
        raise MasterKeyError(f"not configured: master key {named}; add it to INTAKE_PREVIOUS_MASTER_KEYS_DIR "
                             "(or INTAKE_PREVIOUS_MASTER_KEYS) first. Nothing was re-wrapped.")
    done, after = 0, ""
    while True:
        with uow() as work:
            batch = work.cases.keys_to_rewrap(after, batch_size)
            if not batch:
                return done
            for case_id, wrapped, wrapped_by in batch:
                try:
                    key_id, rewrapped = work.vault.rewrap(case_id, wrapped, wrapped_by)
                except MasterKeyError as exc:
                    raise MasterKeyError(f"case {case_id}: {exc}") from exc
                except InvalidTag as exc:
                    raise MasterKeyError(f"case {case_id}: its case key does not open with master key {wrapped_by}"
                                         ) from exc
                work.cases.set_wrapped_key(case_id, key_id, rewrapped)
                if done:  # REFNET_CRASH_AT=intake_keys.mid_batch: dies with one batch committed, this one not
                    crash_point("intake_keys.mid_batch")
            work.commit()
        done += len(batch)
        after = batch[-1][0]
        progress(done, max(status.left, done))


def index_phones(uow: UowFactory, batch_size: int, progress: Callable[[int, int], None]) -> int:
    """Every case's number hashed under the current master key (contact_phones), so a text from her (STOP) finds
    her case: for cases registered before the hashes were kept, and after a rotation (before a previous key is
    removed). Idempotent; returns how many hashes were added. Progress: (cases seen, hashes added)."""
    seen, added, after = 0, 0, ""
    while True:
        with uow() as work:
            batch = work.cases.keyed_cases(after, batch_size)
            if not batch:
                return added
            for case_id in batch:
                personal = work.cases.read_personal_data(case_id)
                if personal is not None and personal[0].phone:
                    added += work.cases.index_phone(case_id, personal[0].phone)
            work.commit()
        seen += len(batch)
        after = batch[-1]
        progress(seen, added)
