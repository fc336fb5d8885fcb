"""Bed pools, who may change them, and what hotline screens see (SQLite file, no network)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from refnet.shelter.v1 import events_pb2
from refnet_platform.errors import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from refnet_platform.tables import outbox
from refnet_platform.vocabulary import TargetGroup
from shelter.adapters.proto_mapping import load_directory_file
from shelter.domain import commands
from shelter.domain.model import Accessibility, Proximity

WOMEN, WITH_CHILDREN, CHILDREN, MEN = (TargetGroup.WOMEN, TargetGroup.WOMEN_WITH_CHILDREN, TargetGroup.CHILDREN,
                                      TargetGroup.MEN)
REPO = Path(__file__).resolve().parents[3]
# Quảng Ninh (22): Bãi Cháy 06673, Cẩm Phả 06793; Lạng Sơn (20) borders it; Hà Tĩnh (42) does not.
QN, LANG_SON, HA_TINH = "22", "20", "42"


def update(s: Any, shelter_id: str, capacity: int, group: TargetGroup | None = WOMEN, caller: Any = None) -> Any:
    return s.bus.handle(commands.UpdateAvailability(caller or s.staff(shelter_id), shelter_id, group, capacity))


def test_a_shelter_keeps_one_pool_per_target_group(shelters: Any) -> None:
    shelters.load(shelters.shelter("qn-spc", pools={WOMEN: 4, CHILDREN: 6}))
    found, _ = shelters.bus.handle(commands.GetShelter(shelters.operator, "qn-spc"))
    assert {(p.target_group, p.capacity) for p in found.pools} == {(WOMEN, 4), (CHILDREN, 6)}
    shelters.bus.handle(shelters.reserve("r1", group=CHILDREN))
    assert (shelters.pool("qn-spc", CHILDREN).reserved, shelters.pool("qn-spc", WOMEN).reserved) == (1, 0)


def test_staff_set_capacity_and_confirm_their_counts(shelters: Any) -> None:
    shelters.load(shelters.shelter("qn-spc", confirmed_at=datetime.now(UTC) - timedelta(days=3)))
    row = update(shelters, "qn-spc", 5)
    assert (row.pool.capacity, row.free, row.stale) == (5, 5, False)
    assert row.age < timedelta(seconds=5)
    changed = shelters.events(events_pb2.CapacityChanged)[-1]
    assert (changed.shelter_id, changed.capacity, changed.province_code, changed.commune_code) == (
        "qn-spc", 5, QN, "06673")
    # A new group adds a pool; the group may be omitted only while there is a single pool.
    update(shelters, "qn-spc", 3, MEN)
    assert shelters.pool("qn-spc", MEN).capacity == 3
    with pytest.raises(InvalidArgument, match="target_group: required: qn-spc keeps beds for men, women"):
        update(shelters, "qn-spc", 3, None)


def test_one_shelter_cannot_change_another(shelters: Any) -> None:
    shelters.load(shelters.shelter("qn-spc"), shelters.shelter("qn-campha-temp"))
    for caller in (shelters.staff("qn-campha-temp"), shelters.operator, shelters.staff("")):
        with pytest.raises(PermissionDenied):
            update(shelters, "qn-spc", 0, caller=caller)
    with pytest.raises(PermissionDenied):  # refused before the shelter is looked up: no probing
        update(shelters, "nowhere", 1, caller=shelters.staff("qn-spc"))
    with pytest.raises(NotFound):
        update(shelters, "nowhere", 1)
    assert shelters.pool("qn-spc", WOMEN).capacity == 2


def test_capacity_below_the_beds_in_use_is_refused_clearly(shelters: Any) -> None:
    shelters.load(shelters.shelter("qn-spc", pools={WOMEN: 3}))
    shelters.bus.handle(shelters.reserve("r1"))
    shelters.bus.handle(shelters.reserve("r2"))
    shelters.bus.handle(commands.ConfirmArrival(shelters.staff("qn-spc"), "r2"))
    with pytest.raises(FailedPrecondition, match=r"capacity 1 is below the 2 women beds in use at qn-spc "
                                                  r"\(1 held, 1 occupied\)"):
        update(shelters, "qn-spc", 1)
    assert update(shelters, "qn-spc", 2).free == 0
    with pytest.raises(InvalidArgument, match="capacity: cannot be negative"):
        update(shelters, "qn-spc", -1)
    with pytest.raises(InvalidArgument, match="capacity: must be at most 1000"):
        update(shelters, "qn-spc", 6000)


def test_availability_by_province_nearest_first_with_fresh_free_beds_first(shelters: Any) -> None:
    shelters.load(
        shelters.shelter("campha", commune="06793", pools={WOMEN: 2}),
        shelters.shelter("baichay-full", commune="06673", pools={WOMEN: 1}),
        shelters.shelter("baichay", commune="06673", pools={WITH_CHILDREN: 2, CHILDREN: 4}),
        shelters.shelter("langson", province=LANG_SON, commune="", pools={WOMEN: 5}),
        shelters.shelter("hatinh", province=HA_TINH, commune="18100", pools={WOMEN: 5}))
    shelters.bus.handle(shelters.reserve("r1", "baichay-full"))
    # Referral's routing may see shelters' communes, so it gets the same commune first.
    found = shelters.bus.handle(commands.ListAvailability(shelters.routing, QN, commune_code="06673"))
    assert not found.neighbours_included
    assert [(r.shelter_id, r.pool.target_group, r.proximity, r.free) for r in found.rows] == [
        ("baichay", CHILDREN, Proximity.SAME_COMMUNE, 4),
        ("baichay", WITH_CHILDREN, Proximity.SAME_COMMUNE, 2),
        ("baichay-full", WOMEN, Proximity.SAME_COMMUNE, 0),
        ("campha", WOMEN, Proximity.SAME_PROVINCE, 2)]
    women = shelters.bus.handle(commands.ListAvailability(shelters.operator, QN, target_group=WOMEN,
                                                          include_neighbours=True))
    assert [(r.shelter_id, r.proximity) for r in women.rows] == [
        ("baichay", Proximity.SAME_PROVINCE), ("campha", Proximity.SAME_PROVINCE),
        ("baichay-full", Proximity.SAME_PROVINCE), ("langson", Proximity.NEIGHBOURING_PROVINCE)]
    assert {r.pool.target_group for r in women.rows} == {WOMEN, WITH_CHILDREN}


def test_with_no_fresh_free_bed_in_the_province_neighbours_are_offered(shelters: Any) -> None:
    shelters.load(shelters.shelter("qn-men", pools={MEN: 1}), shelters.shelter("qn-kids", pools={CHILDREN: 3}),
                  shelters.shelter("langson", province=LANG_SON, commune="", pools={MEN: 2}))
    shelters.bus.handle(shelters.reserve("r1", "qn-men", MEN))
    found = shelters.bus.handle(commands.ListAvailability(shelters.operator, QN, target_group=MEN))
    assert found.neighbours_included
    assert [(r.shelter_id, r.free) for r in found.rows] == [("qn-men", 0), ("langson", 2)]
    # The province's children's beds are free, but a man cannot use them.
    children = shelters.bus.handle(commands.ListAvailability(shelters.operator, QN, target_group=CHILDREN))
    assert not children.neighbours_included


def test_stale_counts_are_shown_as_stale_not_as_free_beds(shelters: Any) -> None:
    old = datetime.now(UTC) - timedelta(hours=30)
    shelters.load(shelters.shelter("old", pools={WOMEN: 5}, confirmed_at=old),
                  shelters.shelter("fresh", pools={WOMEN: 1}))
    found = shelters.bus.handle(commands.ListAvailability(shelters.operator, QN))
    assert [(r.shelter_id, r.stale, r.free, r.pool.free) for r in found.rows] == [
        ("fresh", False, 1, 1), ("old", True, 0, 5)]
    assert timedelta(hours=29) < found.rows[1].age < timedelta(hours=31)
    # Only stale beds in the province: that is no free bed, so the neighbours are offered.
    shelters.bus.handle(shelters.reserve("r1", "fresh"))
    assert shelters.bus.handle(commands.ListAvailability(shelters.operator, QN)).neighbours_included
    # Confirming makes them count again.
    assert update(shelters, "old", 5).free == 5


def test_accessibility_filters_shelters(shelters: Any) -> None:
    shelters.load(shelters.shelter("ramp", accessibility=frozenset({Accessibility.WHEELCHAIR})),
                  shelters.shelter("stairs"))
    found = shelters.bus.handle(commands.ListAvailability(shelters.operator, QN,
                                                          accessibility=frozenset({Accessibility.WHEELCHAIR})))
    assert [(r.shelter_id, r.accessibility) for r in found.rows] == [("ramp", {Accessibility.WHEELCHAIR})]


@pytest.mark.parametrize(("province", "commune", "problem"), [
    ("", "", "province_code: is required"),
    ("99", "", "province_code"),
    (QN, "18100", "commune_code: 18100 is not in province 22"),
])
def test_a_bad_place_names_the_field(shelters: Any, province: str, commune: str, problem: str) -> None:
    with pytest.raises(InvalidArgument, match=problem):
        shelters.bus.handle(commands.ListAvailability(shelters.operator, province, commune))


def test_the_address_is_shown_only_to_the_shelters_own_staff_and_never_published(shelters: Any) -> None:
    shelters.load(shelters.shelter("qn-spc"))
    update(shelters, "qn-spc", 4)
    shelters.bus.handle(shelters.reserve("r1"))
    shelters.bus.handle(commands.ReleaseBed("r1", "qn-spc", "cancelled"))
    own, _ = shelters.bus.handle(commands.GetShelter(shelters.staff("qn-spc"), "qn-spc"))
    assert own.address == "secret address of qn-spc"
    for caller in (shelters.operator, shelters.staff("qn-campha-temp")):
        other, _ = shelters.bus.handle(commands.GetShelter(caller, "qn-spc"))
        assert other.address == ""
    listed = shelters.bus.handle(commands.ListAvailability(shelters.operator, QN)).rows
    assert all(r.name == "Shelter qn-spc" for r in listed)
    with shelters.engine.connect() as conn:
        published = conn.execute(select(outbox.c.value)).scalars().all()
    assert published and not any(b"secret address" in value or b"Shelter qn-spc" in value for value in published)


def test_reloading_the_directory_keeps_the_counts_shelters_confirmed(shelters: Any) -> None:
    shelters.load(shelters.shelter("qn-spc", pools={WOMEN: 2}))
    update(shelters, "qn-spc", 7)
    shelters.load(shelters.shelter("qn-spc", pools={WOMEN: 2, CHILDREN: 3},
                                   accessibility=frozenset({Accessibility.SIGN_LANGUAGE})))
    found, _ = shelters.bus.handle(commands.GetShelter(shelters.operator, "qn-spc"))
    assert {(p.target_group, p.capacity) for p in found.pools} == {(WOMEN, 7), (CHILDREN, 3)}
    assert found.accessibility == {Accessibility.SIGN_LANGUAGE}


def test_the_demo_directory_and_the_several_pools_shape_load(tmp_path: Path, shelters: Any) -> None:
    demo = load_directory_file(REPO / "demo" / "directory.json")
    assert demo.shelters and all(s.pools and s.address for s in demo.shelters)
    path = tmp_path / "directory.json"
    path.write_text(json.dumps({"providers": [
        {"provider_id": "p", "name": "Nhà tạm lánh", "province_code": QN, "commune_code": "06673",
         "shelter": {"shelter_id": "s", "address": "x", "accessibility": ["wheelchair"],
                     "beds": [{"target_group": "women", "capacity": 2}, {"target_group": "children", "capacity": 5}]}},
        {"provider_id": "police", "name": "Công an", "province_code": QN, "commune_code": "06673"}]}))
    [loaded] = load_directory_file(path).shelters
    assert (loaded.accessibility, {(p.target_group, p.capacity) for p in loaded.pools}) == (
        {Accessibility.WHEELCHAIR}, {(WOMEN, 2), (CHILDREN, 5)})
    shelters.bus.handle(load_directory_file(path))
    assert shelters.pool("s", CHILDREN).capacity == 5
