"""Duplicate detection through blind indexes only: no scan of all records, no decryption of all names.

A referral stores the truncated HMACs of its passport number, national id, and each of its names
with the birth year (privacy/blind_index.py folds Cyrillic and Latin spellings together). Candidates
are the referrals sharing one of those digests; only they are decrypted, to score and explain.
"""

from __future__ import annotations

import functools
import uuid
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from ..privacy import get_privacy, load_keys, normalise_document_number, normalise_name
from .models import MatchKey, Referral

PASSPORT = "passport"
NATIONAL_ID = "national_id"
NAME_BIRTH_YEAR = "name_birth_year"

DATE_OF_BIRTH = "date_of_birth"

# How much each kind of agreement says about being the same person; a conflicting exact date of
# birth (two different known dates) counts against.
WEIGHTS = {PASSPORT: 0.6, NATIONAL_ID: 0.6, NAME_BIRTH_YEAR: 0.4, DATE_OF_BIRTH: 0.2}
CONFLICT_PENALTY = 0.3


def birth_years(*, date_of_birth: date | None, estimated_age: int | None, identified_on: date) -> list[int]:
    """The birth years a person may have: the exact one, or a year either side of an estimate."""
    if date_of_birth is not None:
        return [date_of_birth.year]
    if estimated_age is not None:
        year = identified_on.year - estimated_age
        return [year - 1, year, year + 1]
    return []


def _names(values: dict) -> list[str]:
    full = " ".join(v for v in (values.get("given_name"), values.get("family_name")) if v)
    names = [full, values.get("names_cyrillic") or "", *(values.get("aliases") or [])]
    return [n for n in names if n and normalise_name(n)]


def match_keys(session: Session, values: dict) -> set[tuple[str, str]]:
    """The (kind, digest) pairs of a person's identifying values; never a name without a year."""
    indexer = get_privacy(session).indexer
    keys: set[tuple[str, str]] = set()
    if values.get("passport_number") and normalise_document_number(values["passport_number"]):
        keys.add((PASSPORT, indexer.passport(values["passport_number"])))
    if values.get("national_id") and normalise_document_number(values["national_id"]):
        keys.add((NATIONAL_ID, indexer.national_id(values["national_id"])))
    years = birth_years(
        date_of_birth=values.get("date_of_birth"),
        estimated_age=values.get("estimated_age"),
        identified_on=values["identified_on"],
    )
    for name in _names(values):
        for year in years:
            if 1900 <= year <= 2100:
                keys.add((NAME_BIRTH_YEAR, indexer.name_birth_year(name, year)))
    return keys


def person_values(referral: Referral) -> dict:
    """The identifying values of a stored referral (decrypts this one record)."""
    return {
        "given_name": referral.given_name,
        "family_name": referral.family_name,
        "names_cyrillic": referral.names_cyrillic,
        "aliases": referral.aliases,
        "passport_number": referral.passport_number,
        "national_id": referral.national_id,
        "date_of_birth": referral.date_of_birth,
        "estimated_age": referral.estimated_age,
        "identified_on": referral.identified_on,
    }


def add_keys(session: Session, referral_id: uuid.UUID, keys: set[tuple[str, str]]) -> None:
    """Store a new referral's match keys: one INSERT of all the rows (the referral is stored already)."""
    if keys:
        params: dict[str, Any] = {"referral_id": referral_id}
        for i, (kind, digest) in enumerate(sorted(keys)):
            params[f"kind_{i}"], params[f"digest_{i}"] = kind, digest
        # One statement of all the rows, built and compiled once per number of rows (not an executemany:
        # in a pipeline that sends each row as a statement of its own). Core: nothing of the ORM to sync.
        session.connection().execute(_insert_keys(len(keys)), params)


@functools.lru_cache(maxsize=64)
def _insert_keys(rows: int) -> sa.Insert:
    """The INSERT of `rows` match keys of one referral, as INSERT ... SELECT of the rows' parameters
    (SQLAlchemy compiles a multi-row `insert().values([...])` anew for every execution; this, once)."""
    columns = MatchKey.__table__.c
    referral_id = sa.bindparam("referral_id", type_=columns.referral_id.type)
    selects = [
        sa.select(referral_id, sa.bindparam(f"kind_{i}", type_=columns.kind.type),
                  sa.bindparam(f"digest_{i}", type_=columns.digest.type))
        for i in range(rows)
    ]
    source = selects[0] if rows == 1 else sa.union_all(*selects)
    return MatchKey.__table__.insert().from_select(["referral_id", "kind", "digest"], source)


