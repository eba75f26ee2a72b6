"""The address guard: refused receivers get nothing; name resolution and connections are stubbed.

No test here can reach the network: `socket.getaddrinfo` answers from a table and urllib3's socket
creation records the address and refuses (or, for loopback only, connects for real).
"""

from __future__ import annotations

import ipaddress
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import urllib3.util.connection

from referral_api import outbound as guard
from referral_api.errors import InvalidPayload
from referral_api.webhooks import services, transport
from tests.webhook_helpers import Actor

PUBLIC_V4 = "93.184.215.14"
PUBLIC_V6 = "2606:2800:21f:cb07:6820:80da:af6b:8b2c"
DNS = {
    "hooks.partner.example": [PUBLIC_V4],
    "v6.partner.example": [PUBLIC_V6],
    "internal.partner.example": ["192.168.1.10"],
    "rebind.partner.example": [PUBLIC_V4, "10.0.0.5"],
    "ula.partner.example": ["fd12:3456::1"],
    "metadata.partner.example": ["169.254.169.254"],
    "mapped.partner.example": ["::ffff:127.0.0.1"],
    "localhost": ["127.0.0.1", "::1"],
    "xn--k1aew7aa99c.xn--l1acc": ["127.0.0.1"],  # хүлээн.мон, for the test on this machine
}
IDN_HOST = "хүлээн.мон"


@pytest.fixture
def network(monkeypatch):
    """Stubbed DNS and connection layer; `network.connections` lists every connection attempted."""

    class Network:
        connections: list[tuple[str, int]] = []
        lookups: list[str] = []

    real_create_connection = urllib3.util.connection.create_connection

    def getaddrinfo(host, port, family=0, type=0, proto=0, flags=0):
        Network.lookups.append(host)
        try:
            ipaddress.ip_address(host)
            addresses = [host]
        except ValueError:
            if host not in DNS:
                raise socket.gaierror(socket.EAI_NONAME, "Name or service not known") from None
            addresses = DNS[host]
        out = []
        for a in addresses:
            fam = socket.AF_INET6 if ":" in a else socket.AF_INET
            sockaddr = (a, port) if fam == socket.AF_INET else (a, port, 0, 0)
            out.append((fam, socket.SOCK_STREAM, 6, "", sockaddr))
        return out

    def create_connection(address, *args, **kwargs):
        host, port = address
        Network.connections.append((host, port))
        if ipaddress.ip_address(host).is_loopback:
            return real_create_connection(address, *args, **kwargs)
        raise ConnectionRefusedError("stubbed: no traffic leaves this machine in tests")

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(urllib3.util.connection, "create_connection", create_connection)
    Network.connections = []
    Network.lookups = []
    return Network


def _post(url: str, *, allow_http_loopback: bool = False) -> transport.Outcome:
    return transport.post(url, body=b"{}", headers={"webhook-id": "x"},
                          allow_http_loopback=allow_http_loopback)


@pytest.mark.parametrize(
    "url",
    [
        "http://hooks.partner.example/hook",  # plain http without the development setting
        "http://127.0.0.1:8080/hook",  # ... even to loopback
        "https://127.0.0.1/hook",
        "https://[::1]/hook",
        "https://10.0.0.1/hook",
        "https://172.16.5.4/hook",
        "https://192.168.0.1/hook",
        "https://169.254.169.254/latest/meta-data/",
        "https://[fd00:ec2::254]/latest/meta-data/",
        "https://[fe80::1]/hook",
        "https://[fec0::1]/hook",  # site-local (Python's is_global says yes)
        "https://100.64.0.1/hook",  # carrier-grade NAT
        "https://224.0.0.1/hook",  # multicast
        "https://[ff02::1]/hook",
        "https://0.0.0.0/hook",
        "https://[::]/hook",
        "https://240.0.0.1/hook",  # reserved
        "https://[::ffff:10.0.0.1]/hook",  # IPv4-mapped IPv6
        "https://[64:ff9b::a00:1]/hook",  # NAT64 of 10.0.0.1
        "https://internal.partner.example/hook",  # a name that resolves to a private address
        "https://rebind.partner.example/hook",  # one of its addresses is private
        "https://ula.partner.example/hook",
        "https://metadata.partner.example/hook",
        "https://mapped.partner.example/hook",
        "https://localhost/hook",
        "https://nowhere.partner.example/hook",  # does not resolve
        "https://user:pw@hooks.partner.example/hook",  # credentials in the URL
        "ftp://hooks.partner.example/hook",
        "https://hooks.partner.example/hook\r\nX-Injected: 1",  # header injection
        "https://hooks.partner.example:99999/hook",
        f"https://{'ж' * 64}.мон/hook",  # a label longer than 63 once in ASCII: no IDNA form
        "https://хүлээн..мон/hook",  # an empty label
        "https://straße.partner.example/hook",  # ß: IDNA 2003 and 2008 disagree on where it goes
    ],
)
def test_refused_receivers_get_nothing(network, url):
    outcome = _post(url)
    assert outcome.status_code is None and not outcome.succeeded
    assert outcome.error.startswith("refused: ")
    assert network.connections == []


