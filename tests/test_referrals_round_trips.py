"""A submission's round trips stay few: one commit, a bounded number of statements, each kind once.

Counted on the test's connection while one `POST /api/v1/referrals` runs in-process: on PostgreSQL
from libpq's trace of it (every statement sent, the driver's own included: the audit seal's function
call), on SQLite from SQLAlchemy's events. The fixture's session joins the test's transaction with a
SAVEPOINT where a request would BEGIN, and releases it where a request would COMMIT: those two are not
counted as statements; a further savepoint (a checkpoint the submission does not need) would be.
Speed itself is measured by bench/referrals_submit_bench.py, never here.
"""

from __future__ import annotations

import contextlib
import re
from collections import Counter

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from bench.pgtrace import traced as traced_on
from tests.referral_data import referral_body

# The whole request: token check 1, duplicate count 1, reference 1 (SQLite's counter row: 2), data key
# 1, referral 1, match keys 1, the recount of its possible duplicates' counts 1 (only when it has some,
# as the counted one has: on PostgreSQL in the same pipeline), outbox event 1, audit entry and its seal:
# on PostgreSQL 1 (audit_append, sent with the commit), on SQLite 3 (the entry, the head's lock as a
# no-op write, one read of the head and what waits); with an Idempotency-Key 2 more (the key taken, its
# answer). Sealing events other transactions left unsealed (one UPDATE each) is their deferred work,
# not this request's.
MOST_STATEMENTS = {"postgresql": 9, "sqlite": 12}
# The one UPDATE of other referrals: those sharing a match key with the new one, recounted.
_RECOUNT = re.compile(r"^UPDATE referrals SET possible_duplicates=.*referral_match_keys\.referral_id != ")
_SEALING_OTHERS = re.compile(r"^UPDATE audit_events SET seq=")
KEY_STATEMENTS = 2
_TRANSACTION = re.compile(r"^\s*(SAVEPOINT|RELEASE SAVEPOINT)\b")


def _submitted(client, world, connection, body=None, **headers) -> tuple[list[str], int, int]:
    """The statements, savepoints and commits of one submission (after one that warms caches up, and
    is the counted one's possible duplicate unless `body` says otherwise)."""
    police = world.headers("police")
    warm = client.post("/api/v1/referrals", json=referral_body(external_reference="WARM-1"), headers=police)
    assert warm.status_code == 201
    statements: list[str] = []
    commits = Counter()

    def executed(_conn, _cursor, statement, _params, _context, _many):
        statements.append(" ".join(statement.split()))

    def committed(_session):
        commits["commit"] += 1

    traced = connection.dialect.driver == "psycopg"
    trace = traced_on(connection.connection.dbapi_connection) if traced else contextlib.nullcontext()
    if not traced:
        sa.event.listen(connection, "before_cursor_execute", executed)
    sa.event.listen(Session, "after_commit", committed)
    try:
        with trace as seen:
            body = body or referral_body(external_reference="COUNTED-1", person__passport_number="K9990001")
            response = client.post("/api/v1/referrals", json=body, headers={**police, **headers})
        if traced:
            statements.extend(seen.statements)
    finally:
        if not traced:
            sa.event.remove(connection, "before_cursor_execute", executed)
        sa.event.remove(Session, "after_commit", committed)
    assert response.status_code == 201, response.get_json()
    savepoints = sum(1 for s in statements if s.startswith("SAVEPOINT"))
    counted = [s for s in statements if not (_TRANSACTION.match(s) or _SEALING_OTHERS.match(s))]
    return counted, savepoints, commits["commit"]


@pytest.mark.parametrize("headers", [{"Idempotency-Key": "counted-1"}, {}], ids=["with-key", "without-key"])
def test_one_submission_is_one_commit_and_a_bounded_number_of_statements(backend, client, world, connection,
                                                                          headers):
    statements, savepoints, commits = _submitted(client, world, connection, **headers)
    assert commits == 1 and savepoints == 1, (commits, savepoints, statements)
    most = MOST_STATEMENTS[backend] + (KEY_STATEMENTS if headers else 0)
    assert len(statements) <= most, "\n".join(statements)


def test_a_submission_writes_its_match_keys_at_once_and_reads_nothing_back(backend, client, world,
                                                                            connection):
    statements, _savepoints, _commits = _submitted(client, world, connection, **{"Idempotency-Key": "k-2"})
    match_keys = [s for s in statements if "referral_match_keys" in s and s.startswith(("INSERT", "DELETE"))]
    assert len(match_keys) == 1 and match_keys[0].startswith("INSERT INTO referral_match_keys"), match_keys
    assert len([s for s in statements if _RECOUNT.match(s)]) == 1, "its duplicates recounted in one UPDATE"
    others = [s for s in statements if not _RECOUNT.match(s)]
    assert not [s for s in others if s.startswith(("SELECT", "UPDATE")) and re.search(
        r"\b(FROM|UPDATE) referrals\b", s)], "a new referral is not read back nor updated after its INSERT"
    assert not [s for s in statements if s.startswith("SELECT") and "FROM referral_messages" in s]
    if backend == "postgresql":  # numbered by the sequence: no counter row locked till the commit
        assert not [s for s in statements if "reference_counters" in s]
        assert len([s for s in statements if "nextval('reference_ref_seq')" in s]) == 1


def test_a_submission_without_a_duplicate_recounts_nothing(backend, client, world, connection):
    stranger = referral_body(external_reference="COUNTED-2", person__given_name="Oyunchimeg",
                             person__family_name="Tseren", person__names_cyrillic="Цэрэнгийн Оюунчимэг",
                             person__aliases=["Oyuka"], person__passport_number="K9990002",
                             person__national_id="УБ85010112")
    statements, _savepoints, _commits = _submitted(client, world, connection, body=stranger)
    assert not [s for s in statements if s.startswith("UPDATE referrals")], statements
    assert len(statements) <= MOST_STATEMENTS[backend] - 1, "\n".join(statements)