def store_keys(session: Session, referral: Referral, values: dict
               ) -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
    """Replace a stored referral's match keys with those of `values` (a changed person): the new keys,
    and the old ones (the DELETE returns them: the referrals sharing them are recounted too)."""
    keys = match_keys(session, values)
    old = session.execute(sa.delete(MatchKey).where(MatchKey.referral_id == referral.id)
                          .returning(MatchKey.kind, MatchKey.digest)).all()
    add_keys(session, referral.id, keys)
    return keys, {(kind, digest) for kind, digest in old}


# pg_advisory_xact_lock key ("match" in ASCII) of the writers of other referrals' duplicate counts.
MATCHING_LOCK = 0x6D61746368
_HOLD_MATCHING = sa.select(sa.func.pg_advisory_xact_lock(MATCHING_LOCK))


def hold_matching(session: Session) -> None:
    """Take, for this transaction, the lock every writer of other referrals' counts takes FIRST, before it
    locks any referral (PostgreSQL; SQLite has one writer at a time). Recounting the sharers updates
    referrals another transaction may hold: two answers on two referrals of one person each held their
    own and waited for the other's (a deadlock, one of them lost). With this lock taken before any row
    lock, those writers (a submission with possible duplicates, an answer changing the person, an
    erasure) queue instead; the other moves never wait for it, so they close no cycle."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(_HOLD_MATCHING)


def recount_sharers(session: Session, referral_id: uuid.UUID, keys: set[tuple[str, str]]) -> None:
    """One UPDATE: the referrals other than `referral_id` holding one of `keys` get their count of
    possible duplicates again (`_OTHER_SHARERS_OF_ROW`, with the keys `referral_id` holds now), so that
    an earlier referral counts a later one, as the later one counts it. No row is read back: it may be
    sent in a `db.pipelined` block. Core: the session's loaded referrals are not synchronised (the
    caller's own referral is not among those updated). The caller holds `hold_matching` already."""
    if keys:
        params = {"match_keys": sorted(keys), "referral_id": referral_id}
        session.connection().execute(_RECOUNT_SHARERS, params)


def _sharing(keys: set[tuple[str, str]]) -> sa.ColumnElement[bool]:
    """Match-key rows equal to any of `keys` (an index lookup per pair, never a scan: PostgreSQL plans
    the row IN list as one BitmapOr of index scans). One expanding parameter: compiled once."""
    return sa.tuple_(MatchKey.kind, MatchKey.digest).in_(sorted(keys))


def forget(session: Session, referral_ids: list[uuid.UUID]) -> None:
    """Erased referrals' blind indexes go with their data key (by them the person would stay
    recognisable, and a new referral of the person would be matched to a record that cannot be read);
    the referrals that shared one get their count of possible duplicates again, without them."""
    if not referral_ids:
        return
    keys, erased = MatchKey.__table__, MatchKey.__table__.alias("erased")
    sharers = session.scalars(
        sa.select(keys.c.referral_id).distinct()
        .join(erased, sa.and_(erased.c.kind == keys.c.kind, erased.c.digest == keys.c.digest))
        .where(erased.c.referral_id.in_(referral_ids), keys.c.referral_id.not_in(referral_ids))
    ).all()
    session.execute(sa.delete(MatchKey).where(MatchKey.referral_id.in_(referral_ids)))
    if sharers:  # one UPDATE: each sharer's count of other referrals sharing one of its keys
        session.execute(sa.update(Referral).where(Referral.id.in_(sharers))
                        .values(possible_duplicates=_OTHER_SHARERS_OF_ROW)
                        .execution_options(synchronize_session=False))


def _other_sharers_of_row() -> sa.ScalarSelect[int]:
    """count_candidates of the referral row an UPDATE is at (correlated): the referrals other than it
    sharing one of its match keys."""
    own, other = MatchKey.__table__.alias("own"), MatchKey.__table__.alias("other")
    return (sa.select(sa.func.count(sa.distinct(other.c.referral_id)))
            .select_from(own.join(other, sa.and_(other.c.kind == own.c.kind, other.c.digest == own.c.digest,
                                                 other.c.referral_id != own.c.referral_id)))
            .where(own.c.referral_id == Referral.id).scalar_subquery())