def test_http_to_loopback_is_refused_to_other_hosts_even_with_the_development_setting(network):
    outcome = _post("http://hooks.partner.example/hook", allow_http_loopback=True)
    assert outcome.error == "refused: plain http is allowed to loopback addresses only"
    assert network.connections == []


@pytest.mark.parametrize(("url", "ip", "port"), [
    ("https://hooks.partner.example/hook?x=1", PUBLIC_V4, 443),
    ("https://v6.partner.example:8443/hook", PUBLIC_V6, 8443),
    (f"https://{PUBLIC_V4}/hook", PUBLIC_V4, 443),
])
def test_a_public_receiver_passes_and_the_connection_goes_to_the_vetted_address(network, url, ip, port):
    outcome = _post(url)
    # The stub refused the connection: nothing was sent, but the guard let it through to `ip`.
    assert outcome.status_code is None and "stubbed: no traffic" in outcome.error
    assert network.connections == [(ip, port)]
    host = url.split("/")[2].split(":")[0]
    # Resolved once, by the guard (none by urllib3: it connects to the address, not the name).
    assert network.lookups == ([] if host == PUBLIC_V4 else [host])


def test_the_connection_keeps_the_host_name_for_sni_certificate_and_host_header(network):
    target = guard.vet("https://hooks.partner.example:8443/a", allow_http_loopback=False)
    pool = guard.pinned_pool(target, connect_timeout=1, read_timeout=1)
    assert pool.host == PUBLIC_V4
    assert pool.conn_kw["server_hostname"] == "hooks.partner.example"
    assert pool.assert_hostname == "hooks.partner.example"
    assert target.host_header == "hooks.partner.example:8443"


class _Redirector(BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(302)
        self.send_header("Location", "https://10.0.0.1/steal")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def test_a_redirect_to_a_private_address_is_not_followed(network):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Redirector)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        outcome = _post(f"http://127.0.0.1:{server.server_port}/hook", allow_http_loopback=True)
    finally:
        server.shutdown()
        server.server_close()
    assert outcome.status_code == 302 and not outcome.succeeded
    assert outcome.error == "redirect not followed"
    assert network.connections == [("127.0.0.1", server.server_port)]


class _Chatty(BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"x" * 100_000)

    def log_message(self, *args):
        pass


def test_the_answer_is_read_no_further_than_the_cap(network):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Chatty)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        outcome = _post(f"http://127.0.0.1:{server.server_port}/hook", allow_http_loopback=True)
    finally:
        server.shutdown()
        server.server_close()
    assert outcome.succeeded and len(outcome.body) == transport.BODY_CAP


@pytest.mark.parametrize("url", ["http://hooks.partner.example/x", "https://10.0.0.1/x",
                                 "https://internal.partner.example/x", "not a url",
                                 f"https://{'ж' * 64}.мон/x"])
def test_creating_a_subscription_refuses_the_url_naming_it(network, app, session, factories, url):
    org = factories.OrganisationFactory()
    with app.app_context(), pytest.raises(InvalidPayload) as info:
        services.create(session, actor=Actor(org.id), url=url, events=[], allow_http_loopback=False)
    assert list(info.value.errors) == ["url"]
    assert network.connections == []


