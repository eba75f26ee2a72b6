"""Cost of encrypting a referral's personal fields, as a ratio to the same fields in plaintext.

    .venv/bin/python bench/privacy_bench.py [--count 500] [--database-url postgresql://...]

Both variants run in the same process against the same database: N records of 12 personal fields
written (one transaction per 100), then read back with every field accessed (decrypted); the best
of --repeat rounds counts. Prints both timings and the ratio. The default database is a temporary
SQLite file; with --database-url use a scratch database (the bench's tables are dropped afterwards).
"""

from __future__ import annotations

import argparse
import secrets
import tempfile
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from referral_api import privacy
from referral_api.db import IdMixin, make_engine
from referral_api.privacy import EncryptedRecordMixin, KeyRing, KeyStore, Privacy, encrypted_column
from referral_api.privacy.models import DataKey

FIELDS = [
    "family_name",
    "given_name",
    "patronymic",
    "birth_date",
    "passport_number",
    "national_id",
    "phone",
    "address",
    "next_of_kin",
    "aliases",
    "place_of_exploitation",
    "notes",
]
BATCH = 100


class BenchBase(DeclarativeBase):
    metadata = sa.MetaData()


class PlainReferral(IdMixin, BenchBase):
    __tablename__ = "bench_plain_referrals"
    __annotations__ = dict.fromkeys(FIELDS, Mapped[str | None])
    # Twelve columns without twelve lines: the class body is a dict, filled like one.
    locals().update({f: mapped_column(sa.Text, nullable=True) for f in FIELDS})


class EncryptedReferral(IdMixin, EncryptedRecordMixin, BenchBase):
    __tablename__ = "bench_encrypted_referrals"
    locals().update({f: encrypted_column() for f in FIELDS})


def sample(i: int) -> dict[str, Any]:
    return {
        "family_name": f"Батбаяр{i}",
        "given_name": "Энхтуяа",
        "patronymic": "Ганбаатар",
        "birth_date": date(1990 + i % 20, 1 + i % 12, 1 + i % 28).isoformat(),
        "passport_number": f"E{1000000 + i}",
        "national_id": f"УБ9{i:07d}",
        "phone": f"+976 9911 {i:04d}",
        "address": "Баянзүрх дүүрэг, 3-р хороо, Улаанбаатар",
        "next_of_kin": "Оюунчимэг (mother)",
        "aliases": "Bataa, Baagii",
        "place_of_exploitation": "Macau",
        "notes": "Referred by hotline. " * 8,
    }


def run(sessions: sessionmaker[Session], model: type, count: int) -> tuple[float, float]:
    with sessions() as s:  # start each round from an empty table
        if model is EncryptedReferral:
            s.execute(sa.delete(DataKey).where(DataKey.id.in_(sa.select(model.__table__.c.data_key_id))))
        s.execute(sa.delete(model))
        s.commit()
    started = time.perf_counter()
    for start in range(0, count, BATCH):
        with sessions() as s:
            s.add_all(model(**sample(i)) for i in range(start, min(start + BATCH, count)))
            s.commit()
    written = time.perf_counter() - started
    started = time.perf_counter()
    with sessions() as s:
        total = 0
        records = list(s.scalars(sa.select(model)))
        if model is EncryptedReferral:
            privacy.load_keys(s, records)  # what a list endpoint does: one key query, not one a row
        for record in records:
            total += sum(len(str(getattr(record, f))) for f in FIELDS)
    read = time.perf_counter() - started
    assert total > 0
    return written, read


def timed(label: str, fn: Callable[[], tuple[float, float]], repeat: int) -> tuple[float, float]:
    """The best of `repeat` rounds for writing and for reading."""
    rounds = [fn() for _ in range(repeat)]
    w, r = min(x[0] for x in rounds), min(x[1] for x in rounds)
    print(f"{label:<10} write {w * 1000:9.1f} ms   read+access {r * 1000:9.1f} ms")
    return w, r


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=500, help="records per variant (1-100000)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds per variant; the best counts")
    parser.add_argument("--database-url", default="", help="default: a temporary SQLite file")
    args = parser.parse_args()
    count = max(1, min(args.count, 100_000))
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{Path(tmp) / 'bench.sqlite3'}"
        if url.startswith(("postgres://", "postgresql://")):
            url = "postgresql+psycopg://" + url.split("://", 1)[1]
        engine = make_engine(url)
        BenchBase.metadata.drop_all(engine)
        BenchBase.metadata.create_all(engine)
        created_data_keys = not sa.inspect(engine).has_table("data_keys")
        DataKey.__table__.create(engine, checkfirst=True)
        keys = Privacy(
            keyring=KeyRing("bench", {"bench": secrets.token_bytes(32)}),
            keystore=KeyStore(),
            index_key=secrets.token_bytes(32),
        )
        sessions = sessionmaker(bind=engine, info={privacy.SESSION_INFO: keys})
        print(f"{count} referrals x {len(FIELDS)} personal fields on {engine.dialect.name}")
        repeat = max(1, min(args.repeat, 20))
        run(sessions, PlainReferral, min(count, 50))  # warm up both code paths once
        run(sessions, EncryptedReferral, min(count, 50))
        plain = timed("plaintext", lambda: run(sessions, PlainReferral, count), repeat)
        enc = timed("encrypted", lambda: run(sessions, EncryptedReferral, count), repeat)
        print(f"ratio      write {enc[0] / plain[0]:9.2f} x    read+access {enc[1] / plain[1]:9.2f} x")
        if args.database_url:
            # Leave the database as found: the bench's tables and the data keys it created.
            with engine.begin() as conn:
                conn.execute(
                    sa.delete(DataKey).where(
                        DataKey.id.in_(sa.select(EncryptedReferral.__table__.c.data_key_id))
                    )
                )
            BenchBase.metadata.drop_all(engine)
            if created_data_keys:
                DataKey.__table__.drop(engine)
        engine.dispose()


if __name__ == "__main__":
    main()