_OTHER_SHARERS_OF_ROW = _other_sharers_of_row()
# recount_sharers' statement, built once: the holders of the keys (an expanding parameter) but one.
_RECOUNT_SHARERS = (
    sa.update(Referral)
    .where(Referral.id.in_(
        sa.select(MatchKey.referral_id)
        .where(sa.tuple_(MatchKey.kind, MatchKey.digest).in_(sa.bindparam("match_keys", expanding=True)),
               MatchKey.referral_id != sa.bindparam("referral_id", type_=MatchKey.referral_id.type))))
    .values(possible_duplicates=_OTHER_SHARERS_OF_ROW)
    .execution_options(synchronize_session=False)
)


@dataclass
class Match:
    referral: Referral
    reasons: set[str] = field(default_factory=set)
    conflicts: set[str] = field(default_factory=set)

    @property
    def score(self) -> float:
        raw = sum(WEIGHTS[r] for r in self.reasons) - CONFLICT_PENALTY * len(self.conflicts)
        return round(max(0.0, min(1.0, raw)), 2)

    def compare(self, values: dict) -> None:
        """Refine with the candidate's decrypted date of birth (only candidates are ever decrypted)."""
        mine, theirs = values.get("date_of_birth"), self.referral.date_of_birth
        if mine is not None and theirs is not None:
            (self.reasons if mine == theirs else self.conflicts).add(DATE_OF_BIRTH)


def candidates(
    session: Session, referral_id: uuid.UUID, keys: set[tuple[str, str]], values: dict
) -> list[Match]:
    """Referrals other than `referral_id` that share a blind index, scored, with the reasons."""
    if not keys:
        return []
    condition = _sharing(keys)
    rows = session.execute(
        sa.select(MatchKey.referral_id, MatchKey.kind).where(condition, MatchKey.referral_id != referral_id)
    ).all()
    found: dict[uuid.UUID, set[str]] = {}
    for rid, kind in rows:
        found.setdefault(rid, set()).add(kind)
    if not found:
        return []
    # an erased referral has no match keys (`forget`); none is ever a candidate, whatever the index holds
    referrals = session.scalars(
        sa.select(Referral).where(Referral.id.in_(found), Referral.erased_at.is_(None))).all()
    load_keys(session, referrals)
    matches = [Match(r, found[r.id]) for r in referrals]
    for match in matches:
        match.compare(values)
    return sorted(matches, key=lambda m: (-m.score, m.referral.submitted_at, str(m.referral.id)))


def count_candidates(session: Session, referral_id: uuid.UUID | None, keys: set[tuple[str, str]]) -> int:
    """How many other referrals share a blind index (reads only the index); `referral_id` None: a
    referral not stored yet, so every sharer is another."""
    if not keys:
        return 0
    count, params = count_sharing(referral_id, keys)
    return session.scalar(sa.select(count), params) or 0


# How many referrals share one of the keys (an expanding parameter): the statements built once.
_SHARERS = sa.select(sa.func.count(sa.distinct(MatchKey.referral_id))).where(
    sa.tuple_(MatchKey.kind, MatchKey.digest).in_(sa.bindparam("match_keys", expanding=True)))
_NEW_SHARERS = _SHARERS.scalar_subquery()
_OTHER_SHARERS = _SHARERS.where(MatchKey.referral_id != sa.bindparam("referral_id")).scalar_subquery()
_NONE_SHARED = sa.literal(0)


def count_sharing(referral_id: uuid.UUID | None, keys: set[tuple[str, str]]
                  ) -> tuple[sa.ColumnElement[int], dict[str, Any]]:
    """count_candidates' count as a scalar subquery (built once) and its parameters' values, to read
    with another value in one statement; `referral_id` None: every sharer is another referral."""
    if not keys:
        return _NONE_SHARED, {}
    if referral_id is None:
        return _NEW_SHARERS, {"match_keys": sorted(keys)}
    return _OTHER_SHARERS, {"match_keys": sorted(keys), "referral_id": referral_id}
