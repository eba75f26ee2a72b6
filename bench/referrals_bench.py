"""Listing pages and the duplicate check at 100,000 stored referrals, as a ratio to 1,000.

    .venv/bin/python bench/referrals_bench.py [--sizes 1000,100000] [--reps 30]
        [--database-url postgresql://postgres@127.0.0.1:5432/postgres] [--database-prefix referral_bench]

For each size a throwaway PostgreSQL database is created (through the admin connection of
--database-url), migrated to head, seeded and VACUUM ANALYZEd; all are dropped at the end. Measured,
each the median of --reps runs after 3 warm-up runs, the sizes taking turns run by run (so a busy
machine slows baseline and large size alike), each run in a fresh session (data keys are unwrapped
as in a request):
- the first page (limit 50) of the MGEC staff listing and of one partner's listing, and a page deep
  in each (a cursor 80% down the keyset), through `services.list_for` and rendered with
  `views.document` as the API does (every personal field decrypted);
- the duplicate check of a new submission: `matching.match_keys`, `count_candidates` and `candidates`
  for a person with exactly one real duplicate stored (spelt in Cyrillic, submitted again in Latin).
Prints a table and the ratio of the largest size to the smallest for each operation (goal: < 1.5).

Seeding is bulk (Core INSERTs of 1,000 rows) but real: every row has its own data key, wrapped by the
master key; its personal fields are sealed with the real AES-GCM path and associated data (table,
column, row id, data key id); its match keys come from `matching.match_keys` (HMAC under the index
key) over Mongolian names (20 real stems x 10 real endings), so name keys collide as they would.
"""

from __future__ import annotations

import argparse
import functools
import json
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy.orm import Session

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.scratch import new_database
from referral_api import create_app, dbmigrate
from referral_api.access import MGEC_KIND, Actor, OrganisationRef, Role, Scope
from referral_api.db import database
from referral_api.organisations.models import Organisation, OrganisationKind
from referral_api.paging import encode_cursor
from referral_api.privacy import blind_index, crypto, get_privacy
from referral_api.privacy.blind_index import transliterate
from referral_api.privacy.fields import encrypted_fields
from referral_api.privacy.keystore import wrap
from referral_api.privacy.models import DataKey
from referral_api.referrals import matching, services
from referral_api.referrals.models import MatchKey, Referral, age_band, age_on
from referral_api.referrals.states import FINAL, ReferralStatus
from referral_api.referrals.views import document
from referral_api.referrals.vocab import (
    Concern,
    ConsentMethod,
    ContactFamily,
    ExploitationType,
    LegalBasis,
    Need,
    RejectReason,
    SafetyRisk,
    Sex,
    Source,
    Urgency,
)

BATCH = 1000
PAGE = 50
DEEP = 0.8  # how far down the keyset the deep page starts
STEMS = [
    "Бат",
    "Энх",
    "Мөнх",
    "Алтан",
    "Од",
    "Сүх",
    "Ган",
    "Нар",
    "Оюун",
    "Цэцэг",
    "Болд",
    "Эрдэнэ",
    "Гэрэл",
    "Ариун",
    "Түмэн",
    "Саран",
    "Хулан",
    "Жаргал",
    "Баяр",
    "Хишиг",
]
ENDINGS = ["баяр", "эрдэнэ", "туяа", "болд", "цэцэг", "сайхан", "жаргал", "чимэг", "зул", "очир"]
NAMES = [s + e for s in STEMS for e in ENDINGS if s.lower() != e]  # Батбаяр, Энхтуяа, Оюунчимэг ...
PROVINCES = ["Улаанбаатар", "Дархан-Уул", "Орхон", "Сэлэнгэ", "Дорнод", "Хэнтий", "Говь-Алтай", "Ховд"]
# Shares of the referrals: the partner whose listing is measured (the first) sends about a third.
PARTNERS = [
    ("Цагдаагийн ерөнхий газар", OrganisationKind.POLICE, 10),
    ("Embassy in Seoul", OrganisationKind.EMBASSY, 4),
    ("IOM Mongolia", OrganisationKind.IOM, 3),
    ("Hotline 108", OrganisationKind.NGO, 8),
    ("Embassy in Beijing", OrganisationKind.EMBASSY, 5),
    ("Shelter NGO", OrganisationKind.NGO, 2),
]
# The person whose duplicate check is measured: stored once, in Cyrillic; no one else bears this name.
PROBE_GIVEN, PROBE_FAMILY, PROBE_BORN = "Энхтуяа", "Батбаяр", date(1994, 3, 17)
PROBE_PASSPORT = "E7654321"
STAFF_SCOPES = frozenset({Scope.REFERRALS_READ.value, Scope.REFERRALS_REVIEW.value})
PARTNER_SCOPES = frozenset({Scope.REFERRALS_READ.value, Scope.REFERRALS_SUBMIT.value})


