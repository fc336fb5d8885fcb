"""Case work's rows: assessments, plans, follow-ups, reviews, reassignments and a child's steps, and the case
lists. What a case worker writes is sealed with the case's own key (crypto.Vault.seal_row)."""

from __future__ import annotations

import base64
import json
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, String, and_, cast, insert, or_, select, update

from intake.adapters.crypto import Vault
from intake.adapters.repository import NO_DEADLINE, _aware
from intake.adapters.tables import (
    assessments,
    calls,
    case_assignments,
    case_keys,
    case_plans,
    case_reviews,
    case_steps,
    cases,
    follow_ups,
    plan_goals,
    referrals,
)
from intake.domain.casework import (
    Assessment,
    CaseFilter,
    CasePlan,
    CaseSummary,
    Difficulty,
    FollowUp,
    FollowUpKind,
    FunctionalDifficulty,
    FunctionalDomain,
    Goal,
    GoalStatus,
    ResponsibleKind,
    Review,
    ReviewOutcome,
    Step,
    StepStatus,
)
from intake.domain.model import CaseStatus, CaseStep
from refnet_platform.caller import Caller
from refnet_platform.errors import InvalidArgument
from refnet_platform.vocabulary import RiskLevel, ServiceType

_INSERT_STEPS = insert(case_steps)


def _step_values(step: Step) -> dict[str, object]:
    return dict(status=str(step.status), due_at=step.due_at, opened_at=step.opened_at, done_at=step.done_at,
                escalated_at=step.escalated_at)


