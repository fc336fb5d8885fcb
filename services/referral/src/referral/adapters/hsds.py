"""The directory on disk: Open Referral HSDS 3.1 JSON in and out, and refnet's compact demo file in.

Export is one page of the HSDS `/services` list (`contents`: compiled services), each with its
organization, phone (the public contact point), schedules, service areas, location (a commune code,
never an address) and, for shelters, a `capacities` entry in beds (HSDS 3.1 `service_capacity`).
A shelter gets no location at all: where it is never leaves referral. refnet's own codes travel as
HSDS attributes with these taxonomies: refnet_service_type, refnet_sector, refnet_target_group,
refnet_sex, refnet_shelter (the shelter id), refnet_accessibility and vn_province_2025 (the provider's own province).

Import takes that same shape, or the compact `providers` list of demo/directory.json.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import refnet_geo as geo
from referral.domain.providers import AgeGroup, DirectoryEntry, DutyPhone, OpeningHours, Provider, shelter_eligibility
from refnet_platform.clock import system_clock
from refnet_platform.errors import InvalidArgument
from refnet_platform.phone import normalise_phone
from refnet_platform.vocabulary import ACCESSIBILITY_CODES, ServiceType, Sex, TargetGroup

DAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
ALL_WEEK = frozenset(range(1, 8))
ADMIN_CODE = "vn_admin_code_2025"
COMMUNE_CODE = "vn_commune_code_2025"
VIETNAM_UTC_OFFSET = 7
ADULT_AGE = 18

T_SERVICE, T_SECTOR, T_TARGET, T_SEX, T_SHELTER, T_PROVINCE = (
    "refnet_service_type", "refnet_sector", "refnet_target_group", "refnet_sex", "refnet_shelter", "vn_province_2025")
T_ACCESS = "refnet_accessibility"


def load_file(path: Path) -> list[Provider]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InvalidArgument("file", f"cannot read {path}: {exc}") from None
    return read(data)


def read(data: Any) -> list[Provider]:
    """HSDS (a service list page, or a bare list of services) or refnet's compact `providers` list."""
    if isinstance(data, dict) and "providers" in data:
        return [_from_compact(p, f"providers[{i}]") for i, p in enumerate(data["providers"])]
    services = data.get("contents") if isinstance(data, dict) else data
    if not isinstance(services, list):
        raise InvalidArgument("file", "expected an HSDS service list ({\"contents\": [...]}) or {\"providers\": [...]}")
    return [_from_hsds(s, f"contents[{i}]") for i, s in enumerate(services)]


def duty_phones(path: Path) -> list[DutyPhone]:
    """The providers' duty phones in refnet's compact file (`providers[].duty_contact.phone` and `.language`):
    whose texts answer for the provider. HSDS files carry none."""
    data = json.loads(path.read_text(encoding="utf-8"))
    found = []
    for i, p in enumerate(data.get("providers", ()) if isinstance(data, dict) else ()):
        contact = p.get("duty_contact") or {}
        if contact.get("phone"):
            phone = normalise_phone(str(contact["phone"]))
            if not phone:
                raise InvalidArgument(f"providers[{i}].duty_contact.phone", "is not a phone number")
            found.append(DutyPhone(phone, p["provider_id"], str(contact.get("language") or "vi")))
    return found


# --- the compact demo shape --------------------------------------------------------------------


def _from_compact(p: Mapping[str, Any], where: str) -> Provider:
    try:
        shelter = p.get("shelter") or {}
        eligibility = p.get("eligibility") or {}
        age, sexes, groups = AgeGroup.ANY, frozenset[Sex](), frozenset[TargetGroup]()
        if shelter:
            age, sexes, groups = shelter_eligibility(TargetGroup(shelter["target_group"]))
        if eligibility:
            age = AgeGroup(eligibility.get("age_group", age))
            sexes = frozenset(Sex(s) for s in eligibility.get("sexes", sexes))
            groups = frozenset(TargetGroup(t) for t in eligibility.get("target_groups", groups))
        organization = p.get("organization") or {}
        return _checked(Provider(
            provider_id=p["provider_id"], name=p["name"], sector=p["sector"],
            service_type=ServiceType(p["service_type"]), province_code=p["province_code"],
            # A shelter's place stays with the shelter service: referral routes shelters by province.
            commune_code="" if shelter else p.get("commune_code", ""), public_contact=p["public_contact"],
            open_24_7=bool(p.get("open_24_7", False)), shelter_id=shelter.get("shelter_id", ""),
            organization_id=organization.get("id", p["provider_id"]),
            organization_name=organization.get("name", p["name"]), description=p.get("description", ""),
            age_group=age, sexes=sexes, target_groups=groups, service_areas=frozenset(p.get("service_areas", ())),
            opening_hours=tuple(OpeningHours.parse(h["weekdays"], h["opens_at"], h["closes_at"])
                                for h in p.get("opening_hours", ())),
            beds_capacity=shelter.get("capacity"), active=bool(p.get("active", True)),
            accessibility=frozenset(p.get("accessibility", ()))), where)
    except KeyError as exc:
        raise InvalidArgument(f"{where}.{exc.args[0]}", "required") from None
    except ValueError as exc:
        raise InvalidArgument(where, str(exc)) from None


