"""`GET /api/v1/reports/export.csv`: one anonymised row per person, CTDC global-dataset layout.

One row per person: per case, its first accepted referral (registration = the referral's
submission). Only plain columns are read (no decryption): no name, date of birth, document number,
place or free text can appear. Columns follow CTDC's global dataset codebook (README, Reports).

k-anonymity with k = REPORT_MIN_CELL over the quasi-identifiers (yearOfRegistration, gender,
ageBroad, majorityStatus, citizenship, CountryOfExploitation): rows of an equivalence class smaller
than k are generalised step by step (age band blanked, keeping the majority status; then country of
exploitation; then gender; then citizenship) and the rows still in a class smaller than k are
dropped. A class is settled whole or moved on whole, so settled classes never shrink.

The period is whole calendar years (`from` a 1 January, `to` a 31 December; schemas.ExportArgsSchema):
the year of registration is the only time quasi-identifier, so two exports of periods cutting a year
(1 March; 1 to 2 March) would differ by the rows of the days between them, a person singled out.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from .. import audit
from ..audit.actions import AuditAction
from ..referrals.models import Referral
from ..referrals.states import ReferralStatus

QUASI_IDENTIFIERS = (
    "yearOfRegistration",
    "gender",
    "ageBroad",
    "majorityStatus",
    "citizenship",
    "CountryOfExploitation",
)
FLAGS = (
    "isForcedLabour",
    "isSexualExploit",
    "isOtherExploit",
    "isSexAndLabour",
    "isForcedMarriage",
    "isOrganRemoval",
)
COLUMNS = ("Datasource", *QUASI_IDENTIFIERS, *FLAGS)
# Each step blanks one more quasi-identifier of the rows still in a too small class.
GENERALISE = ("ageBroad", "CountryOfExploitation", "gender", "citizenship")

_GENDER = {"female": "Female", "male": "Male"}
_LABOUR = {"forced_labour", "domestic_servitude", "begging"}
_OTHER = {"criminal_activity", "other"}


def _row(
    year: int,
    sex: str | None,
    band: str | None,
    minor: bool | None,
    nationality: str | None,
    country: str | None,
    types: list[str],
) -> dict[str, str]:
    kinds = set(types or [])
    labour, sexual = bool(kinds & _LABOUR), "sexual" in kinds
    return {
        "Datasource": "Case Management",
        "yearOfRegistration": str(year),
        "gender": _GENDER.get(sex or "", ""),
        "ageBroad": band or "",
        "majorityStatus": "" if minor is None else ("Minor" if minor else "Adult"),
        "citizenship": nationality or "",
        "CountryOfExploitation": country or "",
        "isForcedLabour": str(int(labour)),
        "isSexualExploit": str(int(sexual)),
        "isOtherExploit": str(int(bool(kinds & _OTHER))),
        "isSexAndLabour": str(int(labour and sexual)),
        "isForcedMarriage": str(int("forced_marriage" in kinds)),
        "isOrganRemoval": str(int("organ_removal" in kinds)),
    }


def _key(row: dict[str, str]) -> tuple[str, ...]:
    return tuple(row[q] for q in QUASI_IDENTIFIERS)


def anonymise(rows: list[dict[str, str]], k: int) -> list[dict[str, str]]:
    """Generalise, then drop, until every class over the quasi-identifiers holds at least k rows."""
    rows = [dict(r) for r in rows]
    pending = list(range(len(rows)))
    for step in (None, *GENERALISE):
        if step is not None:
            for i in pending:
                rows[i][step] = ""
        sizes = Counter(_key(r) for r in rows)
        pending = [i for i in pending if sizes[_key(rows[i])] < k]
    dropped = set(pending)
    kept = [r for i, r in enumerate(rows) if i not in dropped]
    sizes = Counter(_key(r) for r in kept)
    if any(n < k for n in sizes.values()):  # the invariant, checked on every export
        raise RuntimeError("export would not be k-anonymous")
    return sorted(kept, key=lambda r: [r[c] for c in COLUMNS])


def people(
    session: Session, date_from: date | None = None, date_to: date | None = None
) -> list[dict[str, str]]:
    """One row per person (the first accepted referral of each case), from plain columns only."""
    r = Referral.__table__.c
    stmt = (
        sa.select(
            r.case_id,
            r.submitted_at,
            r.sex,
            r.age_band,
            r.is_minor,
            r.nationality,
            r.identified_country,
            r.exploitation_types,
        )
        .where(r.status == ReferralStatus.ACCEPTED.value, r.case_id.is_not(None))
        .order_by(r.case_id, r.submitted_at, r.id)
    )
    if date_from is not None:
        stmt = stmt.where(r.submitted_at >= datetime.combine(date_from, time(), UTC))
    if date_to is not None:
        stmt = stmt.where(r.submitted_at < datetime.combine(date_to + timedelta(days=1), time(), UTC))
    out, seen = [], set()
    for row in session.execute(stmt):
        if row.case_id in seen:
            continue
        seen.add(row.case_id)
        sex = getattr(row.sex, "value", row.sex)
        band = getattr(row.age_band, "value", row.age_band)
        out.append(
            _row(
                row.submitted_at.year,
                sex,
                band,
                row.is_minor,
                row.nationality,
                row.identified_country,
                row.exploitation_types,
            )
        )
    return out


def export_csv(
    session: Session, actor: Any, *, k: int, date_from: date | None = None, date_to: date | None = None
) -> str:
    """The CTDC export as CSV; the export itself is an audit event (period and row count only)."""
    rows = anonymise(people(session, date_from, date_to), k)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    audit.record(session, actor=actor, action=AuditAction.REPORT_EXPORT, resource_type="ctdc_export",
                 details={"date_from": date_from, "date_to": date_to, "rows": len(rows), "min_cell": k})
    session.commit()
    return buffer.getvalue()
