"""A dump of the database (pg_dump; the SQLite file itself) holds none of the personal values written."""

from __future__ import annotations

import shutil
import subprocess
from datetime import date

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import sessionmaker

from referral_api import dbmigrate, privacy
from referral_api.db import Database
from tests.conftest import throwaway_database
from tests.throwaway import Person, ThrowawayBase

PERSONAL = [
    ("Батбаяр", "Энхтуяа", ["Bataa"]),
    ("Sukhbaatar", "Oyun-Erdene", ["Oyuka", "Дулмаа"]),
    ("Пүрэвдорж", "Zolzaya", ["Zolo"]),
]
CONTROL = "control-label-4f1c9a"


def _write_people(app, url: str) -> None:
    db = Database(url)
    try:
        dbmigrate.upgrade(db)
        ThrowawayBase.metadata.create_all(db.engine)
        with sessionmaker(bind=db.engine)() as session:
            session.info[privacy.SESSION_INFO] = app.extensions[privacy.EXTENSION]
            for family, given, aliases in PERSONAL:
                session.add(Person(family_name=family, given_name=given, aliases=aliases,
                                   birth_date=date(1994, 7, 30), label=CONTROL))
            session.commit()
            assert sorted(p.family_name for p in session.scalars(sa.select(Person))) == sorted(
                p[0] for p in PERSONAL)
    finally:
        db.engine.dispose()


def _assert_no_personal_value(dump: bytes) -> None:
    assert CONTROL.encode() in dump  # the check sees plain values where there are some
    for family, given, aliases in PERSONAL:
        for value in (family, given, *aliases, "1994-07-30"):
            assert value.encode() not in dump, value
            assert value.encode("utf-16-le") not in dump, value


def test_sqlite_file_holds_no_personal_value(app, backend, tmp_path):
    if backend != "sqlite":
        pytest.skip("the SQLite file check runs on the SQLite backend")
    with throwaway_database("sqlite", tmp_path) as url:
        _write_people(app, url)
        path = sa.make_url(url).database
        with open(path, "rb") as fh:
            _assert_no_personal_value(fh.read())


@pytest.mark.postgres_only
def test_pg_dump_holds_no_personal_value(app, backend, tmp_path):
    pg_dump = shutil.which("pg_dump")
    if pg_dump is None:
        pytest.skip("pg_dump is not installed")
    with throwaway_database(backend, tmp_path) as url:
        _write_people(app, url)
        u = sa.make_url(url)
        args = [pg_dump, "-h", u.host or "127.0.0.1", "-p", str(u.port or 5432),
                "-U", u.username or "postgres", "--no-password", "--inserts", u.database]
        dump = subprocess.run(args, check=True, capture_output=True, timeout=60).stdout
        assert b"throwaway_people" in dump
        _assert_no_personal_value(dump)
