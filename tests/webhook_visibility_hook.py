"""Test hook: a visibility rule for the end-to-end tests' resource type, loaded by worker processes.

The worker processes of tests/test_webhooks_e2e.py import this module through the development-only
setting WEBHOOKS_TEST_VISIBILITY_MODULE=tests.webhook_visibility_hook (PYTHONPATH at the repository).
Until referrals/ and cases/ register their real rules, it stands in for them: the organisations
allowed to see an `e2e_record` are those whose name starts with "Audience ".
"""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from sqlalchemy.orm import Session

from referral_api.organisations.models import Organisation
from referral_api.webhooks import visibility

RESOURCE_TYPE = "e2e_record"


def audience(session: Session, resource_id: uuid.UUID) -> set[uuid.UUID]:
    return set(session.scalars(sa.select(Organisation.id).where(Organisation.name.startswith("Audience "))))


visibility.register(RESOURCE_TYPE, audience)