class CaseWorkRepository:
    def __init__(self, conn: Connection, vault: Vault) -> None:
        self.conn = conn
        self.vault = vault

    # --- sealing ------------------------------------------------------------------------------

    def case_key(self, case_id: str) -> bytes | None:
        """The case's own key; None once the case was erased."""
        row = self.conn.execute(select(case_keys.c.wrapped_key, case_keys.c.key_id)
                                .where(case_keys.c.case_id == case_id)).first()
        return None if row is None else self.vault.unwrap(case_id, bytes(row[0]), row[1])

    def _seal(self, key: bytes, case_id: str, record_id: str, data: dict[str, object]) -> bytes:
        return self.vault.seal_row(key, case_id, record_id, json.dumps(data, ensure_ascii=False).encode())

    @staticmethod
    def _open(key: bytes | None, case_id: str, record_id: str, sealed: bytes) -> dict[str, Any]:
        return {} if key is None else json.loads(Vault.open_row(key, case_id, record_id, bytes(sealed)))

    # --- writes -------------------------------------------------------------------------------

    def add_assessment(self, key: bytes, case_id: str, a: Assessment) -> None:
        sealed = self._seal(key, case_id, a.assessment_id, {
            "difficulties": [[str(d.domain), str(d.difficulty)] for d in a.difficulties],
            "accessibility_needs": list(a.accessibility_needs), "summary": a.summary})
        self.conn.execute(insert(assessments), dict(
            assessment_id=a.assessment_id, case_id=case_id, risk_level=str(a.risk_level),
            immediate_danger=a.immediate_danger, needs=[str(n) for n in a.needs], assessed_by=a.assessed_by,
            assessed_at=a.assessed_at, ciphertext=sealed))

    def latest_plan_version(self, case_id: str) -> int:
        version = self.conn.execute(select(case_plans.c.version).where(case_plans.c.case_id == case_id)
                                    .order_by(case_plans.c.version.desc()).limit(1)).scalar()
        return int(version or 0)

    def add_plan(self, key: bytes, case_id: str, plan: CasePlan) -> None:
        self.conn.execute(insert(case_plans), dict(
            plan_id=plan.plan_id, case_id=case_id, version=plan.version, review_due_at=plan.review_due_at,
            recorded_by=plan.recorded_by, recorded_at=plan.recorded_at))
        self.conn.execute(insert(plan_goals), [dict(
            goal_id=g.goal_id, plan_id=plan.plan_id, case_id=case_id, position=i, services=[str(s) for s in g.services],
            responsible_kind=str(g.responsible_kind), responsible_id=g.responsible_id, due_at=g.due_at,
            status=str(g.status), ciphertext=self._seal(key, case_id, g.goal_id, {"description": g.description}))
            for i, g in enumerate(plan.goals)])

    def add_follow_up(self, key: bytes, case_id: str, f: FollowUp, at: datetime) -> None:
        self.conn.execute(insert(follow_ups), dict(
            follow_up_id=f.follow_up_id, case_id=case_id, kind=str(f.kind), occurred_at=f.occurred_at,
            recorded_by=f.recorded_by, recorded_at=at,
            ciphertext=self._seal(key, case_id, f.follow_up_id, {"note": f.note})))

    def add_review(self, key: bytes, case_id: str, r: Review) -> None:
        self.conn.execute(insert(case_reviews), dict(
            review_id=r.review_id, case_id=case_id, outcome=str(r.outcome), next_review_at=r.next_review_at,
            reviewed_by=r.reviewed_by, reviewed_at=r.reviewed_at,
            ciphertext=self._seal(key, case_id, r.review_id, {"note": r.note})))

    def add_assignment(self, assignment_id: str, case_id: str, from_id: str, to_id: str, reason: str, by: str,
                       at: datetime) -> None:
        self.conn.execute(insert(case_assignments), dict(
            assignment_id=assignment_id, case_id=case_id, from_case_worker_id=from_id, to_case_worker_id=to_id,
            reason=reason, assigned_by=by, assigned_at=at))

    def save_step(self, case_id: str, step: Step, new: bool) -> None:
        values = _step_values(step)
        if new:
            self.conn.execute(_INSERT_STEPS, dict(case_id=case_id, step=str(step.step), **values))
        else:
            self.conn.execute(update(case_steps).where(case_steps.c.case_id == case_id,
                                                       case_steps.c.step == str(step.step)).values(**values))

    def add_steps(self, case_id: str, steps: list[Step]) -> None:
        """A new case's first steps, in one statement."""
        if steps:
            self.conn.execute(_INSERT_STEPS, [dict(case_id=case_id, step=str(step.step), **_step_values(step))
                                              for step in steps])

    # --- reads --------------------------------------------------------------------------------

    def steps(self, case_id: str) -> list[Step]:
        rows = self.conn.execute(select(case_steps).where(case_steps.c.case_id == case_id)).mappings()
        order = list(CaseStep)
        found = [Step(CaseStep(r["step"]), StepStatus(r["status"]), _aware(r["due_at"]),
                      _aware(r["opened_at"]), _aware(r["done_at"]), _aware(r["escalated_at"]))  # type: ignore[arg-type]
                 for r in rows]
        return sorted(found, key=lambda s: order.index(s.step))

    def open_goal_due(self, case_id: str) -> datetime | None:
        """The earliest due date of the current plan's open goals."""
        version = self.latest_plan_version(case_id)
        if not version:
            return None
        due = self.conn.execute(
            select(plan_goals.c.due_at).join(case_plans, case_plans.c.plan_id == plan_goals.c.plan_id)
            .where(case_plans.c.case_id == case_id, case_plans.c.version == version,
                   plan_goals.c.status == str(GoalStatus.OPEN))
            .order_by(plan_goals.c.due_at).limit(1)).scalar()
        return _aware(due)

    def due_steps(self, now: datetime, limit: int) -> list[tuple[str, CaseStep]]:
        """Open steps past their deadline that were not escalated yet, oldest deadline first."""
        rows = self.conn.execute(
            select(case_steps.c.case_id, case_steps.c.step)
            .where(case_steps.c.status == str(StepStatus.OPEN), case_steps.c.escalated_at.is_(None),
                   case_steps.c.due_at <= now)
            .order_by(case_steps.c.due_at).limit(limit))
        return [(case_id, CaseStep(step)) for case_id, step in rows]

    def assessments(self, key: bytes | None, case_id: str) -> list[Assessment]:
        found = []
        for r in self.conn.execute(select(assessments).where(assessments.c.case_id == case_id)
                                   .order_by(assessments.c.assessed_at)).mappings():
            sealed = self._open(key, case_id, r["assessment_id"], r["ciphertext"])
            found.append(Assessment(
                assessment_id=r["assessment_id"], risk_level=RiskLevel(r["risk_level"]),
                immediate_danger=r["immediate_danger"], needs=tuple(ServiceType(n) for n in r["needs"]),
                assessed_by=r["assessed_by"], assessed_at=_aware(r["assessed_at"]),  # type: ignore[arg-type]
                difficulties=tuple(FunctionalDifficulty(FunctionalDomain(d), Difficulty(level))
                                   for d, level in sealed.get("difficulties", ())),
                accessibility_needs=tuple(sealed.get("accessibility_needs", ())), summary=sealed.get("summary", "")))
        return found

    def plan(self, key: bytes | None, case_id: str) -> CasePlan | None:
        version = self.latest_plan_version(case_id)
        if not version:
            return None
        p = self.conn.execute(select(case_plans).where(case_plans.c.case_id == case_id,
                                                       case_plans.c.version == version)).mappings().one()
        goals = [Goal(goal_id=g["goal_id"],
                      description=self._open(key, case_id, g["goal_id"], g["ciphertext"]).get("description", ""),
                      services=tuple(ServiceType(s) for s in g["services"]),
                      responsible_kind=ResponsibleKind(g["responsible_kind"]), responsible_id=g["responsible_id"],
                      due_at=_aware(g["due_at"]), status=GoalStatus(g["status"]))
                 for g in self.conn.execute(select(plan_goals).where(plan_goals.c.plan_id == p["plan_id"])
                                            .order_by(plan_goals.c.position)).mappings()]
        return CasePlan(plan_id=p["plan_id"], version=p["version"], goals=goals,
                        review_due_at=_aware(p["review_due_at"]), recorded_by=p["recorded_by"],
                        recorded_at=_aware(p["recorded_at"]))  # type: ignore[arg-type]

    def follow_ups(self, key: bytes | None, case_id: str) -> list[FollowUp]:
        return [FollowUp(follow_up_id=r["follow_up_id"], kind=FollowUpKind(r["kind"]),
                         note=self._open(key, case_id, r["follow_up_id"], r["ciphertext"]).get("note", ""),
                         occurred_at=_aware(r["occurred_at"]), recorded_by=r["recorded_by"])  # type: ignore[arg-type]
                for r in self.conn.execute(select(follow_ups).where(follow_ups.c.case_id == case_id)
                                           .order_by(follow_ups.c.occurred_at)).mappings()]

    def reviews(self, key: bytes | None, case_id: str) -> list[Review]:
        return [Review(review_id=r["review_id"], outcome=ReviewOutcome(r["outcome"]),
                       note=self._open(key, case_id, r["review_id"], r["ciphertext"]).get("note", ""),
                       next_review_at=_aware(r["next_review_at"]), reviewed_by=r["reviewed_by"],
                       reviewed_at=_aware(r["reviewed_at"]))  # type: ignore[arg-type]
                for r in self.conn.execute(select(case_reviews).where(case_reviews.c.case_id == case_id)
                                           .order_by(case_reviews.c.reviewed_at)).mappings()]

    # --- the case lists -----------------------------------------------------------------------

    def list_cases(self, caller: Caller, wanted: CaseFilter, page_size: int, page_token: str
                   ) -> tuple[list[CaseSummary], str]:
        """The caller's provinces' cases that pass the filter, due first (no deadline last), then by case id;
        keyset-paginated: the token is where the last page ended."""
        query = select(cases)
        if not caller.national:
            query = query.where(cases.c.province_code.in_(sorted(caller.provinces)))
        if wanted.province_code:
            query = query.where(cases.c.province_code == wanted.province_code)
        if wanted.mine:
            query = query.where(cases.c.case_worker_id == caller.subject_id)
        if wanted.case_worker_id:
            query = query.where(cases.c.case_worker_id == wanted.case_worker_id)
        if wanted.status is not None:
            query = query.where(cases.c.status == str(wanted.status))
        if wanted.step is not None:
            query = query.where(cases.c.current_step == str(wanted.step))
        if wanted.due_before is not None:
            query = query.where(cases.c.next_due_at <= wanted.due_before)
        if wanted.risk_level is not None:
            query = query.where(cases.c.risk_level == str(wanted.risk_level))
        if wanted.case_type:
            # The JSON list as text, e.g. ["disability_support", "older_person_support"]: codes only, quoted.
            query = query.where(cast(cases.c.case_types, String).like(f'%"{wanted.case_type}"%'))
        if wanted.query:
            by_referral = select(referrals.c.case_id).where(referrals.c.referral_id == wanted.query)
            by_call = select(calls.c.case_id).where(calls.c.call_id == wanted.query)  # a follow-up call too
            query = query.where(or_(cases.c.case_id == wanted.query, cases.c.call_id == wanted.query,
                                    cases.c.case_id.in_(by_referral), cases.c.case_id.in_(by_call)))
        if page_token:
            after_due, after_id = _parse_token(page_token)
            query = query.where(or_(cases.c.due_order > after_due,
                                    and_(cases.c.due_order == after_due, cases.c.case_id > after_id)))
        rows = self.conn.execute(query.order_by(cases.c.due_order, cases.c.case_id).limit(page_size + 1)
                                 ).mappings().all()
        more = len(rows) > page_size
        rows = rows[:page_size]
        summaries = [_summary(r) for r in rows]
        token = _token(_aware(rows[-1]["due_order"]) or NO_DEADLINE, rows[-1]["case_id"]) if more else ""
        return summaries, token


def _summary(r: Any) -> CaseSummary:
    risk = RiskLevel(r["risk_level"])
    return CaseSummary(
        case_id=r["case_id"], province_code=r["province_code"], case_types=tuple(r["case_types"]), risk_level=risk,
        emergency=r["immediate_danger"] or risk is RiskLevel.HIGH, is_child=r["is_child"],
        status=CaseStatus(r["status"]), current_step=CaseStep(r["current_step"]) if r["current_step"] else None,
        next_due_at=_aware(r["next_due_at"]), case_worker_id=r["case_worker_id"],
        registered_at=_aware(r["registered_at"]), call_id=r["call_id"] or "")  # type: ignore[arg-type]


def _token(due: datetime, case_id: str) -> str:
    raw = json.dumps([due.isoformat(), case_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _parse_token(token: str) -> tuple[datetime, str]:
    try:
        due, case_id = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        return datetime.fromisoformat(due), str(case_id)
    except (ValueError, TypeError):
        raise InvalidArgument("page_token", "is not a token this list gave") from None
