"""A scratch PostgreSQL database for a bench: the one given, or a new one dropped afterwards."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator

import sqlalchemy as sa

SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


@contextlib.contextmanager
def scratch_database(prefix: str, url: str = "") -> Iterator[str]:
    """Yield `url` as it is when given (the caller's database, kept); else create `<prefix>_<hex>` on
    the local server, yield its URL and drop it afterwards (WITH (FORCE): the bench's connections too)."""
    if url:
        yield url
        return
    base = sa.make_url(SERVER)
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
