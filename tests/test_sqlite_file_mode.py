"""The embedded SQLite database file is its owner's alone (0600), as the key folder is (issue 11, 14)."""

from __future__ import annotations

import os
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
    # Journals SQLite makes next to it take the same mode.
    for journal in tmp_path.glob("referral_api.sqlite3-*"):
        assert _mode(journal) == 0o600
