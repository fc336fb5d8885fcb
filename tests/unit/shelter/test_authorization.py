"""Who may call what, and who is shown a shelter's confidential fields (SQLite file, no network)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from refnet.shelter.v1 import shelter_service_pb2 as pb
from refnet_platform.caller import Caller, Role, machine
from refnet_platform.errors import PermissionDenied
from refnet_platform.vocabulary import TargetGroup
from shelter.adapters import proto_mapping
from shelter.domain import commands
from shelter.domain.events import CapacityChanged
from shelter.domain.model import BedPool, Proximity
from shelter.service_layer.authorization import AUTHORIZATION, authorization_table_markdown
from shelter.service_layer.watch import AvailabilityHub, watch

WOMEN = TargetGroup.WOMEN
QN, BAI_CHAY, CAM_PHA = "22", "06673", "06793"
README = Path(__file__).resolve().parents[3] / "services" / "shelter" / "README.md"


def others(s: Any) -> list[Caller]:
    """Callers who may read availability but are not qn-spc's staff nor referral's routing."""
    return [s.operator, s.staff("qn-campha"), s.person("campha-staff", "qn-campha"),
            Caller("qn-supervisor", Role.SUPERVISOR, provinces=frozenset({QN}), person=True),
            machine("qn-police", Role.AGENCY), machine("notifications", Role.SERVICE),
            Caller("ops-1", Role.OPS, provinces=frozenset({"*"}), person=True)]


@pytest.fixture
def s(shelters: Any) -> Any:
    shelters.load(shelters.shelter("qn-spc", commune=BAI_CHAY), shelters.shelter("qn-campha", commune=CAM_PHA))
    return shelters


def test_a_shelters_commune_and_address_only_to_their_audience(s: Any) -> None:
    for me in (s.staff("qn-spc"), s.person("qn-spc-staff", "qn-spc")):
        own, pools = s.bus.handle(commands.GetShelter(me, "qn-spc"))
        assert (own.commune_code, own.address) == (BAI_CHAY, "secret address of qn-spc")
        assert proto_mapping.shelter_to_pb(own, pools).pools[0].commune_code == BAI_CHAY
    routed, pools = s.bus.handle(commands.GetShelter(s.routing, "qn-spc"))
    assert (routed.commune_code, routed.address) == (BAI_CHAY, "")
    assert proto_mapping.shelter_to_pb(routed, pools).pools[0].commune_code == BAI_CHAY
    for caller in [*others(s), s.person("qn-spc", "qn-campha"), machine("intake", Role.SERVICE)]:
        shelter, pools = s.bus.handle(commands.GetShelter(caller, "qn-spc"))
        reply = proto_mapping.shelter_to_pb(shelter, pools)
        assert (reply.commune_code, reply.address, [p.commune_code for p in reply.pools]) == ("", "", [""]), caller
        assert (reply.province_code, reply.name) == (QN, "Shelter qn-spc")


def rows(s: Any, caller: Caller) -> list[tuple[str, str, Proximity | None]]:
    found = s.bus.handle(commands.ListAvailability(caller, QN, commune_code=BAI_CHAY))
    replies = [proto_mapping.availability_to_pb(r) for r in found.rows]
    assert [r.commune_code for r in replies] == [r.commune_code for r in found.rows]
    return [(r.shelter_id, r.commune_code, r.proximity) for r in found.rows]


def test_availability_shows_a_commune_only_to_its_audience_and_ranks_without_it_for_others(s: Any) -> None:
    s.bus.handle(s.reserve("r1", "qn-campha"))  # so qn-spc would not come first on free beds alone
    assert rows(s, s.routing) == [("qn-spc", BAI_CHAY, Proximity.SAME_COMMUNE),
                                  ("qn-campha", CAM_PHA, Proximity.SAME_PROVINCE)]
    # Own staff see their own shelter's commune, not another's.
    assert rows(s, s.person("qn-spc-staff", "qn-spc")) == [("qn-spc", BAI_CHAY, Proximity.SAME_COMMUNE),
                                                           ("qn-campha", "", Proximity.SAME_PROVINCE)]
    assert rows(s, s.staff("qn-campha")) == [("qn-campha", CAM_PHA, Proximity.SAME_PROVINCE),
                                             ("qn-spc", "", Proximity.SAME_PROVINCE)]
    # Everyone else: no commune, and "same commune" would give it away, so same province at best.
    for caller in others(s)[:1] + others(s)[3:]:
        assert rows(s, caller) == [("qn-campha", "", Proximity.SAME_PROVINCE),
                                   ("qn-spc", "", Proximity.SAME_PROVINCE)], caller


async def first(stream: Any) -> Any:
    return await asyncio.wait_for(stream.__anext__(), 5)


@pytest.mark.parametrize(("who", "commune"), [("operator", ""), ("routing", BAI_CHAY), ("own", BAI_CHAY)])
async def test_watching_availability_shows_the_commune_as_listing_does(s: Any, who: str, commune: str) -> None:
    caller = {"operator": s.operator, "routing": s.routing, "own": s.staff("qn-new")}[who]
    hub = AvailabilityHub()
    hub.connected()
    stream = watch(s.bus, hub, commands.WatchAvailability(caller, QN, commune_code=BAI_CHAY),
                   stale_after=timedelta(hours=24), connect_timeout_s=1)
    try:
        snapshot, listed = await first(stream)
        assert snapshot and {r.shelter_id for r in listed} == {"qn-spc", "qn-campha"}
        # Only routing sees these two shelters' communes: the operator none, qn-new's staff only their own.
        assert {r.shelter_id: r.commune_code for r in listed} == (
            {"qn-spc": BAI_CHAY, "qn-campha": CAM_PHA} if who == "routing" else {"qn-spc": "", "qn-campha": ""})
        # A shelter first seen in a change (the event carries its commune): shown as a listing would.
        s.load(s.shelter("qn-new", commune=BAI_CHAY))
        hub.publish(CapacityChanged(QN, BAI_CHAY, BedPool("qn-new", WOMEN, 3, 0, 0, datetime.now(UTC), 5)))
        snapshot, [row] = await first(stream)
        assert (snapshot, row.shelter_id, row.commune_code) == (False, "qn-new", commune)
        assert row.proximity is (Proximity.SAME_COMMUNE if commune else Proximity.SAME_PROVINCE)
        assert proto_mapping.availability_to_pb(row).commune_code == commune
    finally:
        await stream.aclose()


async def test_a_change_from_a_shelter_this_replica_does_not_know_yet_hides_the_events_commune(s: Any) -> None:
    hub = AvailabilityHub()
    hub.connected()
    stream = watch(s.bus, hub, commands.WatchAvailability(s.operator, QN, commune_code=BAI_CHAY),
                   stale_after=timedelta(hours=24), connect_timeout_s=1)
    try:
        await first(stream)
        hub.publish(CapacityChanged(QN, BAI_CHAY, BedPool("not-loaded", WOMEN, 3, 0, 0, datetime.now(UTC), 5)))
        _, [row] = await first(stream)
        assert (row.shelter_id, row.commune_code, row.proximity) == ("not-loaded", "", Proximity.SAME_PROVINCE)
    finally:
        await stream.aclose()


def test_updating_another_shelter_is_refused_whoever_the_person_is(s: Any) -> None:
    # The person's user name is qn-spc's id; what counts is the shelter in their token.
    for caller in (s.person("qn-spc", "qn-campha"), s.staff("qn-campha"), Caller("x", Role.SHELTER, person=True)):
        with pytest.raises(PermissionDenied, match="not qn-spc"):
            s.bus.handle(commands.UpdateAvailability(caller, "qn-spc", WOMEN, 0))
    with pytest.raises(PermissionDenied, match="UpdateAvailability is not open to the operator role"):
        s.bus.handle(commands.UpdateAvailability(s.operator, "qn-spc", WOMEN, 0))
    assert s.pool("qn-spc", WOMEN).capacity == 2


def test_the_table_covers_every_rpc_and_the_readme_shows_it() -> None:
    methods = set(pb.DESCRIPTOR.services_by_name["ShelterService"].methods_by_name)
    assert set(AUTHORIZATION) == methods
    assert all(Role.GATEWAY not in rule.scopes for rule in AUTHORIZATION.values())
    assert authorization_table_markdown() in README.read_text(encoding="utf-8")
