"""Live beds per pool: a shelter keeps beds per target group, and a survivor is routed by the free beds of the
pool she would be placed in, whatever order shelter's CapacityChanged events for its pools arrive in."""

from __future__ import annotations

from typing import Any

import pytest

from referral.domain import commands
from referral.domain.model import Survivor
from refnet.common.v1 import types_pb2 as t
from refnet_platform.vocabulary import BedRejectionReason, RiskLevel, ServiceType, Sex, TargetGroup

SHELTER = ServiceType.SHELTER
WOMEN, CHILDREN, WWC = TargetGroup.WOMEN, TargetGroup.CHILDREN, TargetGroup.WOMEN_WITH_CHILDREN


def shelter(provider_id: str, shelter_id: str, group: str, capacity: int, **extra: Any) -> dict[str, Any]:
    return {"provider_id": provider_id, "name": provider_id, "sector": "shelter", "service_type": "shelter",
            "province_code": "22", "public_contact": "1800 1769", "open_24_7": True,
            "shelter": {"shelter_id": shelter_id, "target_group": group, "capacity": capacity}, **extra}


# Takes women and children (two pools); the other keeps one women_with_children pool with one bed.
MIXED = shelter("qn-shelter-mixed", "qn-mixed", "women", 8,
                eligibility={"age_group": "any", "target_groups": ["children", "women"]})
OTHER = shelter("qn-shelter-other", "qn-other", "women_with_children", 1)


@pytest.fixture
def referral(empty_directory):
    empty_directory.with_directory(MIXED, OTHER)
    return empty_directory


def counts(group: TargetGroup, free: int) -> commands.RecordCapacity:
    # Four beds: `free` of them free, one held, the rest occupied.
    held = 1 if free < 4 else 0
    return commands.RecordCapacity("qn-mixed", "22", group, 4, held, 4 - free - held)


def routed(referral, is_child: bool) -> tuple[str, int]:
    """The shelter a survivor's bed need goes to, and the pool asked for there ("" and none: no shelter)."""
    case_id, _ = referral.register(SHELTER, is_child=is_child, sex=Sex.FEMALE)
    r = referral.only(case_id, SHELTER)
    asked = [e.target_group for _, _, e in referral.events("ReserveBed") if e.referral_id == r.referral_id]
    return r.shelter_id, asked[0] if asked else t.TARGET_GROUP_UNSPECIFIED


@pytest.mark.parametrize("children_first", [True, False], ids=["children-first", "women-first"])
@pytest.mark.parametrize("full", [CHILDREN, WOMEN])
def test_each_survivor_goes_by_the_free_beds_of_her_own_pool(referral, full: TargetGroup,
                                                             children_first: bool) -> None:
    free = WOMEN if full is CHILDREN else CHILDREN
    update = {full: counts(full, 0), free: counts(free, 3)}
    for group in (CHILDREN, WOMEN) if children_first else (WOMEN, CHILDREN):
        referral.handle(update[group])

    by_group = {WOMEN: routed(referral, is_child=False), CHILDREN: routed(referral, is_child=True)}
    # Her own pool has free beds: the mixed shelter, asked for her pool (it has more free beds than the other).
    assert by_group[free] == ("qn-mixed", t.TARGET_GROUP_WOMEN if free is WOMEN else t.TARGET_GROUP_CHILDREN)
    # Her pool is full: never sent there, though the shelter has free beds in another pool.
    assert by_group[full] == ("qn-other", t.TARGET_GROUP_WOMEN_WITH_CHILDREN)


def test_the_directory_shows_each_survivor_the_beds_of_her_pool(referral) -> None:
    referral.handle(counts(CHILDREN, 0))
    referral.handle(counts(WOMEN, 3))

    def preview(survivor: Survivor) -> dict[str, tuple[int | None, int | None]]:
        found = referral.handle(commands.RankProviders("22", "06673", SHELTER, survivor, RiskLevel.MEDIUM, False))
        return {e.provider.provider_id: (e.beds_free, e.beds_capacity) for e in found}

    assert preview(Survivor(is_child=False, sex=Sex.FEMALE)) == {"qn-shelter-mixed": (3, 4), "qn-shelter-other": (1, 1)}
    assert preview(Survivor(is_child=True, sex=Sex.FEMALE)) == {"qn-shelter-other": (1, 1)}
    # Without a survivor: every pool of the groups the shelter takes.
    entry = referral.handle(commands.GetProvider("qn-shelter-mixed"))
    assert (entry.beds_free, entry.beds_capacity) == (3, 8)


def test_the_directory_s_capacity_stands_for_a_shelter_s_one_group_only(referral) -> None:
    # OTHER's single pool was seeded from the directory; MIXED's capacity names no pool, so nothing is known.
    assert [(e.beds_free, e.beds_capacity) for e in (referral.handle(commands.GetProvider(p))
                                                     for p in ("qn-shelter-other", "qn-shelter-mixed"))] == [
        (1, 1), (None, 8)]
    # Not known to be full: a child is tried there (ranked after the shelter with a free bed).
    assert routed(referral, is_child=True) == ("qn-other", t.TARGET_GROUP_WOMEN_WITH_CHILDREN)
    referral.handle(commands.RecordCapacity("qn-other", "22", WWC, 1, 1, 0))
    assert routed(referral, is_child=True) == ("qn-mixed", t.TARGET_GROUP_CHILDREN)


def test_bed_events_move_only_their_own_pool(referral) -> None:
    referral.handle(counts(WOMEN, 1))
    referral.handle(counts(CHILDREN, 1))
    referral.handle(commands.RecordCapacity("qn-other", "22", WWC, 1, 1, 0))  # the other shelter is full

    case_id, _ = referral.register(SHELTER, is_child=False)
    woman = referral.only(case_id, SHELTER)
    assert woman.shelter_id == "qn-mixed"
    referral.handle(commands.RecordBedReserved(woman.referral_id, "qn-mixed", 0, WOMEN))
    assert routed(referral, is_child=False)[0] == ""  # the women's last bed is held: nowhere else
    assert routed(referral, is_child=True)[0] == "qn-mixed"  # the children's is still free

    referral.handle(commands.RecordBedReleased(woman.referral_id, "qn-mixed", WOMEN))
    assert routed(referral, is_child=False)[0] == "qn-mixed"


def test_a_rejected_bed_marks_full_only_the_pools_it_asked_for(referral) -> None:
    referral.handle(commands.RecordCapacity("qn-other", "22", WWC, 1, 1, 0))  # the other shelter is full
    case_id, _ = referral.register(SHELTER, is_child=True)
    child = referral.only(case_id, SHELTER)
    assert child.shelter_id == "qn-mixed"  # no figures yet: tried
    referral.handle(commands.RecordBedRejected(child.referral_id, "qn-mixed", BedRejectionReason.NO_CAPACITY))
    assert routed(referral, is_child=True)[0] == ""
    assert routed(referral, is_child=False) == ("qn-mixed", t.TARGET_GROUP_WOMEN)
