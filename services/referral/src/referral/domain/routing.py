"""Who gets a need: the providers of the service ranked for one survivor. No I/O.

Order, most important first:
1. only active providers of the service, eligible for the survivor (adult/child, sex, target
   group), covered by her consent's recipient sectors, not tried before for this need, in reach
   (her commune, her province, a neighbouring province, or a declared service area), and for
   shelters not known to be full (in the pools she could be placed in);
2. reachable before the accept-by deadline (open now, or opening in time; unknown hours count as
   reachable) — so an emergency never waits for an office to open;
3. nearer: the survivor's commune, then her province, then a neighbouring province;
4. open now;
5. shelters with more free beds in those pools;
6. the provider id, so the same inputs always give the same answer.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

import refnet_geo as geo
from referral.domain.model import Survivor
from referral.domain.providers import Provider
from refnet_platform.vocabulary import ServiceType, TargetGroup


@dataclass(frozen=True)
class RoutingRequest:
    service_type: ServiceType
    province_code: str
    commune_code: str
    survivor: Survivor
    now: datetime
    accept_by: datetime
    # Recipient sectors the consent covers; empty: any.
    sectors: frozenset[str] = frozenset()
    exclude: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Candidate:
    provider: Provider
    area_rank: int
    open_now: bool
    reachable: bool
    beds_free: int | None


@lru_cache(maxsize=65536)
def _distance_rank(province_code: str, commune_code: str, provider_province: str, provider_commune: str
                   ) -> int | None:
    """Remembered: routing asks the same few pairs of places for every case, and on today's map (after the
    2025 reform, which is all it will ever read) the answer depends on the codes alone."""
    try:
        return geo.distance_rank(province_code, commune_code or None, provider_province, provider_commune or None)
    except geo.GeoError:
        return None


def area_rank(provider: Provider, province_code: str, commune_code: str) -> int | None:
    """0 same commune, 1 same province, 2 neighbouring province, None out of reach."""
    rank = _distance_rank(province_code, commune_code, provider.province_code, provider.commune_code)
    if commune_code and commune_code in provider.service_areas:
        return geo.SAME_COMMUNE
    if province_code in provider.service_areas:
        return geo.SAME_PROVINCE if rank is None else min(rank, geo.SAME_PROVINCE)
    return rank


def rank_providers(providers: Iterable[Provider], request: RoutingRequest,
                   beds_free: Mapping[tuple[str, TargetGroup], int] | None = None) -> list[Candidate]:
    """`beds_free`: live free beds by shelter id and pool; a shelter is judged by the pools the survivor
    could be placed in."""
    beds_free = beds_free or {}
    candidates: list[Candidate] = []
    for p in providers:
        if (not p.active or p.service_type is not request.service_type or p.provider_id in request.exclude
                or not p.eligible(request.survivor) or not p.covered_by(request.sectors)):
            continue
        rank = area_rank(p, request.province_code, request.commune_code)
        if rank is None:
            continue
        free = p.free_beds(request.survivor, beds_free) if p.is_shelter else None
        if free is not None and free <= 0:
            continue
        opening = p.next_opening(request.now)
        candidates.append(Candidate(p, rank, open_now=opening == request.now,
                                    reachable=opening is None or opening <= request.accept_by, beds_free=free))

    def key(c: Candidate) -> tuple[bool, int, bool, int, str]:
        return (not c.reachable, c.area_rank, not c.open_now, -(c.beds_free or 0), c.provider.provider_id)

    return sorted(candidates, key=key)
