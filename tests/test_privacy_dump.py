"""A dump of the database (pg_dump; the SQLite file itself) holds none of the personal values written."""

from __future__ import annotations

import json
import shutil
import subprocess
from datetime import date

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import sessionmaker

from referral_api import create_app, dbmigrate, privacy
from referral_api.db import Database, database
from tests import world as world_module
from tests.conftest import throwaway_database
from tests.referral_data import referral_body
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


def _sqlite_file(url: str) -> bytes:
    with open(sa.make_url(url).database, "rb") as fh:
        return fh.read()


def _pg_dump(url: str) -> bytes:
    pg_dump = shutil.which("pg_dump")
    if pg_dump is None:
        pytest.skip("pg_dump is not installed")
    u = sa.make_url(url)
    args = [pg_dump, "-h", u.host or "127.0.0.1", "-p", str(u.port or 5432),
            "-U", u.username or "postgres", "--no-password", "--inserts", u.database]
    return subprocess.run(args, check=True, capture_output=True, timeout=60).stdout


def test_sqlite_file_holds_no_personal_value(app, backend, tmp_path):
    if backend != "sqlite":
        pytest.skip("the SQLite file check runs on the SQLite backend")
    with throwaway_database("sqlite", tmp_path) as url:
        _write_people(app, url)
        _assert_no_personal_value(_sqlite_file(url))


@pytest.mark.postgres_only
def test_pg_dump_holds_no_personal_value(app, backend, tmp_path):
    with throwaway_database(backend, tmp_path) as url:
        _write_people(app, url)
        dump = _pg_dump(url)
        assert b"throwaway_people" in dump
        _assert_no_personal_value(dump)


PLANTED = ["Tsagaantsetseg", "Цагаанцэцэг Нямдорж", "ZP7654321",
           "Recruited at Zamyn-Uud by a man called Khongor, promised work in Erenhot."]
PLANTED_CONTROL = "MO-PSP-PLANTED-0099"  # an external reference, stored in clear on purpose


def _submit_with_keys(url: str, tmp_path) -> None:
    """Submissions, replays and moves with Idempotency-Key through the API, as partners make them."""
    app = create_app({"database_url": url, "instance_path": str(tmp_path / "instance"), "TESTING": True})
    db = database(app)
    dbmigrate.upgrade(db)
    http, session = app.test_client(), db.sessionmaker()
    try:
        world = world_module.build(http, session)
        body = referral_body(external_reference=PLANTED_CONTROL, person__family_name=PLANTED[0],
                             person__names_cyrillic=PLANTED[1], person__passport_number=PLANTED[2],
                             situation__narrative=PLANTED[3])
        police = world.headers("police", **{"Idempotency-Key": "psp-planted"})
        first = http.post("/api/v1/referrals", json=body, headers=police)
        assert first.status_code == 201 and first.get_json()["person"]["passport_number"] == PLANTED[2]
        replayed = http.post("/api/v1/referrals", json=body, headers=police)
        assert replayed.headers["Idempotent-Replayed"] == "true"
        accept = world.headers("coordinator", **{"Idempotency-Key": "accept-planted"})
        accepted = http.post(f"/api/v1/referrals/{first.get_json()['id']}/accept", json={}, headers=accept)
        assert accepted.status_code == 200, accepted.get_json()
        case_url = f"/api/v1/cases/{accepted.get_json()['case_id']}"
        case = http.get(case_url, headers=world.headers("coordinator"))
        assert case.get_json()["person"]["family_name"] == PLANTED[0]  # stored, sealed, readable
    finally:
        session.close()
        db.engine.dispose()


def _assert_nothing_planted(dump: bytes) -> None:
    assert PLANTED_CONTROL.encode() in dump  # the check sees plain values where there are some
    for value in PLANTED:
        for form in (value, json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1]):
            assert form.encode() not in dump, form


def test_sqlite_file_holds_nothing_of_keyed_submissions(backend, tmp_path):
    if backend != "sqlite":
        pytest.skip("the SQLite file check runs on the SQLite backend")
    with throwaway_database("sqlite", tmp_path) as url:
        _submit_with_keys(url, tmp_path)
        _assert_nothing_planted(_sqlite_file(url))


@pytest.mark.postgres_only
def test_pg_dump_holds_nothing_of_keyed_submissions(backend, tmp_path):
    with throwaway_database(backend, tmp_path) as url:
        _submit_with_keys(url, tmp_path)
        dump = _pg_dump(url)
        assert b"idempotency_keys" in dump
        _assert_nothing_planted(dump)
