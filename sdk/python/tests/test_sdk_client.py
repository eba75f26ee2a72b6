"""ReferralClient against the referral API served on loopback."""

from __future__ import annotations

import ast
import configparser
import hashlib
import json
import sys
import time
import tomllib
import uuid
from datetime import UTC, datetime, timedelta
from importlib import metadata
from pathlib import Path

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
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

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


def test_a_post_still_in_progress_is_waited_for_with_its_key(api, failing_proxy):
    """A lost answer (503), then the retry meets the server still processing the same key: `409` with
    `Retry-After` from the service itself. The SDK waits and asks again with the same key."""
    from referral_api.idempotency import IdempotencyKey

    base, session = api
    proxy_url, proxy = failing_proxy
    h, _d, _r = _helpers()
    org = _partner(session)
    c, secret = h.secret_client(session, org)
    body, key = _referral(), "sdk-in-progress-" + uuid.uuid4().hex
    canonical = b"POST /api/v1/referrals\n" + json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    now = datetime.now(UTC)
    # The first attempt's reservation, not answered yet (the server is still at work on it).
    session.add(IdempotencyKey(principal=f"{org.id}/{c.client_id}/-", key=key, created_at=now,
                               expires_at=now + timedelta(hours=1),
                               fingerprint=hashlib.sha256(canonical).hexdigest()))
    session.commit()
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) == 2:  # after the 409: meanwhile the first attempt ends (here: gives up its key)
            session.execute(sa.delete(IdempotencyKey).where(IdempotencyKey.key == key))
            session.commit()

    client = _client(proxy_url, c.client_id, secret, sleep=sleep)
    created = client.submit_referral(body, idempotency_key=key)  # 503 (the proxy), 409 (the service), 201
    posts = [k for method, path, k in proxy.seen if method == "POST" and path.startswith("/api/")]
    assert posts == [key, key, key] and waits == [1.0, 1.0]
    assert created["id"] and len(list(_client(base, c.client_id, secret).referrals())) == 1


def _answer(status: int, body: dict, headers: dict[str, str] | None = None):
    import requests

    r = requests.models.Response()
    r.status_code, r._content = status, json.dumps(body).encode()
    r.headers.update({"Content-Type": "application/json", **(headers or {})})
    return r


class _FakeHttp:
    """A requests.Session stand-in: tokens on demand, then the queued answers of the API, in order."""

    def __init__(self, answers):
        self.answers = list(answers)
        self.sent: list[tuple[str, str | None]] = []

    def post(self, url, **_kwargs):  # the token endpoint
        return _answer(200, {"access_token": "t", "token_type": "Bearer", "expires_in": 900})

    def request(self, method, url, headers=None, **_kwargs):
        self.sent.append((method, (headers or {}).get("Idempotency-Key")))
        return self.answers.pop(0)


IN_PROGRESS = {"type": "https://mgec.mn/problems/conflict", "title": "Conflict with the current state",
               "status": 409, "error": "conflict",
               "detail": "A request with this Idempotency-Key is still being processed; retry shortly."}


def test_in_progress_409_after_a_lost_answer_is_retried_not_a_conflict():
    http = _FakeHttp([_answer(503, {"title": "Service unavailable"}, {"Retry-After": "1"}),
                      _answer(409, IN_PROGRESS, {"Retry-After": "2"}),
                      _answer(201, {"id": "r1", "reference": "REF-2026-000001", "status": "submitted"})])
    waits: list[float] = []
    client = ReferralClient("https://referrals.example", "cl_x", "secret", session=http, sleep=waits.append)
    assert client.submit_referral({"source": "police"})["id"] == "r1"
    assert waits == [1.0, 2.0] and len({key for _m, key in http.sent}) == 1 and http.sent[0][1]


def test_a_409_without_retry_after_or_past_the_retries_is_a_conflict():
    from mgec_referrals import Conflict

    # A real conflict (no Retry-After): raised at once, no wait.
    http = _FakeHttp([_answer(409, {**IN_PROGRESS, "detail": "The referral is already accepted."})])
    waits: list[float] = []
    client = ReferralClient("https://referrals.example", "cl_x", "secret", session=http, sleep=waits.append)
    with pytest.raises(Conflict):
        client.submit_referral({"source": "police"})
    assert waits == [] and len(http.sent) == 1
    # Still in progress after every retry: the same budget as 429/503, Retry-After bounded by max_backoff.
    http = _FakeHttp([_answer(409, IN_PROGRESS, {"Retry-After": "3600"}) for _ in range(3)])
    client = ReferralClient("https://referrals.example", "cl_x", "secret", session=http, sleep=waits.append,
                            max_retries=2, max_backoff=5.0)
    with pytest.raises(Conflict):
        client.submit_referral({"source": "police"})
    assert waits == [5.0, 5.0] and len(http.sent) == 3 and len({key for _m, key in http.sent}) == 1


def test_a_409_with_retry_after_to_a_get_is_not_retried():
    from mgec_referrals import Conflict

    http = _FakeHttp([_answer(409, IN_PROGRESS, {"Retry-After": "1"})])
    waits: list[float] = []
    client = ReferralClient("https://referrals.example", "cl_x", "secret", session=http, sleep=waits.append)
    with pytest.raises(Conflict):
        client.me()
    assert waits == [] and http.sent == [("GET", None)]


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


SDK = Path(__file__).resolve().parents[1]


def _imports(module: Path) -> tuple[set[str], set[str]]:
    """The top-level packages `module` imports: at import time, and anywhere (inside functions too)."""
    def names(nodes) -> set[str]:
        found = set()
        for node in nodes:
            if isinstance(node, ast.Import):
                found |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
        return found - set(sys.stdlib_module_names) - {"__future__"}

    tree = ast.parse(module.read_text(encoding="utf-8"))
    return names(tree.body), names(ast.walk(tree))


def _requirements(lines: list[str]) -> dict[str, SpecifierSet]:
    return {canonicalize_name(r.name): r.specifier for r in map(Requirement, lines)}


def test_the_sdk_requires_what_it_imports():
    """`import mgec_referrals` must work with any version its requirements allow: joserfc is imported,
    so it is required itself (Authlib brings it only from 1.7.0)."""
    project = tomllib.loads((SDK / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    required = _requirements(project["dependencies"])
    optional = {name for extra in project["optional-dependencies"].values() for name in _requirements(extra)}
    for module in sorted((SDK / "mgec_referrals").glob("*.py")):
        at_import, anywhere = _imports(module)
        assert {canonicalize_name(n) for n in at_import} <= set(required), module.name
        assert {canonicalize_name(n) for n in anywhere} <= set(required) | optional, module.name
    assert "joserfc" in required and metadata.version("joserfc") in required["joserfc"]
    # Authlib's floor is the project's own (setup.cfg: above known advisories), 1.7.2.
    setup = configparser.ConfigParser()
    setup.read(SDK.parents[1] / "setup.cfg")
    lines = [r for r in setup["options"]["install_requires"].splitlines() if r.strip()]
    ours = next(s.version for s in _requirements(lines)["authlib"] if s.operator == ">=")
    assert Version(ours) >= Version("1.7.2")
    assert ours in required["authlib"] and not any(v in required["authlib"] for v in ("1.6.12", "1.7.1"))
    assert Version(next(s.version for s in required["authlib"] if s.operator == ">=")) >= Version(ours)
