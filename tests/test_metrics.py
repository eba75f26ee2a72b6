"""`/metrics` (issue 19): Prometheus text that prometheus-client's own parser reads, counters by route
template, gauges from the database, no personal data in any label, and only for METRICS_ALLOW."""

from __future__ import annotations

import dataclasses
import ipaddress
from contextlib import contextmanager

import pytest
from prometheus_client.parser import text_string_to_metric_families

from referral_api.config import ConfigError, Settings
from referral_api.metrics import address_allowed

LOOPBACK = {"REMOTE_ADDR": "127.0.0.1"}


@contextmanager
def allowed(app, text: str):
    settings = app.config["SETTINGS"]
    app.config["SETTINGS"] = dataclasses.replace(settings, metrics_allow=Settings.from_env(
        {"METRICS_ALLOW": text}).metrics_allow)
    try:
        yield
    finally:
        app.config["SETTINGS"] = settings


def _families(text: str) -> dict:
    return {f.name: f for f in text_string_to_metric_families(text)}


def _samples(family, **labels) -> list[float]:
    return [s.value for s in family.samples if all(s.labels.get(k) == v for k, v in labels.items())]


def test_metrics_parse_and_count_by_route_template(app, client, run_cli):
    seeded = run_cli("demo", "seed", "--json")
    assert seeded.exit_code == 0, seeded.output
    assert run_cli("audit", "checkpoint").exit_code == 0
    secret_path = "/api/v1/referrals/Oyunchimeg-Dorj-E1234567"
    client.get(secret_path)
    client.get("/api/v1/no-such-place-Batbayar")
    client.get("/healthz")
    client.post("/oauth/token", data={"grant_type": "client_credentials"}, auth=("nobody", "wrong"))
    with allowed(app, "127.0.0.1, 10.0.0.0/8"):
        answer = client.get("/metrics", environ_base=LOOPBACK)
    assert answer.status_code == 200
    assert answer.headers["Content-Type"].startswith("text/plain; version=")
    text = answer.get_data(as_text=True)
    families = _families(text)
    requests_family = families["referral_api_http_requests"]
    assert _samples(requests_family, route="/api/v1/referrals/<string:ref>", method="GET", status="401")
    assert _samples(requests_family, route="(unmatched)", status="404")
    assert _samples(requests_family, route="/healthz", status="200")
    latency = families["referral_api_http_request_duration_seconds"]
    assert latency.type == "histogram" and _samples(latency, route="/healthz", le="+Inf")
    assert _samples(families["referral_api_tokens_refused"], error="invalid_client")
    referrals = families["referral_api_referrals"]
    assert sum(_samples(referrals)) >= 3 and {s.labels["status"] for s in referrals.samples} <= {
        "submitted", "in_review", "information_requested", "accepted", "rejected", "withdrawn"}
    assert sum(_samples(families["referral_api_cases"])) >= 1
    for name in ("referral_api_outbox_backlog", "referral_api_outbox_oldest_age_seconds",
                 "referral_api_webhook_deliveries", "referral_api_overdue_items",
                 "referral_api_cases_on_hold"):
        assert name in families
    assert _samples(families["referral_api_audit_chain_length"])[0] >= 1
    assert _samples(families["referral_api_audit_unsealed_events"])[0] == 0
    assert 0 <= _samples(families["referral_api_audit_last_checkpoint_age_seconds"])[0] < 300
    # No personal data and no raw path anywhere in the text.
    for word in ("Oyunchimeg", "Batbayar", "E1234567", "REF-", "CASE-", "@"):
        assert word not in text


def test_tokens_issued_are_counted_by_grant_type(app, client, run_cli):
    import json

    seeded = json.loads(run_cli("demo", "seed", "--json").output)
    police = seeded["clients"]["police"]
    issued = client.post("/oauth/token", data={"grant_type": "client_credentials"},
                         auth=(police["client_id"], police["client_secret"]))
    assert issued.status_code == 200
    with allowed(app, "127.0.0.1"):
        families = _families(client.get("/metrics", environ_base=LOOPBACK).get_data(as_text=True))
    assert _samples(families["referral_api_tokens_issued"], grant_type="client_credentials")[0] >= 1


@pytest.mark.parametrize(("allow", "environ", "headers"), [
    ("", LOOPBACK, {}),                                        # the default: nobody
    ("127.0.0.1", {"REMOTE_ADDR": "192.0.2.10"}, {}),          # outside the list
    ("10.0.0.0/8", {"REMOTE_ADDR": "10.1.2.3"}, {"X-Forwarded-For": "10.1.2.3"}),  # came through a proxy
])
def test_metrics_refused_outside_metrics_allow(app, client, allow, environ, headers):
    with allowed(app, allow):
        answer = client.get("/metrics", environ_base=environ, headers=headers)
    assert answer.status_code == 404
    assert answer.headers["Content-Type"] == "application/problem+json"
    assert answer.json["status"] == 404 and "referral_api_" not in answer.get_data(as_text=True)


def test_metrics_allow_is_checked_at_start():
    assert Settings.from_env({}).metrics_allow == ()
    parsed = Settings.from_env({"METRICS_ALLOW": "127.0.0.1, 10.0.5.0/24,::1"}).metrics_allow
    assert parsed == (ipaddress.ip_network("127.0.0.1/32"), ipaddress.ip_network("10.0.5.0/24"),
                      ipaddress.ip_network("::1/128"))
    with pytest.raises(ConfigError, match="METRICS_ALLOW"):
        Settings.from_env({"METRICS_ALLOW": "everyone"})
    assert address_allowed("10.0.5.7", parsed) and not address_allowed("10.0.6.7", parsed)
    assert not address_allowed("not-an-address", parsed) and not address_allowed("127.0.0.1", ())