def _checked(provider: Provider, where: str) -> Provider:
    """Codes the routing relies on must be real 2025 codes."""
    try:
        geo.resolve_location(provider.province_code, provider.commune_code or None)
        for code in provider.service_areas:
            (geo.resolve_province if len(code) <= 2 else geo.resolve_commune)(code)
    except geo.GeoError as exc:
        raise InvalidArgument(f"{where}.{exc.field}", exc.problem) from None
    for code in sorted(provider.accessibility):
        if code not in ACCESSIBILITY_CODES:
            raise InvalidArgument(f"{where}.accessibility",
                                  f"{code!r}: must be one of {', '.join(ACCESSIBILITY_CODES)}")
    if provider.is_shelter and provider.beds_capacity is not None and provider.beds_capacity < 0:
        raise InvalidArgument(f"{where}.capacity", "must not be negative")
    return provider


# --- HSDS --------------------------------------------------------------------------------------


def _terms(service: Mapping[str, Any]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for attribute in service.get("attributes") or ():
        term = attribute.get("taxonomy_term") or {}
        if term.get("taxonomy") and term.get("code"):
            found.setdefault(term["taxonomy"], []).append(term["code"])
    return found


def _one(terms: Mapping[str, list[str]], taxonomy: str, where: str, default: str | None = None) -> str:
    values = terms.get(taxonomy) or ([default] if default is not None else [])
    if len(values) != 1:
        raise InvalidArgument(f"{where}.attributes", f"needs exactly one {taxonomy} term")
    return values[0]


def _hours(schedules: Iterable[Mapping[str, Any]], where: str) -> tuple[bool, tuple[OpeningHours, ...]]:
    hours = []
    for i, s in enumerate(schedules):
        days = [d.strip().upper() for d in str(s.get("byday", "")).split(",") if d.strip()]
        unknown = [d for d in days if d not in DAYS]
        if unknown or not days:
            raise InvalidArgument(f"{where}.schedules[{i}].byday", f"weekdays as MO,TU,...,SU (got {s.get('byday')!r})")
        closes = str(s.get("closes_at", ""))[:5]
        hours.append(OpeningHours.parse([DAYS.index(d) + 1 for d in days], str(s.get("opens_at", ""))[:5],
                                        "24:00" if closes == "23:59" else closes))
    always = any(h.weekdays == ALL_WEEK and h.opens == 0 and h.closes == 24 * 60 for h in hours)
    return always, () if always else tuple(hours)


def _from_hsds(s: Mapping[str, Any], where: str) -> Provider:
    if not s.get("id") or not s.get("name"):
        raise InvalidArgument(where, "a service needs an id and a name")
    terms = _terms(s)
    try:
        service_type = ServiceType(_one(terms, T_SERVICE, where))
        shelter_id = (terms.get(T_SHELTER) or [""])[0]
        locations = [sal.get("location") or {} for sal in s.get("service_at_locations") or ()]
        communes = [loc["external_identifier"] for loc in locations
                    if loc.get("external_identifier_type") == COMMUNE_CODE and loc.get("external_identifier")]
        commune = "" if shelter_id or not communes else communes[0]
        areas = frozenset(str(a["extent"]) for a in s.get("service_areas") or ()
                          if a.get("extent_type") == ADMIN_CODE and a.get("extent"))
        province = _one(terms, T_PROVINCE, where, default=geo.resolve_commune(commune).parent_code if commune else None)
        always, hours = _hours(s.get("schedules") or (), where)
        phones = [p["number"] for p in s.get("phones") or () if p.get("number")]
        beds = [c for c in s.get("capacities") or () if (c.get("unit") or {}).get("id") == "bed"]
        organization = s.get("organization") or {}
        minimum, maximum = s.get("minimum_age"), s.get("maximum_age")
        age = (AgeGroup.ADULT if minimum is not None and minimum >= ADULT_AGE
               else AgeGroup.CHILD if maximum is not None and maximum < ADULT_AGE else AgeGroup.ANY)
        provider = Provider(
            provider_id=str(s["id"]), name=str(s["name"]), sector=_one(terms, T_SECTOR, where),
            service_type=service_type,
            province_code=province, commune_code=commune, public_contact=phones[0] if phones else "",
            open_24_7=always, shelter_id=shelter_id,
            organization_id=str(organization.get("id") or s.get("organization_id") or ""),
            organization_name=str(organization.get("name", "")), description=str(s.get("description") or ""),
            age_group=age, sexes=frozenset(Sex(x) for x in terms.get(T_SEX, ())),
            target_groups=frozenset(TargetGroup(x) for x in terms.get(T_TARGET, ())),
            service_areas=areas - {province}, opening_hours=hours,
            beds_capacity=int(beds[0].get("maximum", beds[0]["available"])) if beds else None,
            active=s.get("status", "active") == "active", accessibility=frozenset(terms.get(T_ACCESS, ())))
    except geo.GeoError as exc:
        raise InvalidArgument(f"{where}.{exc.field}", exc.problem) from None
    except (KeyError, ValueError, TypeError) as exc:
        raise InvalidArgument(where, f"not a service refnet can use: {exc}") from None
    return _checked(provider, where)


def _term(taxonomy: str, code: str, link_id: str) -> dict[str, Any]:
    term_id = f"{taxonomy}:{code}"
    return {"id": f"{link_id}:{term_id}", "link_id": link_id, "link_entity": "service", "link_type": "service",
            "taxonomy_term_id": term_id, "value": code,
            "taxonomy_term": {"id": term_id, "code": code, "name": code.replace("_", " "), "taxonomy": taxonomy}}


def _area(code: str, link_id: str) -> dict[str, Any]:
    try:
        name = (geo.resolve_province if len(code) <= 2 else geo.resolve_commune)(code).name
    except geo.GeoError:
        name = code
    return {"id": f"{link_id}:area:{code}", "service_id": link_id, "name": name, "extent": code,
            "extent_type": ADMIN_CODE}


def _schedules(p: Provider) -> list[dict[str, Any]]:
    hours = [OpeningHours(ALL_WEEK, 0, 24 * 60)] if p.open_24_7 else list(p.opening_hours)
    return [{"id": f"{p.provider_id}:schedule:{i}", "service_id": p.provider_id, "freq": "WEEKLY",
             "byday": ",".join(DAYS[d - 1] for d in sorted(h.weekdays)), "opens_at": h.opens_at,
             "closes_at": h.closes_at, "timezone": VIETNAM_UTC_OFFSET,
             "description": "24/7" if p.open_24_7 else ""} for i, h in enumerate(hours)]


def to_service(entry: DirectoryEntry, now: datetime) -> dict[str, Any]:
    p = entry.provider
    sid = p.provider_id
    attributes = [_term(T_SERVICE, str(p.service_type), sid), _term(T_SECTOR, p.sector, sid),
                  _term(T_PROVINCE, p.province_code, sid),
                  *(_term(T_TARGET, str(t), sid) for t in sorted(p.target_groups)),
                  *(_term(T_SEX, str(x), sid) for x in sorted(p.sexes)),
                  *(_term(T_ACCESS, code, sid) for code in sorted(p.accessibility))]
    service: dict[str, Any] = {
        "id": sid, "name": p.name, "description": p.description,
        "status": "active" if p.active else "inactive",
        "organization_id": p.organization_id,
        "organization": {"id": p.organization_id, "name": p.organization_name or p.name,
                         "description": p.organization_name or p.name},
        "phones": [{"id": f"{sid}:phone", "service_id": sid, "number": p.public_contact,
                    "description": "public contact point"}] if p.public_contact else [],
        "schedules": _schedules(p),
        "service_areas": [_area(code, sid) for code in sorted({p.province_code, *p.service_areas})],
        "attributes": attributes,
    }
    if p.age_group is AgeGroup.ADULT:
        service["minimum_age"] = ADULT_AGE
    elif p.age_group is AgeGroup.CHILD:
        service["maximum_age"] = ADULT_AGE - 1
    if p.is_shelter:
        attributes.append(_term(T_SHELTER, p.shelter_id, sid))
        if entry.beds_capacity is not None:
            service["capacities"] = [{
                "id": f"{sid}:beds", "service_id": sid, "unit": {"id": "bed", "name": "Bed"},
                "available": entry.beds_free if entry.beds_free is not None else entry.beds_capacity,
                "maximum": entry.beds_capacity, "description": "Beds", "updated": now.isoformat()}]
    elif p.commune_code:
        service["service_at_locations"] = [{
            "id": f"{sid}:at:{p.commune_code}", "service_id": sid, "location_id": f"{sid}:location",
            "location": {"id": f"{sid}:location", "location_type": "physical", "name": p.name,
                         "external_identifier": p.commune_code, "external_identifier_type": COMMUNE_CODE}}]
    return service


def to_hsds(entries: list[DirectoryEntry], now: datetime | None = None) -> dict[str, Any]:
    """One page of the HSDS /services list holding every provider."""
    now = now or system_clock()
    contents = [to_service(e, now) for e in entries]
    return {"total_items": len(contents), "total_pages": 1, "page_number": 1, "size": len(contents),
            "first_page": True, "last_page": True, "empty": not contents, "contents": contents}
