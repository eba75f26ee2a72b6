"""An unexpected database error is logged without the values of the row: PostgreSQL's DETAIL ("Key
(email)=(...) already exists", "Failing row contains (...)") is part of the driver's message, which
hide_parameters does not reach."""

from __future__ import annotations

import io
import json
import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import sqlalchemy as sa

from referral_api import errors
from referral_api.access import Role
from referral_api.auth import services as auth_services
from referral_api.auth.models import User
from referral_api.observability import configure_logging
from tests import oauth_helpers as h

EMAIL = "a.person@example.org"


@contextmanager
def service_log() -> Iterator[io.StringIO]:
    """What the service's own handler (JSON lines on stderr) writes, meanwhile."""
    configure_logging("INFO")
    [handler] = [x for x in logging.getLogger("referral_api").handlers if getattr(x, "_referral_api", False)]
    stream = io.StringIO()
    previous = handler.setStream(stream)
    try:
        yield stream
    finally:
        handler.setStream(previous)


def _failing_write(session, make) -> sa.exc.DBAPIError:
    org = h.organisation(session)
    auth_services.create_user(session, organisation=str(org.id), email=EMAIL, role=Role.PARTNER_OFFICER,
                              password="a long password 1")
    session.add(make(org))
    with pytest.raises(sa.exc.DBAPIError) as raised:
        session.flush()
    session.rollback()
    return raised.value


def _logged(app, exc: Exception) -> dict:
    with service_log() as stream, app.test_request_context("/api/v1/users"):
        assert errors.render(exc).status_code == 500
    [line] = [json.loads(x) for x in stream.getvalue().splitlines() if x.strip()]
    return line


def test_a_duplicate_key_is_logged_without_its_value(app, session):
    exc = _failing_write(session, lambda org: User(organisation_id=org.id, email=EMAIL, name="",
                                                   role=Role.PARTNER_OFFICER, password_hash="x"))
    line = _logged(app, exc)
    assert line["message"] == "unhandled error"
    assert EMAIL not in json.dumps(line)
    assert "IntegrityError" in line["exc_info"] and "INSERT INTO users" in line["exc_info"]
    if session.get_bind().dialect.name == "postgresql":  # what the log still tells a maintainer
        assert "SQLSTATE 23505" in line["exc_info"] and "constraint" in line["exc_info"]


def test_a_failing_row_is_logged_without_its_values(app, session, backend):
    if backend != "postgresql":
        pytest.skip("'Failing row contains' is PostgreSQL's DETAIL")
    exc = _failing_write(session, lambda org: User(organisation_id=org.id, email=f"x{uuid.uuid4().hex}@b.c",
                                                   name=EMAIL, role=None, password_hash="x"))
    line = _logged(app, exc)
    assert "Failing row" in str(exc.orig) and EMAIL in str(exc.orig)  # the driver's message quotes it
    assert EMAIL not in json.dumps(line) and "SQLSTATE 23502" in line["exc_info"]


def test_other_errors_keep_their_whole_traceback(app):
    try:
        {}["some_key"]
    except KeyError as raised:
        line = _logged(app, raised)
    assert "Traceback" in line["exc_info"] and "KeyError: 'some_key'" in line["exc_info"]


def test_a_session_used_again_after_a_failed_flush_is_logged_without_the_value(app, session, backend):
    """PendingRollbackError copies the failure's text (DETAIL and all) into its own message."""
    if backend != "postgresql":
        pytest.skip("the DETAIL line is PostgreSQL's")
    org = h.organisation(session)
    auth_services.create_user(session, organisation=str(org.id), email=EMAIL, role=Role.PARTNER_OFFICER,
                              password="a long password 1")
    session.add(User(organisation_id=org.id, email=EMAIL, name="", role=Role.PARTNER_OFFICER,
                     password_hash="x"))
    with pytest.raises(sa.exc.IntegrityError):
        session.flush()
    with pytest.raises(sa.exc.PendingRollbackError) as raised:  # no rollback: a bug elsewhere, say
        session.scalar(sa.select(User.id))
    session.rollback()
    assert EMAIL in str(raised.value)
    line = _logged(app, raised.value)
    assert EMAIL not in json.dumps(line) and "PendingRollbackError" in line["exc_info"]