class _Row:
    """What `EncryptedField.aad` reads of a record: its table, id and data key id."""

    __tablename__ = Referral.__tablename__

    def __init__(self, rid: uuid.UUID, data_key_id: uuid.UUID) -> None:
        self.id, self.data_key_id = rid, data_key_id


def latin(name: str) -> str:
    return transliterate(name).title()


def person(rng: random.Random, i: int, identified_on: date) -> dict[str, Any]:
    """A person as a partner would send it; never the probe's name pair."""
    given, family = rng.choice(NAMES), rng.choice(NAMES)
    while (given, family) == (PROBE_GIVEN, PROBE_FAMILY):
        given = rng.choice(NAMES)
    born = date(rng.randint(1960, 2010), rng.randint(1, 12), rng.randint(1, 28))
    values: dict[str, Any] = {
        "given_name": latin(given),
        "family_name": latin(family),
        "names_cyrillic": f"{family} {given}",
        "sex": rng.choice([Sex.FEMALE] * 8 + [Sex.MALE]),
        "nationality": "MN",
        "phone": f"+976 99{rng.randint(0, 999999):06d}",
        "home_province": rng.choice(PROVINCES),
        "languages": ["mn"] + (["ko"] if rng.random() < 0.2 else []),
    }
    if rng.random() < 0.8:
        values["date_of_birth"] = born
    else:  # an officer's estimate: keys for three birth years
        values["estimated_age"] = max(age_on(born, identified_on), 0)
    if rng.random() < 0.3:  # a short name: the stem alone collides across many people
        values["aliases"] = [latin(next(s for s in STEMS if given.startswith(s)))]
    if rng.random() < 0.7:
        values["passport_number"] = f"E{1000000 + i:07d}"
    if rng.random() < 0.5:
        values["national_id"] = f"УБ{rng.randint(10, 99)}{i:08d}"
    return values


def probe(*, latin_spelling: bool) -> dict[str, Any]:
    given, family = (
        (latin(PROBE_GIVEN), latin(PROBE_FAMILY)) if latin_spelling else (PROBE_GIVEN, PROBE_FAMILY)
    )
    return {
        "given_name": given,
        "family_name": family,
        "date_of_birth": PROBE_BORN,
        "sex": Sex.FEMALE,
        "nationality": "MN",
        "passport_number": PROBE_PASSPORT,
        "phone": "+976 99112233",
        "languages": ["mn"],
    }


