"""A typed Python client generated from openapi/openapi.json by openapi-python-client works against the
app served on 127.0.0.1: a token by client credentials, a referral submitted, read, its case status by
the partner's own reference, and a 422 parsed as the ValidationProblem model (never None)."""

from __future__ import annotations

import importlib
import secrets
import shutil
import subprocess  # nosec B404 - the pinned generator of the dev extras, no shell
import sys
from pathlib import Path

import pytest

from referral_api.access import Role
from referral_api.db import get_session
from referral_api.organisations import services as org_services
from referral_api.organisations.models import OrganisationKind
from referral_api.referrals import services as referral_services
from referral_api.referrals.schemas import AcceptInSchema
from tests import console_helpers as c
from tests import oauth_helpers as h
from tests.openapi_tools import OPENAPI, missing
from tests.referral_data import referral_body

pytestmark = pytest.mark.slow

PACKAGE = "mgec_referral_client"


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """The client package, generated into a temporary folder and importable from there."""
    generator = Path(sys.executable).parent / "openapi-python-client"
    if not generator.exists():
        missing("openapi-python-client", "pip install -e '.[dev]'")
    folder = tmp_path_factory.mktemp("generated")
    config = folder / "config.yaml"
    config.write_text("post_hooks: []\n", encoding="utf-8")  # no formatter needed to import it
    result = subprocess.run(  # nosec B603
        [str(generator), "generate", "--path", str(OPENAPI), "--meta", "none", "--config", str(config),
         "--output-path", str(folder / PACKAGE)],
        capture_output=True, text=True, timeout=300, cwd=folder,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Warning" not in result.stdout, result.stdout  # every operation and model was generated
    sys.path.insert(0, str(folder))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(folder))
        for name in [m for m in sys.modules if m == PACKAGE or m.startswith(PACKAGE + ".")]:
            del sys.modules[name]
        shutil.rmtree(folder, ignore_errors=True)


def _module(name: str):
    return importlib.import_module(f"{PACKAGE}.{name}")


def _token(client_module, base, client_id, secret) -> str:
    get_token = _module("api.oauth.get_token")
    body_model = _module("models.get_token_body")
    grant = _module("models.get_token_body_grant_type").GetTokenBodyGrantType
    anonymous = client_module.Client(base_url=base, raise_on_unexpected_status=True)
    token = get_token.sync(client=anonymous, body=body_model.GetTokenBody(
        grant_type=grant.CLIENT_CREDENTIALS, client_id=client_id, client_secret=secret))
    assert type(token).__name__ == "OAuthToken", token
    return token.access_token


def _accept(app, referral_id: str) -> None:
    """MGEC accepts the referral (a case opens), as a coordinator would."""
    with app.app_context():
        session = get_session()
        mgec = org_services.mgec(session)
        user, _totp = h.person(session, mgec, Role.MGEC_COORDINATOR)
        referral_services.accept(session, c.actor_for(user, "cl_console"), ref=referral_id,
                                 data=AcceptInSchema().load({}))


def test_a_generated_client_makes_the_round_trip(generated, live_server):
    base, app = live_server
    with app.app_context():
        session = get_session()
        h.organisation(session, OrganisationKind.MGEC)
        police = h.organisation(session, OrganisationKind.POLICE)
        partner, secret = h.secret_client(session, police, auth_method="client_secret_post",
                                          scopes="referrals:submit referrals:read cases:status")
        client_id = partner.client_id
    api = generated.AuthenticatedClient(base_url=base, token=_token(generated, base, client_id, secret),
                                        raise_on_unexpected_status=True)
    models = _module("models")
    reference = f"MO-GEN-{secrets.token_hex(4)}"
    data = referral_body(external_reference=reference)
    submitted = _module("api.referrals.submit_referral").sync(
        client=api, body=models.ReferralIn.from_dict(_jsonable(data)), idempotency_key=secrets.token_hex(8))
    assert isinstance(submitted, models.ReferralStaffView), submitted
    assert submitted.external_reference == reference and submitted.status == "submitted"

    read = _module("api.referrals.get_referral").sync(str(submitted.id), client=api)
    assert isinstance(read, models.ReferralStaffView) and read.reference == submitted.reference

    _accept(app, str(submitted.id))
    status = _module("api.cases.get_case_status_by_external_reference").sync(
        client=api, external_reference=reference)
    assert type(status).__name__ == "CaseStatus", status
    assert status.stage.value == "verification" and status.on_hold is False

    # well typed, so the model takes it; not a country, so the server refuses it
    bad = {**_jsonable(data), "situation": {**_jsonable(data)["situation"], "identified_country": "ZZ"}}
    refused = _module("api.referrals.submit_referral").sync_detailed(
        client=api, body=models.ReferralIn.from_dict(bad))
    assert refused.status_code == 422
    problem = refused.parsed
    assert isinstance(problem, models.ValidationProblem), problem
    assert problem.status == 422 and "situation.identified_country" in problem.errors.additional_properties


def _jsonable(data):
    import json

    return json.loads(json.dumps(data, default=str))
