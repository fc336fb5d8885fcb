"""Who is told where, from the directory file (demo/directory.json's shape):

  providers[].duty_contact     {"email", "phone", "webhook_url", "language"}: the provider's duty desk
  supervisors[]                {"province_code", "supervisor_ids": [...], "duty_contact": {...}}: a
                               province's supervisors' duty contact (the ids are kept but grant nothing:
                               a supervisor reads the feeds of the provinces in their token)
  case_workers[]               {"case_worker_id", "province_code", "contact": {...}}

Everyone may be left out: a recipient the directory does not know still gets the in-app feed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from notifications.domain.commands import LoadDirectory, Recipient
from notifications.domain.messages import Language, Role
from refnet_platform.errors import InvalidArgument


def load_directory_file(path: Path) -> LoadDirectory:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InvalidArgument("directory_file", f"cannot read {path}: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidArgument("directory_file", "expected a JSON object with providers, supervisors, case_workers")
    recipients: list[Recipient] = []
    members: list[tuple[str, str]] = []
    for i, p in enumerate(data.get("providers") or ()):
        recipients.append(_recipient(Role.PROVIDER, p, "provider_id", "duty_contact", f"providers[{i}]"))
    for i, s in enumerate(data.get("supervisors") or ()):
        where = f"supervisors[{i}]"
        recipients.append(_recipient(Role.SUPERVISOR, s, "province_code", "duty_contact", where))
        members.extend((str(sid), str(s["province_code"])) for sid in s.get("supervisor_ids") or ())
    for i, c in enumerate(data.get("case_workers") or ()):
        recipients.append(_recipient(Role.CASE_WORKER, c, "case_worker_id", "contact", f"case_workers[{i}]"))
    return LoadDirectory(tuple(recipients), tuple(members))


def _recipient(role: Role, entry: Mapping[str, Any], id_key: str, contact_key: str, where: str) -> Recipient:
    if not isinstance(entry, Mapping) or not entry.get(id_key):
        raise InvalidArgument(f"{where}.{id_key}", "is required")
    contact = entry.get(contact_key) or {}
    if not isinstance(contact, Mapping):
        raise InvalidArgument(f"{where}.{contact_key}", "must be an object")
    return Recipient(
        role=role, recipient_id=str(entry[id_key]), language=Language.parse(contact.get("language")),
        email=str(contact.get("email") or ""), phone=str(contact.get("phone") or ""),
        webhook_url=str(contact.get("webhook_url") or ""), province_code=str(entry.get("province_code") or ""),
        sector=str(entry.get("sector") or ""),
    )
