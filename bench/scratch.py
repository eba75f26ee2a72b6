"""A scratch PostgreSQL database for a bench: the one given, or a new one dropped afterwards."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator

import sqlalchemy as sa

SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


@contextlib.contextmanager
def new_database(server_url: str, name: str) -> Iterator[str]:
    """Create database `name` on the server of `server_url` (an admin connection), yield its URL, drop it
    afterwards (WITH (FORCE): its connections too). The benches' and the tests' throwaway databases."""
    base = sa.make_url(server_url)
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextlib.contextmanager
def scratch_database(prefix: str, url: str = "") -> Iterator[str]:
    """Yield `url` as it is when given (the caller's database, kept); else a new `<prefix>_<hex>` on the
    local server, dropped afterwards."""
    if url:
        yield url
        return
    with new_database(SERVER, f"{prefix}_{uuid.uuid4().hex[:8]}") as made:
        yield made
