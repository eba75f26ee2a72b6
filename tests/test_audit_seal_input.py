"""The database seals an event exactly as `verify()` checks it: the hash migration 0996's
`audit_seal_digest` makes from an event's seal input, at a given seq after a given hash, is the hash
the application computes from the event's columns, whatever they hold (PostgreSQL). The seal input's
two marks stand once each, on every backend."""

from __future__ import annotations

import hashlib
import uuid
from types import SimpleNamespace

import pytest
import sqlalchemy as sa

from referral_api import audit
from referral_api.audit.actions import AuditAction, Outcome
from referral_api.audit.models import AuditEvent
from referral_api.db import utcnow

PREV = "ab" * 32

DETAILS = [
    None,
    {},
    {"reason": "Хүний наймааны хохирогч — “quoted”, \"escaped\", back\\slash / slash"},
    # keys and values that look like the chain's own fields, nested where the marks are not
    {"seq": 7, "prev_hash": PREV, "nested": {"seq": [1, 2.5, -3e-7, 10**20], "prev_hash": None}},
    {"control": "\x00\x01\x02\x1f\x7f tab\t newline\n \u2028 \u2029", "flag": "🇲🇳", "empty": ""},
    {"zeta": True, "alpha": False, "middle": [None, {"b": 1, "a": 2}]},
]


def _event(details) -> AuditEvent:
    return AuditEvent(id=uuid.uuid4(), occurred_at=utcnow(), organisation_id=uuid.uuid4(),
                      client_id="cl_ÖÜ\"\\", user_id=None, action=AuditAction.AUTH_TOKEN_ISSUE.value,
                      resource_type="token", resource_id=str(uuid.uuid4()), outcome=Outcome.DENIED,
                      request_id="req \x01\x02", details=details, seq=12345, prev_hash=PREV)


@pytest.mark.parametrize("details", DETAILS)
def test_the_seal_input_filled_in_is_the_canonical_json(details):
    event = _event(details)
    opened = event.make_seal_input()
    assert opened.count("\x01") == 1 and opened.count("\x02") == 1
    filled = opened.replace("\x01", f'"{PREV}"').replace("\x02", "12345")
    assert filled.encode() == event.canonical()
    assert hashlib.sha256(filled.encode()).hexdigest() == event.compute_hash()


def test_the_database_seals_as_the_application_hashes(backend, connection):
    if backend != "postgresql":
        pytest.skip("audit_seal_digest is PostgreSQL's (migration 0996)")
    for details in DETAILS:
        event = _event(details)
        digest = connection.scalar(sa.select(sa.func.audit_seal_digest(event.make_seal_input(), 12345, PREV)))
        assert digest == event.compute_hash(), details


def test_events_of_any_content_sealed_by_the_database_verify(backend, session):
    """The real path: events recorded and committed, sealed by audit_append, checked by verify()."""
    if backend != "postgresql":
        pytest.skip("audit_append is PostgreSQL's (migration 0996)")
    actor = SimpleNamespace(client_id="cl_ÖÜ\"\\", organisation_id=uuid.uuid4())
    events = [audit.record(session, actor=actor, action=AuditAction.AUTH_TOKEN_ISSUE, resource_type="token",
                           resource_id=uuid.uuid4(), outcome=Outcome.DENIED, details=details)
              for details in DETAILS]
    session.commit()
    assert all(event.seq is not None for event in events)  # the head was free: sealed at the commit
    assert [event.seq for event in events] == sorted(event.seq for event in events)
    result = audit.verify(session, seal=False)
    assert result.ok and result.unsealed == 0, result
