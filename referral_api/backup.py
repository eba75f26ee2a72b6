"""`referral-api backup --out DIR`: a consistent pg_dump of the records and, apart, of the key store.

Each dump is one pg_dump (custom format): one transaction, one snapshot, taken while the service
serves. The records are dumped first and the key store after them, so a record written between the
two has its key in the key dump, and a key shredded between the two stays shredded on restore (the
record comes back, its person does not). The master keys are never in a backup: keep them apart
(docs/deploy.md, Backups). Connection details go to pg_dump through its environment, never its
command line, so no password shows in the process list.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess  # nosec B404
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
import sqlalchemy as sa
from flask import current_app

from . import dbmigrate
from .commands import domain_command, emit, json_option
from .db import database
from .errors import DomainError

# The connection parameters a database URL's query may carry, as libpq's environment variables: the
# TLS settings above all (a dump must travel as the service's connections do, `sslmode=verify-full`
# included, never under libpq's default `prefer`).
LIBPQ_QUERY_ENV = {
    "host": "PGHOST", "hostaddr": "PGHOSTADDR", "port": "PGPORT", "sslmode": "PGSSLMODE",
    "sslrootcert": "PGSSLROOTCERT", "sslcert": "PGSSLCERT", "sslkey": "PGSSLKEY", "sslcrl": "PGSSLCRL",
    "sslcrldir": "PGSSLCRLDIR", "sslsni": "PGSSLSNI", "sslnegotiation": "PGSSLNEGOTIATION",
    "ssl_min_protocol_version": "PGSSLMINPROTOCOLVERSION",
    "ssl_max_protocol_version": "PGSSLMAXPROTOCOLVERSION",
    "sslcertmode": "PGSSLCERTMODE", "gssencmode": "PGGSSENCMODE", "channel_binding": "PGCHANNELBINDING",
    "require_auth": "PGREQUIREAUTH", "krbsrvname": "PGKRBSRVNAME", "passfile": "PGPASSFILE",
    "service": "PGSERVICE", "connect_timeout": "PGCONNECT_TIMEOUT",
    "target_session_attrs": "PGTARGETSESSIONATTRS",
    "load_balance_hosts": "PGLOADBALANCEHOSTS", "application_name": "PGAPPNAME", "options": "PGOPTIONS",
    "client_encoding": "PGCLIENTENCODING",
}


def libpq_env(url: str) -> dict[str, str]:
    """PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE of a database URL, and the connection parameters of
    its query (LIBPQ_QUERY_ENV: sslmode, sslrootcert, ...), for pg_dump and psql. A query parameter libpq
    has no variable for is refused by name: dropped, it could have been a TLS setting."""
    parsed = sa.make_url(url)
    if parsed.get_backend_name() != "postgresql":
        raise DomainError("`referral-api backup` needs PostgreSQL; "
                          "copy a SQLite file with `sqlite3 FILE .backup`.")
    unknown = sorted(set(parsed.query) - set(LIBPQ_QUERY_ENV))
    if unknown:
        raise DomainError(f"The database URL's parameter(s) {', '.join(unknown)} cannot be handed to "
                          f"pg_dump; it takes: {', '.join(sorted(LIBPQ_QUERY_ENV))}.")
    pairs: dict[str, object] = {"PGHOST": parsed.host, "PGPORT": parsed.port, "PGUSER": parsed.username,
                                "PGPASSWORD": parsed.password, "PGDATABASE": parsed.database}
    for name, value in parsed.query.items():
        if isinstance(value, tuple):  # given twice: libpq would take one; refuse rather than guess which
            raise DomainError(f"The database URL gives {name} more than once.")
        if pairs.get(LIBPQ_QUERY_ENV[name]) is None:  # the URL's own host and port win over the query's
            pairs[LIBPQ_QUERY_ENV[name]] = value
    return {k: str(v) for k, v in pairs.items() if v is not None}


def _pg_dump() -> str:
    found = shutil.which("pg_dump")
    if found is None:
        raise DomainError("pg_dump is not installed (Debian: apt-get install postgresql-client).")
    return found


def dump(url: str, target: Path) -> dict[str, Any]:
    """One pg_dump of `url` into `target` (custom format, mode 0600); its size and SHA-256."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")} | libpq_env(url)
    target.touch(mode=0o600)
    args = [_pg_dump(), "--format=custom", "--no-owner", "--no-privileges", "--file", str(target)]
    done = subprocess.run(args, env=env, capture_output=True, text=True, check=False)  # noqa: S603  # nosec B603
    if done.returncode:
        # pg_dump's own message names the database and the problem, never the password.
        raise DomainError(f"pg_dump of {target.name} failed: {done.stderr.strip()[-500:]}")
    digest = hashlib.sha256(target.read_bytes()).hexdigest()
    return {"file": target.name, "bytes": target.stat().st_size, "sha256": digest}


def _out_dir(out: str) -> Path:
    folder = Path(out)
    if folder.exists() and any(folder.iterdir()):
        raise DomainError(f"{out} is not empty: give a new or empty folder for each backup.")
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    return folder


@click.command("backup")
@click.option("--out", "out", required=True, type=click.Path(file_okay=False),
              help="A new (or empty) folder for records.dump, keystore.dump and manifest.json.")
@click.option("--timestamped", is_flag=True,
              help="Write into a new subfolder of --out named by the UTC time (for a timer).")
@json_option
@domain_command
def backup_command(out: str, timestamped: bool, as_json: bool) -> None:
    """Dump the records (DATABASE_URL) and, separately, the key store (KEYSTORE_URL) with pg_dump."""
    settings = current_app.config["SETTINGS"]
    db = database()
    records_url = db.engine.url.render_as_string(hide_password=False)
    libpq_env(records_url)  # refuses SQLite before anything is written
    if timestamped:
        Path(out).mkdir(mode=0o700, parents=True, exist_ok=True)
        out = str(Path(out) / datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ"))
    folder = _out_dir(out)
    with db.engine.connect() as conn:
        revisions = sorted(dbmigrate.current_revisions(conn))
    started = datetime.now(UTC)
    manifest: dict[str, Any] = {"started_at": started.isoformat(), "revision": revisions,
                                "records": dump(records_url, folder / "records.dump")}
    if settings.keystore_url:
        manifest["keystore"] = dump(settings.keystore_url, folder / "keystore.dump")
    else:
        manifest["keystore"] = None
        manifest["warning"] = ("KEYSTORE_URL is not set: the data keys are inside records.dump, so this "
                               "backup holds the records and their keys together.")
    manifest["finished_at"] = datetime.now(UTC).isoformat()
    path = folder / "manifest.json"
    path.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    path.chmod(0o600)
    text = f"records.dump {manifest['records']['bytes']} bytes"
    if manifest["keystore"]:
        text += f", keystore.dump {manifest['keystore']['bytes']} bytes"
    emit(manifest, as_json=as_json, text=f"backup in {folder}: {text}" +
         (f"\nwarning: {manifest['warning']}" if manifest.get("warning") else ""))