def rows_for(
    session: Any,
    rng: random.Random,
    start: int,
    stop: int,
    *,
    total: int,
    orgs: list[tuple],
    first: datetime,
    span: float,
) -> tuple[list[dict], list[dict], list[dict]]:
    """Referral, data key and match key rows for referrals start..stop-1 (in submission order)."""
    privacy = get_privacy(session)
    fields = encrypted_fields(Referral)
    ids, weights = [o[0] for o in orgs], [o[1] for o in orgs]
    referrals, keys, match = [], [], []
    for i in range(start, stop):
        rid, dkid = uuid.uuid4(), uuid.uuid4()
        submitted = first + timedelta(seconds=span * i / total + rng.random())
        identified_on = (submitted - timedelta(days=rng.randint(1, 60))).date()
        values = probe(latin_spelling=False) if i == total // 2 else person(rng, i, identified_on)
        minor, band = None, None
        if values.get("date_of_birth") or values.get("estimated_age") is not None:
            age = (
                age_on(values["date_of_birth"], identified_on)
                if values.get("date_of_birth")
                else values["estimated_age"]
            )
            minor, band = age < 18, age_band(age)
        recent = i > total - max(200, total // 20)
        status = rng.choice(
            [ReferralStatus.SUBMITTED, ReferralStatus.UNDER_REVIEW, ReferralStatus.INFORMATION_REQUESTED]
            if recent
            else sorted(FINAL)
        )
        consent = rng.random() < 0.9
        sealed = {
            **values,
            "identified_city": rng.choice(["Seoul", "Macau", "Erenhot", "Beijing", "Istanbul"]),
            "narrative": "Found through the hotline; worked in a karaoke bar, passport held by the employer. "
            * 3,
            "needs": [Need.SHELTER, Need.LEGAL_AID, Need.MEDICAL][: rng.randint(1, 3)],
            "safety_risk": rng.choice(list(SafetyRisk)),
            "contact_family": ContactFamily.NO,
            "consent_obtained_on": identified_on if consent else None,
            "consent_obtained_by": "Social worker on duty" if consent else None,
            "consent_language": "mn" if consent else None,
        }
        raw = AESGCM.generate_key(bit_length=256)
        wrapped, kid = wrap(privacy.keyring, dkid, raw)
        keys.append(
            {
                "id": dkid,
                "wrapped_key": wrapped,
                "master_key_id": kid,
                "created_at": submitted,
                "erased_at": None,
            }
        )
        row = dict.fromkeys(fields)
        stub = _Row(rid, dkid)
        for name, value in sealed.items():
            if name in fields and value is not None:
                row[name] = crypto.seal(raw, crypto.encode_value(value), fields[name].aad(stub))
        decided = status in FINAL
        row.update(
            id=rid,
            reference=f"REF-{submitted.year}-{i + 1:06d}",
            status=status,
            version=1,
            concern=rng.choice([Concern.TRAFFICKING] * 4 + [Concern.SEXUAL_VIOLENCE]),
            source=rng.choice(list(Source)),
            external_reference=f"BENCH-{i}",
            submitted_by_organisation_id=rng.choices(ids, weights)[0],
            submitted_by_client_id="bench",
            submitted_by_user_id=None,
            submitted_at=submitted,
            status_changed_at=submitted,
            sex=values["sex"],
            nationality="MN",
            is_minor=minor,
            age_band=band,
            identified_country=rng.choice(["KR", "CN", "MO", "TR", "MN"]),
            identified_on=identified_on,
            exploitation_types=[
                ExploitationType.SEXUAL if rng.random() < 0.6 else ExploitationType.FORCED_LABOUR
            ],
            urgency=rng.choice([Urgency.ROUTINE] * 3 + [Urgency.URGENT, Urgency.EMERGENCY]),
            consent_given=consent,
            consent_method=ConsentMethod.WRITTEN if consent else None,
            share_with=[],
            legal_basis=None if consent else LegalBasis.VITAL_INTEREST,
            minimised=[],
            reviewed_by_user_id=None,
            decided_by_user_id=None,
            decided_at=submitted + timedelta(days=3) if decided else None,
            reject_reason=RejectReason.DUPLICATE if status is ReferralStatus.REJECTED else None,
            case_id=None,
            possible_duplicates=0,
            created_at=submitted,
            updated_at=submitted,
            data_key_id=dkid,
        )
        referrals.append(row)
        for kind, digest in matching.match_keys(session, {**values, "identified_on": identified_on}):
            match.append({"referral_id": rid, "kind": kind, "digest": digest})
    return referrals, keys, match


def copy_rows(session: Session, table: str, rows: list[dict[str, Any]]) -> None:
    """COPY `rows` into `table` in the session's transaction (JSON columns as text, enums as values)."""
    columns = list(rows[0])
    cursor = session.connection().connection.driver_connection.cursor()
    with cursor, cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(
                [
                    json.dumps(v) if isinstance(v, list | dict) else v.value if isinstance(v, StrEnum) else v
                    for v in row.values()
                ]
            )


@contextmanager
def memoised_name_folding() -> Iterator[None]:
    """Seed faster: fold each of the few hundred names once. Same results; the HMACs are all computed."""
    original = blind_index.normalise_name
    cached = functools.lru_cache(maxsize=None)(original)
    blind_index.normalise_name = matching.normalise_name = cached
    try:
        yield
    finally:
        blind_index.normalise_name = matching.normalise_name = original


def seed(app: Any, size: int, rng: random.Random) -> dict[str, Any]:
    """Organisations and `size` referrals; returns the actors and the deep cursors."""
    sessions = database(app).sessionmaker
    with app.app_context(), sessions() as s:
        mgec = Organisation(id=uuid.uuid4(), name="MGEC", kind=OrganisationKind.MGEC, country="MN")
        partners = [Organisation(id=uuid.uuid4(), name=n, kind=k, country="MN") for n, k, _ in PARTNERS]
        s.add_all([mgec, *partners])
        s.commit()
        orgs = [(p.id, w) for p, (_, _, w) in zip(partners, PARTNERS, strict=True)]
        first = datetime(2024, 1, 1, tzinfo=UTC)
        span = (datetime(2026, 11, 1, tzinfo=UTC) - first).total_seconds()
        with memoised_name_folding():
            for start in range(0, size, BATCH):
                referrals, keys, match = rows_for(
                    s, rng, start, min(start + BATCH, size), total=size, orgs=orgs, first=first, span=span
                )
                copy_rows(s, DataKey.__tablename__, keys)
                copy_rows(s, Referral.__tablename__, referrals)
                copy_rows(s, MatchKey.__tablename__, match)
                s.commit()
        mgec_id, partner_id, partner_kind = mgec.id, partners[0].id, partners[0].kind.value
        cursors = {}
        for label, condition in (
            ("staff", sa.true()),
            ("partner", Referral.submitted_by_organisation_id == partner_id),
        ):
            total = s.scalar(sa.select(sa.func.count()).select_from(Referral).where(condition))
            at = s.execute(
                sa.select(Referral.submitted_at, Referral.id)
                .where(condition)
                .order_by(Referral.submitted_at.desc(), Referral.id.desc())
                .offset(int(total * DEEP))
                .limit(1)
            ).one()
            # The cursor list_for gives out with the page that ends at this row.
            cursors[label] = encode_cursor([at.submitted_at.isoformat(), str(at.id)])
    with database(app).engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("VACUUM ANALYZE"))
    staff = Actor(
        OrganisationRef(mgec_id, MGEC_KIND), "bench-mgec", uuid.uuid4(), Role.MGEC_COORDINATOR, STAFF_SCOPES
    )
    officer = Actor(
        OrganisationRef(partner_id, partner_kind),
        "bench-police",
        uuid.uuid4(),
        Role.PARTNER_OFFICER,
        PARTNER_SCOPES,
    )
    return {"staff": staff, "partner": officer, "cursors": cursors}


