"""Ranking providers for one survivor: area, eligibility, hours, capacity and consent. Pure domain."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from referral.domain.model import Survivor
from referral.domain.providers import OpeningHours, Provider, shelter_eligibility
from referral.domain.routing import RoutingRequest, area_rank, rank_providers
from refnet_platform.vocabulary import ServiceType, Sex, TargetGroup

QN, BAI_CHAY, HA_LONG, HA_TU = "22", "06673", "06688", "06652"
HAI_PHONG, HONG_BANG = "31", "11311"
HA_TINH, THANH_SEN = "42", "18073"
# Tuesday 2026-03-03, 10:00 and 21:00 in Vietnam (UTC+7).
TUESDAY_10 = datetime(2026, 3, 3, 3, 0, tzinfo=UTC)
TUESDAY_21 = datetime(2026, 3, 3, 14, 0, tzinfo=UTC)
OFFICE = (OpeningHours.parse([1, 2, 3, 4, 5], "07:30", "11:30"), OpeningHours.parse([1, 2, 3, 4, 5], "13:30", "17:00"))
WOMAN = Survivor(is_child=False, sex=Sex.FEMALE)


def police(provider_id: str, province: str = QN, commune: str = "", **extra: object) -> Provider:
    return Provider(provider_id, provider_id, "police", ServiceType.POLICE_PROTECTION, province, commune, "113",
                    open_24_7=True, **extra)  # type: ignore[arg-type]


def shelter(provider_id: str, group: TargetGroup, province: str = QN) -> Provider:
    age, sexes, groups = shelter_eligibility(group)
    return Provider(provider_id, provider_id, "shelter", ServiceType.SHELTER, province, "", "1800", open_24_7=True,
                    shelter_id=f"{provider_id}-beds", age_group=age, sexes=sexes, target_groups=groups)


def request(service: ServiceType = ServiceType.POLICE_PROTECTION, province: str = QN, commune: str = BAI_CHAY,
            survivor: Survivor = WOMAN, now: datetime = TUESDAY_10, accept_within: timedelta = timedelta(hours=24),
            **extra: object) -> RoutingRequest:
    return RoutingRequest(service, province, commune, survivor, now, now + accept_within, **extra)  # type: ignore[arg-type]


def ranked(providers: list[Provider], req: RoutingRequest, beds: dict[tuple[str, TargetGroup], int] | None = None
           ) -> list[str]:
    return [c.provider.provider_id for c in rank_providers(providers, req, beds)]


def test_commune_then_province_then_neighbouring_province() -> None:
    providers = [police("hp", HAI_PHONG, HONG_BANG), police("qn-halong", QN, HA_LONG),
                 police("qn-baichay", QN, BAI_CHAY), police("ht", HA_TINH, THANH_SEN)]
    assert ranked(providers, request()) == ["qn-baichay", "qn-halong", "hp"]  # Hà Tĩnh is out of reach
    assert ranked(providers[:1] + providers[3:], request()) == ["hp"]
    assert [area_rank(p, QN, BAI_CHAY) for p in providers] == [2, 1, 0, None]


def test_a_declared_service_area_brings_a_provider_nearer() -> None:
    far = police("hp-mobile", HAI_PHONG, HONG_BANG, service_areas=frozenset({BAI_CHAY}))
    province_wide = police("hp-province", HAI_PHONG, HONG_BANG, service_areas=frozenset({QN}))
    assert area_rank(far, QN, BAI_CHAY) == 0
    assert area_rank(province_wide, QN, BAI_CHAY) == 1
    assert area_rank(police("ht-wide", HA_TINH, service_areas=frozenset({QN})), QN, HA_TU) == 1


def test_only_the_service_asked_for() -> None:
    providers = [police("qn-police", QN, BAI_CHAY), shelter("qn-shelter", TargetGroup.WOMEN)]
    assert ranked(providers, request(ServiceType.SHELTER)) == ["qn-shelter"]


def test_eligibility_by_age_sex_and_target_group() -> None:
    women = shelter("women", TargetGroup.WOMEN)
    mixed = shelter("women-children", TargetGroup.WOMEN_WITH_CHILDREN)
    children = shelter("children", TargetGroup.CHILDREN)
    men = shelter("men", TargetGroup.MEN, province=HAI_PHONG)
    everyone = [women, mixed, children, men]
    shelter_for = request(ServiceType.SHELTER)
    assert ranked(everyone, shelter_for) == ["women", "women-children"]
    assert ranked(everyone, request(ServiceType.SHELTER, survivor=Survivor(is_child=True, sex=Sex.FEMALE))) == [
        "children", "women-children"]
    assert ranked(everyone, request(ServiceType.SHELTER, survivor=Survivor(sex=Sex.MALE))) == ["men"]
    women_only = police("women-desk", QN, BAI_CHAY, sexes=frozenset({Sex.FEMALE}))
    assert ranked([women_only], request(survivor=Survivor(sex=Sex.MALE))) == []
    # Sex not recorded: not excluded (the provider can still decline as ineligible).
    assert ranked([women_only], request(survivor=Survivor(sex=None))) == ["women-desk"]


def test_an_office_closed_until_after_the_deadline_gives_way_to_one_open_now() -> None:
    office = Provider("legal-office", "legal-office", "legal_aid", ServiceType.LEGAL_AID, QN, BAI_CHAY, "0203",
                      open_24_7=False, opening_hours=OFFICE)
    line = Provider("legal-line", "legal-line", "legal_aid", ServiceType.LEGAL_AID, QN, HA_LONG, "1800",
                    open_24_7=True)
    during_office_hours = request(ServiceType.LEGAL_AID)
    assert ranked([office, line], during_office_hours) == ["legal-office", "legal-line"]  # nearer wins
    evening_emergency = request(ServiceType.LEGAL_AID, now=TUESDAY_21, accept_within=timedelta(minutes=15))
    assert ranked([office, line], evening_emergency) == ["legal-line", "legal-office"]
    # With a day to accept, the office opening tomorrow morning is in time, and nearer.
    evening_routine = request(ServiceType.LEGAL_AID, now=TUESDAY_21, accept_within=timedelta(hours=24))
    assert ranked([office, line], evening_routine) == ["legal-office", "legal-line"]


def test_opening_hours_in_vietnam_time() -> None:
    office = Provider("o", "o", "legal_aid", ServiceType.LEGAL_AID, QN, "", "", open_24_7=False, opening_hours=OFFICE)
    assert office.is_open(TUESDAY_10) is True
    assert office.is_open(TUESDAY_10 + timedelta(hours=2)) is False  # 12:00, lunch
    assert office.next_opening(TUESDAY_21) == datetime(2026, 3, 4, 0, 30, tzinfo=UTC)  # Wednesday 07:30
    saturday = datetime(2026, 3, 7, 3, 0, tzinfo=UTC)
    assert office.next_opening(saturday) == datetime(2026, 3, 9, 0, 30, tzinfo=UTC)  # Monday 07:30
    night = OpeningHours.parse([5], "22:00", "06:00")  # Friday night into Saturday
    assert night.is_open(datetime(2026, 3, 7, 5, 0))  # Saturday 05:00
    assert not night.is_open(datetime(2026, 3, 8, 5, 0))  # Sunday 05:00
    assert Provider("u", "u", "legal_aid", ServiceType.LEGAL_AID, QN, "", "", open_24_7=False).is_open(
        TUESDAY_10) is None


def test_a_full_shelter_is_skipped_and_free_beds_break_ties() -> None:
    big = shelter("big", TargetGroup.WOMEN)
    small = shelter("small", TargetGroup.WOMEN)
    neighbour = shelter("neighbour", TargetGroup.WOMEN, province=HAI_PHONG)
    everyone = [big, small, neighbour]
    women = TargetGroup.WOMEN
    assert ranked(everyone, request(ServiceType.SHELTER), {("big-beds", women): 6, ("small-beds", women): 2}) == [
        "big", "small", "neighbour"]
    assert ranked(everyone, request(ServiceType.SHELTER), {("big-beds", women): 0, ("small-beds", women): 2}) == [
        "small", "neighbour"]
    assert ranked(everyone, request(ServiceType.SHELTER), {("big-beds", women): 0, ("small-beds", women): 0}) == [
        "neighbour"]


def test_a_shelter_is_judged_by_the_pool_the_survivor_would_be_placed_in() -> None:
    both = Provider("both", "both", "shelter", ServiceType.SHELTER, QN, "", "1800", open_24_7=True,
                    shelter_id="both-beds", target_groups=frozenset({TargetGroup.WOMEN, TargetGroup.CHILDREN}))
    other = shelter("other", TargetGroup.WOMEN_WITH_CHILDREN)
    girl = Survivor(is_child=True, sex=Sex.FEMALE)
    children_full = {("both-beds", TargetGroup.CHILDREN): 0, ("both-beds", TargetGroup.WOMEN): 5,
                     ("other-beds", TargetGroup.WOMEN_WITH_CHILDREN): 1}
    assert ranked([both, other], request(ServiceType.SHELTER), children_full) == ["both", "other"]
    assert ranked([both, other], request(ServiceType.SHELTER, survivor=girl), children_full) == ["other"]
    women_full = {**children_full, ("both-beds", TargetGroup.CHILDREN): 5, ("both-beds", TargetGroup.WOMEN): 0}
    assert ranked([both, other], request(ServiceType.SHELTER), women_full) == ["other"]
    assert ranked([both, other], request(ServiceType.SHELTER, survivor=girl), women_full) == ["both", "other"]
    # A woman alone may take a women_with_children bed, as shelter places her; a child may not take a woman's.
    wwc_free = {("both-beds", TargetGroup.WOMEN): 0, ("both-beds", TargetGroup.WOMEN_WITH_CHILDREN): 2}
    assert [c.beds_free for c in rank_providers([both], request(ServiceType.SHELTER), wwc_free)] == [2]
    assert ranked([both], request(ServiceType.SHELTER, survivor=girl), wwc_free) == ["both"]  # no figure: tried
    # A shelter that keeps beds for one group is asked for that pool, whoever she is.
    assert [other.bed_group(WOMAN), other.bed_group(girl)] == [TargetGroup.WOMEN_WITH_CHILDREN] * 2
    assert ranked([other], request(ServiceType.SHELTER, survivor=girl),
                  {("other-beds", TargetGroup.CHILDREN): 3, ("other-beds", TargetGroup.WOMEN_WITH_CHILDREN): 0}) == []


def test_consent_limited_to_sectors_and_providers_already_tried() -> None:
    providers = [police("qn-baichay", QN, BAI_CHAY), police("qn-halong", QN, HA_LONG)]
    assert ranked(providers, request(exclude=frozenset({"qn-baichay"}))) == ["qn-halong"]
    assert ranked(providers, request(sectors=frozenset({"health"}))) == []
    assert ranked(providers, request(sectors=frozenset({"police", "health"}))) == ["qn-baichay", "qn-halong"]
    inactive = police("qn-old", QN, BAI_CHAY, active=False)
    assert ranked([inactive], request()) == []


def test_the_same_inputs_always_give_the_same_order() -> None:
    providers = [police(f"qn-{n}", QN, HA_LONG) for n in "dcba"]
    assert ranked(providers, request()) == ["qn-a", "qn-b", "qn-c", "qn-d"]


def test_a_shelter_must_offer_every_accessibility_need_of_hers() -> None:
    step_free = replace(shelter("qn-spc", TargetGroup.WOMEN),
                        accessibility=frozenset({"step_free", "accessible_toilet"}))
    stairs = shelter("qn-stairs", TargetGroup.WOMEN)
    wheelchair_user = replace(WOMAN, accessibility_needs=frozenset({"step_free", "accessible_toilet"}))
    assert ranked([stairs, step_free], request(ServiceType.SHELTER, survivor=wheelchair_user)) == ["qn-spc"]
    deaf = replace(WOMAN, accessibility_needs=frozenset({"sign_language"}))
    assert ranked([stairs, step_free], request(ServiceType.SHELTER, survivor=deaf)) == []  # escalated: no provider
    assert ranked([stairs, step_free], request(ServiceType.SHELTER)) == ["qn-spc", "qn-stairs"]
    # Other services are not bed places: accessibility is for the case worker to arrange there.
    assert ranked([police("qn-police")], request(survivor=deaf)) == ["qn-police"]
