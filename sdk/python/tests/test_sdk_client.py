"""ReferralClient against the referral API served on loopback."""

from __future__ import annotations

import json
import time
import uuid

import pytest
import sqlalchemy as sa
from mgec_referrals import (
    InvalidWebhook,
    NotFound,
    ReferralClient,
    TokenError,
    ValidationFailed,
    verify_webhook,
)
from mgec_referrals.client import retry_after

pytestmark = pytest.mark.slow


def _helpers():
    from tests import dpop_helpers, oauth_helpers, referral_data

    return oauth_helpers, dpop_helpers, referral_data


def _partner(session):
    h, _d, _r = _helpers()
    from referral_api.organisations.models import OrganisationKind

    return h.organisation(session, OrganisationKind.POLICE)


def _referral(**overrides):
    _h, _d, r = _helpers()
    return r.referral_body(external_reference=f"SDK-{uuid.uuid4().hex[:12]}", **overrides)


def _client(base, client_id, key_or_secret, **kwargs):
    client = ReferralClient(base, client_id, key_or_secret, **kwargs)
    client.http.trust_env = False
    return client


def test_client_secret_submit_read_and_typed_errors(api):
    base, session = api
    h, _d, _r = _helpers()
    c, secret = h.secret_client(session, _partner(session))
    client = _client(base, c.client_id, secret)
    assert client.me()["client_id"] == c.client_id
    created = client.submit_referral(_referral())
    assert client.get_referral(created["id"])["id"] == created["id"]
    with pytest.raises(ValidationFailed) as invalid:
        client.submit_referral(_referral(concern="not-a-concern"))
    assert "concern" in invalid.value.errors and invalid.value.status == 422
    with pytest.raises(NotFound):
        client.get_referral(str(uuid.uuid4()))
    with pytest.raises(TokenError) as refused:
        _client(base, c.client_id, "not the secret").me()
    assert refused.value.error == "invalid_client"


def test_private_key_jwt_and_token_renewal(api):
    base, session = api
    h, _d, _r = _helpers()
    key = h.ec_key()
    c = h.jwt_client(session, _partner(session), key)
    client = _client(base, c.client_id, key.as_dict(private=True))
    assert client.me()["client_id"] == c.client_id
    first = client.tokens.token()
    client.tokens._expires_at = time.monotonic()  # as if it were about to expire: renewed before use
    assert client.me()["client_id"] == c.client_id
    renewed = client.tokens.token()
    assert renewed != first
    # a token revoked behind the client's back: one 401 invalid_token, a new token, the call succeeds
    from referral_api.auth.models import Token

    for row in session.scalars(sa.select(Token).where(Token.client_pk == c.id)):
        row.access_revoked_at = row.issued_at
    session.commit()
    assert client.me()["client_id"] == c.client_id
    assert client.tokens.token() not in (first, renewed)  # the call went through on a new token


def test_private_key_jwt_from_a_pem(api):
    base, session = api
    h, _d, _r = _helpers()
    key = h.rsa_key()
    c = h.jwt_client(session, _partner(session), key)
    client = _client(base, c.client_id, key.as_pem(private=True).decode())
    assert client.me()["client_id"] == c.client_id


def test_dpop_when_the_client_is_registered_for_it(api):
    base, session = api
    _h, d, _r = _helpers()
    from referral_api.auth.models import Token

    c, secret = d.dpop_client(session, nonce=True)
    client = _client(base, c.client_id, secret)  # dpop=None: it finds out from the token endpoint
    assert client.me()["client_id"] == c.client_id
    assert client.tokens.scheme == "DPoP"
    session.expire_all()
    row = session.scalar(sa.select(Token).where(Token.client_pk == c.id))
    assert row.dpop_jkt == client.tokens.dpop.key.thumbprint()
    session.rollback()  # end the read: SQLite would keep the server's writes waiting
    created = client.submit_referral(_referral())
    assert client.get_referral(created["id"])["id"] == created["id"]
    # the same token as a bearer token is refused by the API
    import requests

    bearer = requests.get(base + "/api/v1/me", headers={"Authorization": f"Bearer {client.tokens.token()}"},
                          timeout=10)
    assert bearer.status_code == 401