def list_page(app: Any, actor: Actor, cursor: str | None) -> Callable[[], int]:
    def run() -> int:
        with app.app_context(), database(app).sessionmaker() as s:
            items, _next = services.list_for(s, actor, args={"limit": PAGE, "cursor": cursor})
            docs = [document(r, seen) for r, seen in items]
            assert len(docs) == PAGE, len(docs)
            return len(docs)

    return run


def duplicate_check(app: Any) -> Callable[[], int]:
    values = {**probe(latin_spelling=True), "identified_on": date(2026, 11, 20)}

    def run() -> int:
        with app.app_context(), database(app).sessionmaker() as s:
            new_id = uuid.uuid4()
            keys = matching.match_keys(s, values)
            count = matching.count_candidates(s, new_id, keys)
            found = matching.candidates(s, new_id, keys, values)
            # Exactly the one real duplicate, found by passport and by the name spelt the other way.
            assert count == 1 and len(found) == 1, (count, len(found))
            assert found[0].reasons >= {matching.PASSPORT, matching.NAME_BIRTH_YEAR}, found[0].reasons
            return count

    return run


def medians_ms(ops: dict[int, dict[str, Callable[[], int]]], reps: int) -> dict[int, dict[str, float]]:
    """The median time of each operation at each size; the sizes take turns, run by run, so that
    whatever else the machine does meanwhile weighs on the baseline and on the large size alike."""
    times: dict[int, dict[str, list[float]]] = {
        size: {label: [] for label in fns} for size, fns in ops.items()
    }
    for label in next(iter(ops.values())):
        for rep in range(-min(3, reps), reps):  # the first runs warm up caches and are not counted
            for size, fns in ops.items():
                started = time.perf_counter()
                fns[label]()
                if rep >= 0:
                    times[size][label].append(time.perf_counter() - started)
    return {
        size: {label: statistics.median(t) * 1000 for label, t in by.items()} for size, by in times.items()
    }


