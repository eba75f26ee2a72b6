"""The document folder, the SQLite file and a pg_dump hold no plaintext byte sequence of an uploaded file.

The PDF is stored as sent, so its planted marker would be found in clear anywhere the sealing failed;
the note's marker checks the sealed note column the same way.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import sqlalchemy as sa

from referral_api import create_app, dbmigrate
from referral_api.db import database
from tests import world as world_module
from tests.case_helpers import open_case
from tests.conftest import throwaway_database
from tests.document_helpers import MARKER, pdf_bytes, upload_ok
from tests.referral_data import referral_body

NOTE_MARKER = "NOTE-MARKER-51c0ffee"


@pytest.fixture
def written(backend, tmp_path):
    """A fresh app on a throwaway database, with two documents committed; yields (url, documents folder)."""
    with throwaway_database(backend, tmp_path) as url:
        app = create_app({"database_url": url, "instance_path": str(tmp_path / "instance"), "TESTING": True})
        dbmigrate.upgrade(database(app))
        session = database(app).sessionmaker()
        try:
            client = app.test_client()
            world = world_module.build(client, session)
            case_id = open_case(client, world)
            upload_ok(client, world, "case", case_id, pdf_bytes(300_000), kind="passport_copy",
                      note=NOTE_MARKER)
            referral = client.post("/api/v1/referrals", json=referral_body(external_reference="MO-2"),
                                   headers=world.headers("police"))
            assert referral.status_code == 201, referral.get_json()
            upload_ok(client, world, "referral", referral.get_json()["id"], pdf_bytes(), who="police",
                      kind="consent_form", note=NOTE_MARKER)
            session.close()
            yield url, Path(app.instance_path) / "documents"
        finally:
            session.close()
            database(app).engine.dispose()


def _assert_clean(blob: bytes) -> None:
    assert MARKER not in blob
    assert NOTE_MARKER.encode() not in blob and NOTE_MARKER.encode("utf-16-le") not in blob


def test_the_document_folder_holds_no_plaintext(written):
    _url, folder = written
    files = [p for p in folder.rglob("*") if p.is_file()]
    assert len(files) == 2
    assert oct(folder.stat().st_mode & 0o777) == "0o700"
    for path in files:
        assert oct(path.stat().st_mode & 0o777) == "0o600"
        assert oct(path.parent.stat().st_mode & 0o777) == "0o700"
        _assert_clean(path.read_bytes())


def test_the_sqlite_file_holds_no_plaintext_of_a_document(written, backend):
    if backend != "sqlite":
        pytest.skip("the SQLite file check runs on the SQLite backend")
    url, _folder = written
    path = Path(sa.make_url(url).database)
    blob = b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))
    assert b"passport_copy" in blob  # the check sees plain values where there are some
    _assert_clean(blob)


@pytest.mark.postgres_only
def test_pg_dump_holds_no_plaintext_of_a_document(written):
    pg_dump = shutil.which("pg_dump")
    if pg_dump is None:
        pytest.skip("pg_dump is not installed")
    url, _folder = written
    u = sa.make_url(url)
    args = [pg_dump, "-h", u.host or "127.0.0.1", "-p", str(u.port or 5432),
            "-U", u.username or "postgres", "--no-password", "--inserts", u.database]
    dump = subprocess.run(args, check=True, capture_output=True, timeout=60).stdout
    assert b"INSERT INTO public.documents" in dump and b"passport_copy" in dump
    _assert_clean(dump)
