from __future__ import annotations

from sqlalchemy import Connection, insert, select, update

from intake.adapters.crypto import Vault
from intake.adapters.tables import case_keys, case_personal_data, cases, needs
from intake.domain.model import Case, Contact, Need, Survivor
from refnet_platform.vocabulary import CaseType, RiskLevel, ServiceType, Sex


class CaseRepository:
    def __init__(self, conn: Connection, vault: Vault) -> None:
        self.conn = conn
        self.vault = vault

    def add(self, case: Case, contact: Contact, narrative: str) -> None:
        self.conn.execute(insert(cases).values(
            case_id=case.case_id, client_request_id=case.client_request_id,
            province_code=case.province_code, commune_code=case.commune_code,
            case_types=[str(t) for t in case.case_types], is_child=case.survivor.is_child,
            age=case.survivor.age, sex=str(case.survivor.sex) if case.survivor.sex else None,
            risk_level=str(case.risk_level), immediate_danger=case.immediate_danger,
            case_worker_id=case.case_worker_id, registered_at=case.registered_at,
        ))
        if case.needs:
            self.conn.execute(insert(needs), [
                {"need_id": n.need_id, "case_id": case.case_id, "service_type": str(n.service_type),
                 "consented": n.consented, "referral_id": "", "referral_status": "", "provider_id": ""}
                for n in case.needs
            ])
        key, wrapped = self.vault.new_case_key(case.case_id)
        self.conn.execute(insert(case_keys).values(case_id=case.case_id, wrapped_key=wrapped))
        self.conn.execute(insert(case_personal_data).values(
            case_id=case.case_id, ciphertext=self.vault.seal_personal_data(key, case.case_id, contact, narrative)))

    def get(self, case_id: str) -> Case | None:
        row = self.conn.execute(select(cases).where(cases.c.case_id == case_id)).mappings().first()
        return self._load(row) if row else None

    def by_client_request(self, client_request_id: str) -> Case | None:
        row = self.conn.execute(
            select(cases).where(cases.c.client_request_id == client_request_id)).mappings().first()
        return self._load(row) if row else None

    def update_need(self, need: Need) -> None:
        self.conn.execute(update(needs).where(needs.c.need_id == need.need_id).values(
            referral_id=need.referral_id, referral_status=need.referral_status, provider_id=need.provider_id))

    def _load(self, row: object) -> Case:
        r = dict(row)  # type: ignore[call-overload]
        need_rows = self.conn.execute(
            select(needs).where(needs.c.case_id == r["case_id"]).order_by(needs.c.need_id)).mappings()
        return Case(
            case_id=r["case_id"], client_request_id=r["client_request_id"],
            province_code=r["province_code"], commune_code=r["commune_code"],
            case_types=[CaseType(t) for t in r["case_types"]],
            survivor=Survivor(is_child=r["is_child"], age=r["age"], sex=Sex(r["sex"]) if r["sex"] else None),
            needs=[Need(need_id=n["need_id"], service_type=ServiceType(n["service_type"]), consented=n["consented"],
                        referral_id=n["referral_id"], referral_status=n["referral_status"],
                        provider_id=n["provider_id"]) for n in need_rows],
            risk_level=RiskLevel(r["risk_level"]), immediate_danger=r["immediate_danger"],
            case_worker_id=r["case_worker_id"], registered_at=r["registered_at"],
        )