def test_is_public_on_addresses():
    assert guard.is_public(ipaddress.ip_address(PUBLIC_V4))
    assert guard.is_public(ipaddress.ip_address(PUBLIC_V6))
    for private in ("127.0.0.1", "10.1.2.3", "169.254.1.1", "::1", "fc00::1", "::ffff:192.168.0.1",
                    "2002:c0a8:0001::1", "100.100.100.200", "198.18.0.1", "fec0::1", "feff::1"):
        assert not guard.is_public(ipaddress.ip_address(private)), private


class _Recorder(BaseHTTPRequestHandler):
    hosts: list[str] = []

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        type(self).hosts.append(self.headers["Host"])
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_a_receiver_on_an_internationalised_host_is_reached_by_its_ascii_name(network, app, session,
                                                                                 factories, monkeypatch):
    monkeypatch.setattr(_Recorder, "hosts", [])
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://{IDN_HOST}:{server.server_port}/hook"
    try:
        with app.app_context():
            sub, _ = services.create(session, actor=Actor(factories.OrganisationFactory().id), url=url,
                                     events=[], allow_http_loopback=True)
            assert sub.url == url  # kept as the partner gave it
        outcome = _post(url, allow_http_loopback=True)
    finally:
        server.shutdown()
        server.server_close()
    assert outcome.status_code == 204, outcome
    assert _Recorder.hosts == [f"xn--k1aew7aa99c.xn--l1acc:{server.server_port}"]
    assert "xn--k1aew7aa99c.xn--l1acc" in network.lookups and IDN_HOST not in network.lookups
    target = guard.vet(f"https://{IDN_HOST.upper()}/hook", allow_http_loopback=True)
    assert (target.host, target.host_header) == ("xn--k1aew7aa99c.xn--l1acc", "xn--k1aew7aa99c.xn--l1acc")


def test_refusing_an_internationalised_host_says_why(network, app, session, factories):
    with app.app_context(), pytest.raises(InvalidPayload) as info:
        services.create(session, actor=Actor(factories.OrganisationFactory().id),
                        url="https://straße.partner.example/x", events=[], allow_http_loopback=False)
    assert info.value.errors == {"url": [
        "the host name has a character IDNA versions map differently (ß, ς, ZWJ, ZWNJ)"]}


def test_a_name_that_never_resolves_is_refused_after_the_lookup_timeout(monkeypatch):
    """getaddrinfo has no timeout of its own: a resolver that never answers (a partner's name server,
    say) held the caller; the lookup is abandoned after RESOLVE_TIMEOUT and the URL refused, the
    abandoned lookup left to the resolver's own retries."""
    answer = threading.Event()
    asked = []

    def stalled(host, *_args, **_kwargs):
        asked.append(host)
        answer.wait(30)  # released below: the test leaves no thread behind
        raise socket.gaierror("no answer")

    monkeypatch.setattr(socket, "getaddrinfo", stalled)
    monkeypatch.setattr(guard, "RESOLVE_TIMEOUT", 0.2)
    try:
        with pytest.raises(guard.RefusedAddress, match="did not resolve in time"):
            guard.vet("https://slow.partner.example/hook", allow_http_loopback=False)
        assert asked == ["slow.partner.example"] and not answer.is_set()
        outcome = transport.post("https://slow.partner.example/hook", body=b"{}", headers={},
                                 allow_http_loopback=False)
        assert outcome.status_code is None and "did not resolve in time" in outcome.error
    finally:
        answer.set()


def test_one_partners_silent_name_server_does_not_refuse_other_partners_names(monkeypatch):
    """Lookups left behind (a name server that never answers, asked again and again) hold no thread
    another partner's lookup needs: its name, answered at once, still resolves."""
    monkeypatch.setattr(guard, "RESOLVE_TIMEOUT", 0.2)
    released = threading.Event()

    def resolver(host, port, *args, **kwargs):
        if host == "hooks.silent.example":
            released.wait(30)  # the system resolver's retries; released below
            raise socket.gaierror("timed out")
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (DNS[host][0], port))]

    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    try:
        for _ in range(8):
            with pytest.raises(guard.RefusedAddress, match="did not resolve in time"):
                guard.resolve("hooks.silent.example", 443)
        assert [str(ip) for ip in guard.resolve("hooks.partner.example", 443)] == [PUBLIC_V4]
    finally:
        released.set()
