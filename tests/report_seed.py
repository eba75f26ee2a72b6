"""A population of referrals and cases inserted directly, with known plain values, for report tests."""

from __future__ import annotations

import itertools
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import sqlalchemy as sa

from referral_api.cases.models import Case, CaseEvent
from referral_api.referrals.models import Referral

_numbers = itertools.count(1)


@dataclass
class Group:
    year: int
    country: str
    referrals: int
    accepted: int = 0
    arrived: int = 0
    reintegrated_by_move: int = 0
    reintegrated_by_closure: int = 0
    sex: str = "female"
    age_band: str = "26-35"
    types: list[str] = field(default_factory=lambda: ["forced_labour"])
    source: str = "police"


def seed(session, org_id, groups: list[Group]) -> list[dict]:
    """Insert the groups; each referral submitted on 1 March of its year (plus its index in hours).

    The i-th accepted referral of a group is decided i days after submission, arrives 30 + i days
    after and reintegrates 100 + i days after (by a move, or by closing as reintegrated)."""
    made = []
    for g in groups:
        for i in range(g.referrals):
            n = next(_numbers)
            submitted = datetime(g.year, 3, 1, 8, tzinfo=UTC) + timedelta(hours=i % 5)
            referral = {
                "id": uuid.uuid4(),
                "reference": f"REF-T-{n:06d}",
                "version": 1,
                "concern": "trafficking",
                "source": g.source,
                "submitted_by_organisation_id": org_id,
                "submitted_by_client_id": "seed",
                "submitted_at": submitted,
                "status_changed_at": submitted,
                "sex": g.sex,
                "age_band": g.age_band,
                "is_minor": g.age_band in ("0-11", "12-17"),
                "nationality": "MN",
                "identified_country": g.country,
                "identified_on": submitted.date() - timedelta(days=3),
                "exploitation_types": g.types,
                "urgency": "routine",
                "consent_given": True,
                "share_with": [],
                "minimised": [],
                "status": "submitted",
                "possible_duplicates": 0,
            }
            if i < g.accepted:
                case_id = uuid.uuid4()
                arrived = i < g.arrived
                by_move = arrived and i < g.reintegrated_by_move
                by_closure = (
                    arrived
                    and g.reintegrated_by_move <= i < g.reintegrated_by_move + g.reintegrated_by_closure
                )
                reintegrated_at = submitted + timedelta(days=100 + i)
                session.execute(
                    sa.insert(Case.__table__).values(
                        id=case_id,
                        reference=f"CASE-T-{n:06d}",
                        opened_by_organisation_id=org_id,
                        share_with=[],
                        stage="closed" if by_closure else ("reintegration" if by_move else "verification"),
                        stage_since=submitted,
                        opened_at=submitted + timedelta(days=i),
                        arrived_on=(submitted + timedelta(days=30 + i)).date() if arrived else None,
                        closure_reason="reintegrated" if by_closure else None,
                        closed_at=reintegrated_at if by_closure else None,
                    )
                )
                if arrived:
                    _event(
                        session,
                        case_id,
                        org_id,
                        "in_transit",
                        "arrived",
                        submitted + timedelta(days=30 + i),
                        {"entry_point": "chinggis_khaan_airport" if i % 2 == 0 else "zamiin_uud"},
                    )
                if by_move:
                    _event(session, case_id, org_id, "rehabilitation", "reintegration", reintegrated_at, {})
                referral.update(status="accepted", case_id=case_id, decided_at=submitted + timedelta(days=i))
            session.execute(sa.insert(Referral.__table__).values(**referral))
            made.append(referral)
    session.commit()
    return made


def _event(session, case_id, org_id, from_stage, to_stage, when, details):
    session.execute(
        sa.insert(CaseEvent.__table__).values(
            id=uuid.uuid4(),
            case_id=case_id,
            kind="moved",
            from_stage=from_stage,
            to_stage=to_stage,
            occurred_at=when,
            organisation_id=org_id,
            client_id="seed",
            details={"from": from_stage, "to": to_stage, "move": "forward", **details},
        )
    )


def day(y: int, m: int, d: int) -> date:
    return date(y, m, d)
