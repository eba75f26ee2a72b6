"""The embedded SQLite database file is its owner's alone (0600), as the key folder is (issue 11, 14)."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess

from referral_api import create_app
from referral_api.db import database
from tests.test_serve import BIN, _env


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_create_app_makes_a_fresh_sqlite_file_0600(tmp_path):
    old = os.umask(0o022)
    try:
        app = create_app({"instance_path": str(tmp_path), "TESTING": True})
        with database(app).engine.connect() as conn:
            conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
        database(app).engine.dispose()
    finally:
        os.umask(old)
    assert _mode(tmp_path / "referral_api.sqlite3") == 0o600


def test_db_upgrade_on_a_fresh_instance_makes_the_file_0600(tmp_path):
    result = subprocess.run([str(BIN / "referral-api"), "db", "upgrade"], env=_env(tmp_path),
                            capture_output=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    database_file = tmp_path / "referral_api.sqlite3"
    assert _mode(database_file) == 0o600
    # The journal SQLite makes next to it during a write takes the same mode (held open to look at it).
    writer = sqlite3.connect(database_file, isolation_level=None)
    try:
        writer.execute("BEGIN IMMEDIATE")
        writer.execute("CREATE TABLE mode_probe (x INTEGER)")
        journals = list(tmp_path.glob("referral_api.sqlite3-*"))
        assert journals, "no journal next to the database during a write"
        assert all(_mode(journal) == 0o600 for journal in journals)
        writer.execute("ROLLBACK")
    finally:
        writer.close()
