from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, insert, select, update

from referral.adapters.tables import providers, referrals
from referral.domain.model import Provider, Referral, Status
from refnet_platform.vocabulary import RiskLevel, ServiceType

REFERRAL_FIELDS = ("referral_id", "case_id", "need_id", "provider_id", "province_code", "emergency",
                   "case_worker_id", "requested_at", "shelter_id", "reason")


class DirectoryRepository:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def upsert(self, provider: Provider) -> bool:
        """Adds a provider unless present; returns True when it was new."""
        exists = self.conn.execute(
            select(providers.c.provider_id).where(providers.c.provider_id == provider.provider_id)).first()
        if exists:
            return False
        self.conn.execute(insert(providers).values(**_provider_row(provider)))
        return True

    def in_province(self, province_code: str, service_type: ServiceType | None = None) -> list[Provider]:
        query = select(providers).where(providers.c.province_code == province_code)
        if service_type is not None:
            query = query.where(providers.c.service_type == str(service_type))
        return [_provider(r) for r in self.conn.execute(query.order_by(providers.c.provider_id)).mappings()]


class ReferralRepository:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def add(self, referral: Referral) -> None:
        self.conn.execute(insert(referrals).values(
            **{f: getattr(referral, f) for f in REFERRAL_FIELDS}, service_type=str(referral.service_type),
            status=str(referral.status), risk_level=str(referral.risk_level)))

    def get(self, referral_id: str) -> Referral | None:
        row = self.conn.execute(select(referrals).where(referrals.c.referral_id == referral_id)).mappings().first()
        return _referral(row) if row else None

    def for_need(self, need_id: str) -> list[Referral]:
        rows = self.conn.execute(select(referrals).where(referrals.c.need_id == need_id)).mappings()
        return [_referral(r) for r in rows]

    def assigned_to(self, provider_id: str, case_id: str = "") -> list[Referral]:
        query = select(referrals).where(referrals.c.provider_id == provider_id)
        if case_id:
            query = query.where(referrals.c.case_id == case_id)
        return [_referral(r) for r in self.conn.execute(query.order_by(referrals.c.requested_at)).mappings()]

    def save_status(self, referral: Referral) -> None:
        self.conn.execute(update(referrals).where(referrals.c.referral_id == referral.referral_id).values(
            status=str(referral.status), reason=referral.reason))


def _provider_row(p: Provider) -> dict[str, Any]:
    return {"provider_id": p.provider_id, "name": p.name, "sector": p.sector, "service_type": str(p.service_type),
            "province_code": p.province_code, "commune_code": p.commune_code, "public_contact": p.public_contact,
            "open_24_7": p.open_24_7, "shelter_id": p.shelter_id}


def _provider(r: Any) -> Provider:
    return Provider(**{**dict(r), "service_type": ServiceType(r["service_type"])})


def _referral(r: Any) -> Referral:
    return Referral(**{**dict(r), "service_type": ServiceType(r["service_type"]), "status": Status(r["status"]),
                       "risk_level": RiskLevel(r["risk_level"])})
