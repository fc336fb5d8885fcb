"""The operator workspace's pure parts: the choices its forms offer, place search and resolution over the 2025
map (old names mapped), and the forms' values → the intake api's requests, each problem named by its form field.

Forms post one value per field; a field with several (checkboxes: `types`, `needs`, `consents`, `safe_days`) is
kept as one comma-joined value (`flat_values`), so a form re-rendered after a failed submit, or kept across a
re-sign-in (`keep_for_after_sign_in` keeps strings), comes back whole.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

import refnet_geo as geo
from refnet.intake.v1 import intake_service_pb2 as intake_pb
from refnet.intake.v1 import types_pb2 as intake_types
from refnet_geo._text import words
from web.adapters.apis import Problem
from web.i18n import translate

CHANNELS = (2, 1, 3, 4, 5)  # provincial hotline first: the usual one
TOPICS = (1, 2, 3, 4, 5, 6, 7, 8)
OUTCOMES = (1, 2, 3, 6, 7, 4)  # "case opened" is the "save and open a case" button's
CASE_TYPES = tuple(range(1, 19))  # refnet.common.v1.CaseType: 10-18 the Social Work Centres' wider caseload
RISKS = (1, 2, 3)
SEXES = (1, 2, 3, 0)
GIVERS = (2, 3)
LEGAL_BASES = (1, 2, 3, 4, 5, 6, 7)  # intake.v1.LegalBasis; 7 (OTHER) needs the note
WEEKDAYS = (1, 2, 3, 4, 5, 6, 7)
# Services by the slug the case form uses for them (checkbox values), in the order they are shown.
SERVICES: dict[str, int] = {"police": 1, "medical": 2, "legal_aid": 3, "shelter": 4, "psychosocial": 5,
                            "social_protection": 6, "welfare_access": 7, "mental_health": 8, "civil_registration": 9,
                            "education": 10, "vocational_training": 11, "family_tracing": 12,
                            "perpetrator_counselling": 13}
SERVICE_SLUG = {number: slug for slug, number in SERVICES.items()}
LIST_FIELDS = frozenset({"types", "needs", "consents", "safe_days"})
CASE_FIELDS = frozenset({"place", "is_child", "age", "sex", "types", "risk", "danger", "needs", "consents",
                         "consent_giver", "legal_basis", "legal_basis_note", "contact_name", "phone", "phone_safe",
                         "safe_days", "safe_start", "safe_end", "safe_note", "narrative", "client_request_id",
                         "call_channel", "call_topic", "call_started"})
CALL_FIELDS = frozenset({"channel", "topic", "outcome", "province", "anonymous", "client_request_id", "started"})
PHONE = re.compile(r"^\+?[0-9][0-9 .()-]{2,24}$")  # intake's own rule
HH_MM = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]$")
CHILD_DATA = ("name", "phone", "safe_contact")
MAX_CALL_SECONDS = 4 * 3600


def problem(field_name: str | None, key: str, status: int = 400, **params: str) -> Problem:
    """A problem in both languages from the catalog, shown next to `field_name`."""
    return Problem(field_name, translate("vi", key, **params), translate("en", key, **params), status)


def flat_values(lists: Mapping[str, list[str]]) -> dict[str, str]:
    """One string per field: the last value, or every value comma-joined for the checkbox lists."""
    return {name: ",".join(v for v in values if v) if name in LIST_FIELDS else values[-1]
            for name, values in lists.items() if values}


def listed(values: Mapping[str, str], name: str) -> list[str]:
    return [v for v in str(values.get(name, "")).split(",") if v]


def checked(values: Mapping[str, str], name: str) -> bool:
    return str(values.get(name, "")).lower() in ("1", "on", "true", "yes")


def _int(text: str | None) -> int | None:
    try:
        return int(str(text).strip())
    except (TypeError, ValueError):
        return None


# Places: the 2025 units, old names accepted.

@dataclass(frozen=True)
class Place:
    """A place the case form accepts: a 2025 province, or a 2025 commune (reached by its own name or an old
    unit's). `value` is what the field holds when chosen ("Phường Bãi Cháy, Quảng Ninh")."""

    province_code: str
    commune_code: str
    value: str
    old_name: str = ""

    @property
    def label(self) -> str:
        return f"{self.old_name} → {self.value}" if self.old_name else self.value


@dataclass(frozen=True)
class _Entry:
    key: str  # the name's words, accents dropped, joined by spaces ("bai chay")
    place: Place
    rank: int  # 0 a province, 1 a 2025 commune, 2 an old commune, 3 an old province


_KIND_WORDS = {"xa", "phuong", "thi", "tran", "dac", "khu", "tinh", "thanh", "pho", "tp"}


def _key(name: str) -> str:
    parts = words(name)
    while len(parts) > 1 and parts[0] in _KIND_WORDS:
        parts = parts[1:]
    return " ".join(parts)


@functools.cache
def _index() -> tuple[_Entry, ...]:
    from refnet_geo import _data

    current = _data.current_map()
    entries: list[_Entry] = []
    for province in current.provinces.values():
        entries.append(_Entry(_key(province.name), Place(province.code, "", province.name), 0))
    for commune in current.communes.values():
        province = current.provinces[commune.parent_code or ""]
        entries.append(_Entry(_key(commune.name),
                              Place(province.code, commune.code, f"{commune.name}, {province.name}"), 1))
    legacy = _data.legacy_map()
    successors = _data.legacy_provinces()
    for old in legacy.communes.values():
        targets = legacy.commune_successors.get(old.code)
        if not targets:
            continue
        new = current.communes[targets[0]]
        province = current.provinces[new.parent_code or ""]
        if _key(old.name) == _key(new.name):
            continue  # the same name lives on: the 2025 entry answers
        entries.append(_Entry(_key(old.name), Place(province.code, new.code, f"{new.name}, {province.name}",
                                                    old_name=old.name), 2))
    for old_code, new_code in successors.successor.items():
        old_province = successors.provinces[old_code]
        if old_code != new_code:
            new_province = current.provinces[new_code]
            entries.append(_Entry(_key(old_province.name), Place(new_code, "", new_province.name,
                                                                 old_name=old_province.name), 3))
    return tuple(entries)


def search_places(query: str, limit: int = 10) -> list[Place]:
    """Places whose name starts with (then contains) what was typed, accents and case ignored; "Bãi Cháy, Quảng
    Ninh" narrows to that province. 2025 units before old names; nothing for under two letters."""
    name, _, province_text = query.partition(",")
    key = _key(name)
    if len(key.replace(" ", "")) < 2:
        return []
    province_code = _province_code(province_text) if province_text.strip() else None
    starts: list[_Entry] = []
    contains: list[_Entry] = []
    for entry in _index():
        if province_code is not None and entry.place.province_code != province_code:
            continue
        if entry.key.startswith(key):
            starts.append(entry)
        elif f" {key}" in f" {entry.key}":
            contains.append(entry)
    ordered = sorted(starts, key=lambda e: (e.rank, len(e.key), e.place.value)) + \
        sorted(contains, key=lambda e: (e.rank, e.place.value))
    seen: set[str] = set()
    found: list[Place] = []
    for entry in ordered:
        if entry.place.label not in seen:
            seen.add(entry.place.label)
            found.append(entry.place)
        if len(found) >= limit:
            break
    return found


def _province_code(text: str) -> str | None:
    try:
        return geo.province_by_name(text).code
    except geo.GeoError:
        return None


def resolve_place(text: str, field_name: str = "place") -> Place:
    """The place typed in the case form: "commune, province", a commune's name alone when only one province has
    it, or a province's name; old names map to their 2025 unit. Raises PlaceProblem naming the field."""
    typed = " ".join(text.split())
    if not typed:
        raise PlaceProblem(problem(field_name, "op.place.required"))
    name, _, province_text = typed.partition(",")
    province_text = province_text.strip()
    if province_text:
        province_code = _province_code(province_text)
        if province_code is None:
            raise PlaceProblem(problem(field_name, "op.place.unknown", text=typed))
    else:
        province_code = None
    if province_code is None:
        whole = _province_code(name)
        if whole is not None:  # a province's name (or an old province's) alone means the province
            return Place(whole, "", geo.resolve_province(whole).name)
    key = _key(name)
    exact = [e for e in _index() if e.key == key and e.rank in (1, 2)
             and (province_code is None or e.place.province_code == province_code)]
    communes = {e.place.commune_code: e.place for e in sorted(exact, key=lambda e: e.rank)}
    if len(communes) == 1:
        return next(iter(communes.values()))
    if len(communes) > 1:
        # Prefer the 2025 name over an old one that happens to read the same.
        current = {e.place.commune_code: e.place for e in exact if e.rank == 1}
        if len(current) == 1:
            return next(iter(current.values()))
        example = next(iter(communes.values())).value
        raise PlaceProblem(problem(field_name, "op.place.ambiguous", text=typed, example=example))
    if province_code is not None and (not name.strip() or _province_code(name) == province_code):
        return Place(province_code, "", geo.resolve_province(province_code).name)
    raise PlaceProblem(problem(field_name, "op.place.unknown", text=typed))


class PlaceProblem(Exception):
    def __init__(self, found: Problem) -> None:
        super().__init__(found.message_en)
        self.problem = found


# Forms → requests.

@dataclass
class Built:
    """A request built from a form, or the problems that kept it from being built (by form field)."""

    request: object | None
    errors: dict[str, Problem] = field(default_factory=dict)
    place: Place | None = None


def call_request(values: Mapping[str, str], provinces: Iterable[str], request_id: str,
                 now: datetime) -> Built:
    """LogCall from the call form. `provinces`: the operator's remit (a single province is the default)."""
    errors: dict[str, Problem] = {}
    remit = sorted(provinces)
    province = values.get("province") or (remit[0] if len(remit) == 1 and remit[0] != "*" else "")
    if not province:
        errors["province"] = problem("province", "op.err.province")
    channel, topic, outcome = (_int(values.get(n)) for n in ("channel", "topic", "outcome"))
    for name, number, allowed in (("channel", channel, CHANNELS), ("topic", topic, TOPICS),
                                  ("outcome", outcome, OUTCOMES)):
        if number not in allowed:
            errors[name] = problem(name, "op.err.required")
    if errors:
        return Built(None, errors)
    details = intake_pb.CallDetails(channel=channel, topic=topic, anonymous=checked(values, "anonymous"))
    _call_times(details, values.get("started"), now)
    return Built(intake_pb.LogCallRequest(client_request_id=request_id, province_code=province, call=details,
                                          outcome=outcome))


def _call_times(details: intake_pb.CallDetails, started: str | None, now: datetime) -> None:
    """The call began when its form was opened (epoch seconds in a hidden field); it lasted until now."""
    began = _int(started)
    if began is None or began <= 0 or began > now.timestamp():
        return
    details.started_at.FromSeconds(began)
    details.duration_seconds = min(int(now.timestamp()) - began, MAX_CALL_SECONDS)


def case_request(values: Mapping[str, str], request_id: str, now: datetime) -> Built:
    """RegisterCase from the case form; every problem named by the form's field."""
    errors: dict[str, Problem] = {}
    place: Place | None = None
    try:
        place = resolve_place(values.get("place", ""))
    except PlaceProblem as exc:
        errors["place"] = exc.problem

    is_child = checked(values, "is_child")
    age_text = str(values.get("age", "")).strip()
    age = _int(age_text) if age_text else 0
    if age is None or not 0 <= age <= 120:
        errors["age"] = problem("age", "op.err.age")
        age = 0
    elif age_text and is_child and age >= 18:
        errors["age"] = problem("age", "op.err.age_child")
    elif age_text and not is_child and age < 18:
        errors["age"] = problem("age", "op.err.age_adult")
    sex = _int(values.get("sex")) or 0

    types = [n for v in listed(values, "types") if (n := _int(v)) in CASE_TYPES]
    if not types:
        errors["types"] = problem("types", "op.err.types")
    risk = _int(values.get("risk"))
    if risk not in RISKS:
        errors["risk"] = problem("risk", "op.err.risk")

    needs = [s for s in listed(values, "needs") if s in SERVICES]
    consents = [s for s in listed(values, "consents") if s in SERVICES]
    if set(consents) - set(needs):
        errors["needs"] = problem("needs", "op.err.consent_without_need")
    giver = _int(values.get("consent_giver"))
    legal_basis = _int(values.get("legal_basis"))
    legal_basis_note = str(values.get("legal_basis_note", "")).strip()
    if is_child and consents:
        if giver not in GIVERS:
            errors["consent_giver"] = problem("consent_giver", "op.err.consent_giver")
        elif giver == intake_types.CONSENT_GIVER_CASE_WORKER and legal_basis not in LEGAL_BASES:
            errors["legal_basis"] = problem("legal_basis", "op.err.legal_basis")
        elif legal_basis == intake_types.LEGAL_BASIS_OTHER and not legal_basis_note:
            errors["legal_basis_note"] = problem("legal_basis_note", "op.err.legal_basis_note")

    phone = str(values.get("phone", "")).strip()
    if phone and not PHONE.match(phone):
        errors["phone"] = problem("phone", "op.err.phone")
    phone_safe = checked(values, "phone_safe")
    if phone_safe and not phone:
        errors["phone_safe"] = problem("phone_safe", "op.err.phone_safe")
    safe_times, time_errors = _safe_times(values)
    errors.update(time_errors)

    if errors:
        return Built(None, errors, place)
    assert place is not None and risk is not None
    request = intake_pb.RegisterCaseRequest(
        client_request_id=request_id, province_code=place.province_code, commune_code=place.commune_code,
        case_types=types, risk_level=risk,
        immediate_danger=checked(values, "danger"),
        survivor=intake_pb.Survivor(is_child=is_child, age=age, sex=sex),
        contact=intake_pb.Contact(name=str(values.get("contact_name", "")).strip(), phone=phone,
                                  phone_is_safe=phone_safe,
                                  safe_contact_note=str(values.get("safe_note", "")).strip(),
                                  safe_times=safe_times),
        narrative=str(values.get("narrative", "")).strip())
    if checked(values, "no_reporting"):  # left out of every figure of the indicator reports
        request.reporting_consent = False
    for slug in needs:
        need = request.needs.add(service_type=SERVICES[slug])
        if slug not in consents:
            continue
        if is_child:
            need.consent.CopyFrom(intake_pb.Consent(
                given_by=giver, data_categories=CHILD_DATA,
                legal_basis_code=legal_basis if giver == intake_types.CONSENT_GIVER_CASE_WORKER else 0,
                legal_basis_note=legal_basis_note if giver == intake_types.CONSENT_GIVER_CASE_WORKER else ""))
        else:
            need.consented = True
    channel, topic = _int(values.get("call_channel")), _int(values.get("call_topic"))
    if channel in CHANNELS and topic in TOPICS:  # opened from the call form: the call is logged with it
        request.call.CopyFrom(intake_pb.CallDetails(channel=channel, topic=topic, anonymous=True))
        _call_times(request.call, values.get("call_started"), now)
    return Built(request, {}, place)


def _safe_times(values: Mapping[str, str]) -> tuple[list[intake_types.SafeContactTime], dict[str, Problem]]:
    start = str(values.get("safe_start", "")).strip()
    end = str(values.get("safe_end", "")).strip()
    days = sorted({n for v in listed(values, "safe_days") if (n := _int(v)) in WEEKDAYS})
    if not start and not end:
        return [], {}
    errors: dict[str, Problem] = {}
    if not start or not end:
        errors["safe_end" if start else "safe_start"] = problem("safe_end" if start else "safe_start",
                                                                "op.err.time_pair")
        return [], errors
    if not HH_MM.match(start):
        errors["safe_start"] = problem("safe_start", "op.err.time")
    if end != "24:00" and not HH_MM.match(end):
        errors["safe_end"] = problem("safe_end", "op.err.time")
    elif start == end:
        errors["safe_end"] = problem("safe_end", "op.err.time_same")
    if errors:
        return [], errors
    return [intake_types.SafeContactTime(weekdays=days, start=start, end=end)], {}


# The apis' field names → the case form's.

_API_FIELDS = {
    "province_code": "place", "commune_code": "place", "district_code": "place", "case_types": "types",
    "risk_level": "risk", "survivor.age": "age", "survivor.is_child": "is_child", "survivor.age_band": "age",
    "survivor.sex": "sex", "contact.name": "contact_name", "contact.phone": "phone",
    "contact.phone_is_safe": "phone_safe", "contact.safe_contact_note": "safe_note", "contact.safe_times": "safe_start",
    "narrative": "narrative", "immediate_danger": "danger", "call.channel": "channel", "call.topic": "topic",
    "outcome": "outcome", "channel": "channel", "topic": "topic",
}
_INDEXED = re.compile(r"\[\d+\]")


def form_field(api_field: str | None) -> str | None:
    """The case or call form's field for a field an api named (`contact.phone` → `phone`,
    `needs[1].consent.legal_basis_code` → `legal_basis`, `contact.safe_times[0].end` → `safe_end`)."""
    if not api_field:
        return None
    plain = _INDEXED.sub("", api_field)
    if plain in _API_FIELDS:
        return _API_FIELDS[plain]
    if plain.startswith("contact.safe_times."):
        return {"start": "safe_start", "end": "safe_end", "weekdays": "safe_days"}.get(plain.rsplit(".", 1)[-1])
    if plain.startswith("needs."):
        last = plain.rsplit(".", 1)[-1]
        return {"given_by": "consent_giver", "legal_basis_code": "legal_basis", "legal_basis": "legal_basis",
                "legal_basis_note": "legal_basis_note"}.get(last, "needs")
    if plain.startswith("call."):
        return plain.rsplit(".", 1)[-1]
    return None


def ranked_for(request: intake_pb.RegisterCaseRequest) -> list[tuple[int, bool]]:
    """Each need of a built request: (service type, consented)."""
    return [(n.service_type, n.consented or n.HasField("consent")) for n in request.needs]
