"""Live beds per pool on SQLite and PostgreSQL: shelter's CapacityChanged events, turned into commands as the
worker does, are kept per (shelter, target group), and the running api ranks each survivor by her own pool,
in whichever order the pools' events arrived."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from referral.adapters import hsds, proto_mapping
from referral.domain import commands
from referral.domain.model import Survivor
from refnet.common.v1 import types_pb2 as t
from refnet.referral.v1 import referral_service_pb2 as pb
from refnet.shelter.v1 import events_pb2 as shelter_events
from refnet_platform.vocabulary import RiskLevel, ServiceType, Sex

pytestmark = pytest.mark.integration

# Quảng Ninh gets a shelter with a women's pool and a children's pool; its demo shelters are made full.
MIXED = {"provider_id": "qn-shelter-mixed", "name": "Mixed", "sector": "shelter", "service_type": "shelter",
         "province_code": "22", "public_contact": "1800 1769", "open_24_7": True,
         "shelter": {"shelter_id": "qn-mixed", "target_group": "women", "capacity": 8},
         "eligibility": {"age_group": "any", "target_groups": ["children", "women"]}}


def capacity(shelter_id: str, group: int, free: int) -> shelter_events.CapacityChanged:
    return shelter_events.CapacityChanged(shelter_id=shelter_id, province_code="22", target_group=group,
                                          capacity=4, reserved=0, occupied=4 - free)


@pytest.fixture(scope="module")
def mixed(api: Any) -> Any:
    api.bus.handle(commands.LoadDirectory(hsds.read({"providers": [MIXED]}), update_existing=True))
    for event in (capacity("qn-spc", t.TARGET_GROUP_WOMEN_WITH_CHILDREN, 0),
                  capacity("qn-campha-temp", t.TARGET_GROUP_WOMEN, 0)):
        api.bus.handle(proto_mapping.command_for(event))
    return api


def ranked(api: Any, is_child: bool) -> list[tuple[str, int]]:
    found = api.directory().RankProviders(pb.RankProvidersRequest(
        province_code="22", commune_code="06673", service_type=t.SERVICE_TYPE_SHELTER, is_child=is_child,
        sex=t.SEX_FEMALE), timeout=10).providers
    return [(r.provider.provider_id, r.provider.beds_available) for r in found if r.area_rank < 2]


@pytest.mark.parametrize("children_first", [True, False], ids=["children-first", "women-first"])
def test_each_survivor_is_ranked_by_her_own_pool(mixed: Any, children_first: bool) -> None:
    pools = [capacity("qn-mixed", t.TARGET_GROUP_CHILDREN, 0), capacity("qn-mixed", t.TARGET_GROUP_WOMEN, 3)]
    for event in pools if children_first else pools[::-1]:
        mixed.bus.handle(proto_mapping.command_for(event))

    assert ranked(mixed, is_child=False) == [("qn-shelter-mixed", 3)]
    assert ranked(mixed, is_child=True) == []  # the children's pool is full, whatever the women's has

    # Routing agrees: a girl's bed need finds no shelter in her province (Hải Phòng's takes men only).
    case_id, need_id = str(uuid.uuid4()), str(uuid.uuid4())
    mixed.bus.handle(commands.RouteCase(
        case_id, "22", "06673", [commands.NeedToRoute(need_id, ServiceType.SHELTER, True)], RiskLevel.MEDIUM,
        False, "qn-worker-7", Survivor(is_child=True, sex=Sex.FEMALE)))
    [girl] = mixed.referrals("qn-worker-7", "operator").ListReferrals(
        pb.ListReferralsRequest(case_id=case_id), timeout=10).referrals
    assert (girl.provider_id, girl.status) == ("", pb.REFERRAL_STATUS_ESCALATED)
    woman, _ = mixed.register(ServiceType.SHELTER)
    [bed] = mixed.referrals("qn-worker-7", "operator").ListReferrals(
        pb.ListReferralsRequest(case_id=woman), timeout=10).referrals
    assert bed.shelter_id == "qn-mixed"