@contextmanager
def throwaway(admin_url: str, size: int, prefix: str = "referral_bench") -> Iterator[str]:
    with new_database(admin_url, f"{prefix}_{size}_{uuid.uuid4().hex[:8]}") as url:
        yield url


def operations(stack: ExitStack, admin_url: str, size: int, prefix: str) -> dict[str, Callable[[], int]]:
    """A seeded database of `size` referrals (dropped when `stack` closes) and the operations to time."""
    tmp = stack.enter_context(tempfile.TemporaryDirectory())
    url = stack.enter_context(throwaway(admin_url, size, prefix))
    app = create_app({"database_url": url, "instance_path": tmp, "TESTING": True})
    stack.callback(database(app).engine.dispose)
    dbmigrate.upgrade(database(app))
    started = time.perf_counter()
    world = seed(app, size, random.Random(size))
    print(f"{size:>7} referrals seeded in {time.perf_counter() - started:6.1f} s", flush=True)
    return {
        "staff first page": list_page(app, world["staff"], None),
        "staff deep page": list_page(app, world["staff"], world["cursors"]["staff"]),
        "partner first page": list_page(app, world["partner"], None),
        "partner deep page": list_page(app, world["partner"], world["cursors"]["partner"]),
        "duplicate check": duplicate_check(app),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes", default="1000,100000", help="stored referrals, comma-separated (100-200000)"
    )
    parser.add_argument(
        "--reps", type=int, default=30, help="timed runs per operation; the median counts (1-200)"
    )
    parser.add_argument(
        "--database-url",
        default="postgresql://postgres@127.0.0.1:5432/postgres",
        help="admin connection to PostgreSQL; the bench creates and drops its own databases",
    )
    parser.add_argument("--database-prefix", default="referral_bench",
                        help="names of the bench's databases: <prefix>_<size>_<random>")
    args = parser.parse_args()
    prefix = args.database_prefix if args.database_prefix.replace("_", "").isalnum() else "referral_bench"
    sizes = sorted({max(100, min(int(s), 200_000)) for s in args.sizes.split(",") if s.strip()})
    reps = max(1, min(args.reps, 200))
    url = args.database_url
    if url.startswith(("postgres://", "postgresql://")):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    with ExitStack() as stack:
        results = medians_ms({size: operations(stack, url, size, prefix) for size in sizes}, reps)
    low, high = sizes[0], sizes[-1]
    print(
        f"\nmedian of {reps} runs, ms   " + "".join(f"{s:>12,}" for s in sizes) + f"   ratio {high:,}/{low:,}"
    )
    for label in results[low]:
        ratio = results[high][label] / results[low][label]
        flag = "" if ratio < 1.5 else "   (goal < 1.5)"
        print(f"{label:<26}" + "".join(f"{results[s][label]:12.2f}" for s in sizes) + f"{ratio:12.2f}{flag}")


if __name__ == "__main__":
    main()