def test_retry_after_a_lost_answer_reuses_the_idempotency_key(api, failing_proxy):
    base, session = api
    proxy_url, proxy = failing_proxy
    h, _d, _r = _helpers()
    c, secret = h.secret_client(session, _partner(session))
    waits: list[float] = []
    client = _client(proxy_url, c.client_id, secret, sleep=waits.append)
    created = client.submit_referral(_referral())
    posts = [(path, key) for method, path, key in proxy.seen if method == "POST" and path.startswith("/api/")]
    assert len(posts) == 2 and posts[0][1] and posts[0] == posts[1]  # the same Idempotency-Key
    assert waits == [1.0]  # Retry-After honoured
    # the server did the first attempt; the retry got its answer again, not a second referral
    direct = _client(base, c.client_id, secret)
    mine = [r for r in direct.referrals() if r["id"] == created["id"]]
    assert len(mine) == 1 and len(list(direct.referrals())) == 1


def test_a_busy_token_endpoint_is_retried_after_its_retry_after(api, failing_proxy):
    _base, session = api
    proxy_url, proxy = failing_proxy
    proxy.fail_first, proxy.fail_token = 0, 2
    h, _d, _r = _helpers()
    c, secret = h.secret_client(session, _partner(session))
    waits: list[float] = []
    client = _client(proxy_url, c.client_id, secret, sleep=waits.append)
    assert client.me()["client_id"] == c.client_id
    assert waits == [2.0, 2.0] and [p for _m, p, _k in proxy.seen].count("/oauth/token") == 3


def test_retries_give_up_with_a_typed_error(api, failing_proxy):
    _base, session = api
    proxy_url, proxy = failing_proxy
    proxy.fail_first = 10
    proxy.retry_after = "0"
    h, _d, _r = _helpers()
    c, secret = h.secret_client(session, _partner(session))
    waits: list[float] = []
    client = _client(proxy_url, c.client_id, secret, sleep=waits.append, max_retries=2)
    from mgec_referrals import ServerError

    with pytest.raises(ServerError):
        client.submit_referral(_referral())
    keys = {key for method, _path, key in proxy.seen if method == "POST" and _path.startswith("/api/")}
    assert len(keys) == 1 and waits == [0.0, 0.0]


def test_pagination_over_120_referrals(api):
    base, session = api
    h, _d, _r = _helpers()
    c, secret = h.secret_client(session, _partner(session))
    client = _client(base, c.client_id, secret)
    submitted = {client.submit_referral(_referral())["id"] for _ in range(120)}
    pages = []
    original = client.request

    def counting(method, path, **kwargs):
        if method == "GET":
            pages.append(kwargs.get("params", {}).get("cursor"))
        return original(method, path, **kwargs)

    client.request = counting
    seen = [r["id"] for r in client.referrals(limit=50)]
    assert len(seen) == 120 and set(seen) == submitted
    assert len(pages) == 3 and pages[0] is None and all(pages[1:])


def test_verify_webhook_with_the_servers_signature():
    from referral_api.webhooks import signing

    secret = signing.new_secret()
    body = signing.encode_body({"type": "referral.accepted", "data": {"id": "x"}})
    headers = signing.headers([secret], msg_id="msg_1", timestamp=int(time.time()), body=body)
    assert verify_webhook(headers, body, secret)["type"] == "referral.accepted"
    capitalised = {k.title(): v for k, v in headers.items()}
    assert verify_webhook(capitalised, body.decode(), secret)["data"] == {"id": "x"}
    with pytest.raises(InvalidWebhook):
        verify_webhook(headers, body.replace(b"accepted", b"rejected"), secret)
    with pytest.raises(InvalidWebhook):
        verify_webhook(headers, body, signing.new_secret())
    old = signing.headers([secret], msg_id="msg_1", timestamp=int(time.time()) - 3600, body=body)
    with pytest.raises(InvalidWebhook):
        verify_webhook(old, body, secret)
    assert json.loads(body)["type"] == "referral.accepted"


def test_retry_after_parsing():
    assert retry_after("3") == 3.0
    assert retry_after(None) is None and retry_after("soon") is None
    assert 0 <= retry_after(time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 5))) <= 6
