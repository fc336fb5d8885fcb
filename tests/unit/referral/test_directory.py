"""The directory: the demo file, HSDS export and import, the `referral-directory` command, and what of a
shelter may leave referral."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from referral.adapters import hsds
from referral.domain import commands
from referral.domain.providers import AgeGroup, OpeningHours
from referral.entrypoints import directory_cli
from refnet_platform.errors import InvalidArgument
from refnet_platform.vocabulary import ServiceType, TargetGroup

DEMO = Path(__file__).resolve().parents[3] / "demo" / "directory.json"


def test_the_demo_directory_covers_four_real_provinces_and_every_service() -> None:
    providers = hsds.load_file(DEMO)
    assert {p.province_code for p in providers} == {"22", "31", "42", "92"}
    assert {p.service_type for p in providers} == set(ServiceType)
    assert len({p.provider_id for p in providers}) == len(providers)
    legal = next(p for p in providers if p.provider_id == "qn-legal-aid")
    assert not legal.open_24_7 and legal.opening_hours[0] == OpeningHours.parse([1, 2, 3, 4, 5], "07:30", "11:30")
    men = next(p for p in providers if p.provider_id == "hp-shelter-spc-men")
    assert (men.target_groups, men.age_group, men.beds_capacity) == (frozenset({TargetGroup.MEN}), AgeGroup.ADULT, 4)
    # Shelters keep no place in referral beyond their province.
    assert all(p.commune_code == "" for p in providers if p.is_shelter)


def test_export_then_import_gives_back_the_same_directory(referral) -> None:
    entries = referral.handle(commands.ExportDirectory())
    document = hsds.to_hsds(entries)
    assert document["total_items"] == len(entries) == 33 and document["contents"][0]["status"] == "active"
    assert hsds.read(json.loads(json.dumps(document))) == [e.provider for e in entries]


def test_a_shelter_leaves_referral_with_its_public_contact_point_only(referral) -> None:
    document = hsds.to_hsds(referral.handle(commands.ExportDirectory()))
    shelter = next(s for s in document["contents"] if s["id"] == "qn-shelter-spc")
    assert "service_at_locations" not in shelter
    assert [p["number"] for p in shelter["phones"]] == ["1800 1769"]
    assert shelter["capacities"][0]["unit"]["name"] == "Bed" and shelter["capacities"][0]["maximum"] == 6
    text = json.dumps(document, ensure_ascii=False)
    assert "withheld" not in text and "06673" not in json.dumps(shelter)
    police = next(s for s in document["contents"] if s["id"] == "qn-police-baichay")
    assert police["service_at_locations"][0]["location"]["external_identifier"] == "06673"
    assert police["schedules"][0]["byday"] == "MO,TU,WE,TH,FR,SA,SU"


def test_an_import_updates_known_providers(referral) -> None:
    document = hsds.to_hsds(referral.handle(commands.ExportDirectory()))
    legal = next(s for s in document["contents"] if s["id"] == "qn-legal-aid")
    legal["schedules"] = [{"id": "x", "byday": "MO,TU,WE,TH,FR,SA,SU", "opens_at": "00:00", "closes_at": "23:59"}]
    legal["status"] = "inactive"
    referral.handle(commands.LoadDirectory(hsds.read(document), update_existing=True))
    entry = referral.handle(commands.GetProvider("qn-legal-aid"))
    assert entry.provider.open_24_7 and not entry.provider.active
    # The api's start-up seed adds only what is missing.
    referral.handle(commands.LoadDirectory(hsds.load_file(DEMO)))
    assert not referral.handle(commands.GetProvider("qn-legal-aid")).provider.active


@pytest.mark.parametrize(("change", "field"), [
    (lambda s: s["attributes"].clear(), "contents[0].attributes"),
    (lambda s: s["service_areas"].append({"extent": "99", "extent_type": "vn_admin_code_2025"}),
     "contents[0].province_code"),
    (lambda s: s["schedules"].append({"byday": "XX", "opens_at": "08:00", "closes_at": "09:00"}),
     "contents[0].schedules[1].byday"),
])
def test_an_unusable_service_is_refused_naming_the_field(referral, change, field) -> None:
    service = hsds.to_hsds(referral.handle(commands.ExportDirectory()))["contents"][0]
    change(service)
    with pytest.raises(InvalidArgument) as refused:
        hsds.read([service])
    assert str(refused.value).startswith(field)


def test_the_command_line_imports_and_exports(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("REFERRAL_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    assert directory_cli.main(["import", str(DEMO)]) == 0
    out = tmp_path / "hsds.json"
    assert directory_cli.main(["export", str(out)]) == 0
    exported = json.loads(out.read_text(encoding="utf-8"))
    assert exported["total_items"] == 33
    assert directory_cli.main(["import", str(out)]) == 0
    (tmp_path / "bad.json").write_text('{"contents": [{"id": "x"}]}')
    assert directory_cli.main(["import", str(tmp_path / "bad.json")]) == 2
    assert "contents[0]" in capsys.readouterr().err
