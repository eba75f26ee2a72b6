"""The outbound address guard: a partner's URL must be https and resolve only to public addresses.

Every call the service makes to a URL a partner gave (webhook receivers, clients' JWKS URIs) goes
through here, in the kernel so that webhooks/ and auth/ share one set of rules. The URL is checked
when it is registered (to tell the integrator early) and, the check that counts, at every call: the
name is resolved once here and the connection goes to the vetted address (`pinned_pool`), so DNS
cannot answer differently in between (rebinding). Redirects are never followed.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import urllib3

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Cloud metadata services, refused even where another rule would not catch them.
METADATA_ADDRESSES = frozenset(
    {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254"),
     ipaddress.ip_address("100.100.100.200")}
)
_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
MAX_URL_LENGTH = 2048
# A name's lookup may take this long (seconds). getaddrinfo takes no timeout of its own: a partner's
# name served by a resolver that never answers held the caller (a request's worker, the webhook worker)
# for as long as the system resolver's retries last. Each lookup runs on a thread of its own, so a
# lookup left behind ends with the resolver's own timeout and holds no one else's: a shared pool of
# threads let one partner's silent name server fill it and refuse every other partner's names. A
# caller leaves at most one behind each RESOLVE_TIMEOUT, so they stay few.
RESOLVE_TIMEOUT = 5.0


class RefusedAddress(Exception):
    """The service may not call this URL; the message says why, without secrets."""


@dataclass(frozen=True)
class Target:
    """A vetted URL: connect to `ip`:`port`, say `host` in SNI and the Host header."""

    scheme: str
    host: str
    port: int
    path: str
    ip: IPAddress

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def is_public(ip: IPAddress) -> bool:
    """Whether `ip` is a public unicast address (not loopback, private, link-local, multicast, ...)."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(ip)
        if embedded is not None and not is_public(embedded):
            return False
        # site-local (fec0::/10, deprecated by RFC 3879 but still routed inside some networks): Python
        # counts it as global
        if ip.teredo is not None or ip.is_site_local:
            return False
    if ip in METADATA_ADDRESSES:
        return False
    if isinstance(ip, ipaddress.IPv4Address) and ip in _CGNAT:
        return False
    return ip.is_global and not (
        ip.is_multicast or ip.is_loopback or ip.is_link_local or ip.is_private or ip.is_reserved
        or ip.is_unspecified
    )


# Mapped one way by IDNA 2003 (Python's codec) and kept by IDNA 2008 (browsers, registries): such a
# name could reach another domain than the one meant, so it is refused rather than guessed.
_IDNA_DEVIATIONS = frozenset("\u00df\u03c2\u200c\u200d")


def ascii_host(host: str) -> str:
    """An internationalised host name (хүлээн.мон) in its ASCII form (xn--k1aew7aa99c.xn--l1acc), the
    form DNS, SNI, the certificate and the Host header use; RefusedAddress when it has none."""
    if host.isascii():
        return host
    if _IDNA_DEVIATIONS & set(host):
        raise RefusedAddress("the host name has a character IDNA versions map differently (ß, ς, ZWJ, ZWNJ)")
    try:
        return host.encode("idna").decode("ascii").lower()
    except UnicodeError:
        raise RefusedAddress("the host name is not a valid internationalised domain name") from None


def parse(url: str, *, allow_http_loopback: bool) -> tuple[str, str, int, str]:
    """Scheme, host, port and path of a partner's URL, or RefusedAddress (no resolution here)."""
    if len(url) > MAX_URL_LENGTH:
        raise RefusedAddress(f"the URL is longer than {MAX_URL_LENGTH} characters")
    if any(ord(c) <= 0x20 or ord(c) == 0x7F for c in url):
        raise RefusedAddress("the URL must not contain spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise RefusedAddress("the URL is not valid") from None
    scheme = parts.scheme.lower()
    if scheme not in ("https", "http"):
        raise RefusedAddress("the URL must start with https://")
    if scheme == "http" and not allow_http_loopback:
        raise RefusedAddress("the URL must start with https://")
    if parts.username is not None or parts.password is not None:
        raise RefusedAddress("the URL must not carry credentials")
    host = ascii_host((parts.hostname or "").rstrip("."))
    if not host:
        raise RefusedAddress("the URL has no host")
    if parts.fragment:
        raise RefusedAddress("the URL must not have a fragment")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return scheme, host, port or (443 if scheme == "https" else 80), path


def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address `host` resolves to (an IP literal resolves to itself)."""
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    infos = _look_up(host, port)
    addresses: list[IPAddress] = []
    for *_, sockaddr in infos:
        ip = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if ip not in addresses:
            addresses.append(ip)
    if not addresses:
        raise RefusedAddress("the host name does not resolve")
    return addresses


def _look_up(host: str, port: int) -> list[Any]:
    """getaddrinfo on a thread of its own, waited for RESOLVE_TIMEOUT at most."""
    answer: dict[str, Any] = {}
    done = threading.Event()

    def look_up() -> None:
        try:
            answer["infos"] = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except Exception as failure:  # noqa: BLE001  raised again by the caller, on its own thread
            answer["failure"] = failure
        finally:
            done.set()

    threading.Thread(target=look_up, name="outbound-dns", daemon=True).start()
    if not done.wait(RESOLVE_TIMEOUT):
        raise RefusedAddress("the host name did not resolve in time")
    failure = answer.get("failure")
    if isinstance(failure, UnicodeError | OSError):  # socket.gaierror among them
        raise RefusedAddress("the host name does not resolve") from None
    if failure is not None:
        raise failure
    return answer["infos"]


def vet(url: str, *, allow_http_loopback: bool) -> Target:
    """Resolve and check a partner's URL; every address it resolves to must be allowed."""
    scheme, host, port, path = parse(url, allow_http_loopback=allow_http_loopback)
    addresses = resolve(host, port)
    if scheme == "http":
        # Development only: plain http reaches nothing but this machine.
        if not all(ip.is_loopback for ip in addresses):
            raise RefusedAddress("plain http is allowed to loopback addresses only")
    elif allow_http_loopback and all(ip.is_loopback for ip in addresses):
        pass  # development: https to a receiver on this machine
    elif not all(is_public(ip) for ip in addresses):
        raise RefusedAddress("the host resolves to an address that is not public")
    return Target(scheme=scheme, host=host, port=port, path=path, ip=addresses[0])


class Watchdog:
    """Shuts the watched connections down at `deadline` (time.monotonic()), whatever they wait for.

    Socket timeouts bound each wait, not the sum: a peer sending a byte now and then (of the TLS
    handshake, the status line, a header) would hold the caller for as long as it likes. At the
    deadline every watched connection is shut down, so the blocked read ends at once. It watches a
    duplicate of the socket's descriptor, the same connection that TLS wrapping does not detach;
    `close()` (always) cancels the timer and closes the duplicates.
    """

    def __init__(self, deadline: float) -> None:
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self.expired = False
        self._timer = threading.Timer(max(0.0, deadline - time.monotonic()), self._cut)
        self._timer.daemon = True
        self._timer.start()

    def watch(self, sock: socket.socket) -> None:
        """Watch `sock`'s connection (shut down at once if the deadline has passed already)."""
        with self._lock:
            self._sockets.append(sock.dup())
            if self.expired:
                _shutdown(self._sockets[-1])

    def _cut(self) -> None:
        with self._lock:
            self.expired = True
            for sock in self._sockets:
                _shutdown(sock)

    def close(self) -> None:
        self._timer.cancel()
        with self._lock:
            for sock in self._sockets:
                sock.close()
            self._sockets.clear()


def _shutdown(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already closed by the peer, say
        sock.shutdown(socket.SHUT_RDWR)


def pinned_pool(target: Target, *, connect_timeout: float, read_timeout: float,
                watchdog: Watchdog | None = None) -> urllib3.HTTPConnectionPool:
    """A one-connection pool to the vetted address (no retries); SNI and certificate use the host name.

    With a `watchdog`, every connection the pool opens is watched from the moment it is connected.
    """
    timeout = urllib3.Timeout(connect=connect_timeout, read=read_timeout)
    host = str(target.ip)
    if target.scheme == "http":
        pool: urllib3.HTTPConnectionPool = urllib3.HTTPConnectionPool(
            host, target.port, timeout=timeout, retries=False, maxsize=1)
    else:
        pool = urllib3.HTTPSConnectionPool(
            host, target.port, timeout=timeout, retries=False, maxsize=1,
            cert_reqs="CERT_REQUIRED",  # with the system trust store
            server_hostname=target.host, assert_hostname=target.host,
        )
    if watchdog is not None:
        pool.ConnectionCls = _watched(pool.ConnectionCls, watchdog)
    return pool


def _watched(base: type, watchdog: Watchdog) -> type:
    """`base` (urllib3's HTTP or HTTPS connection) handing each new socket to `watchdog`."""

    class Watched(base):  # type: ignore[misc, valid-type]
        def _new_conn(self) -> socket.socket:
            sock = super()._new_conn()
            watchdog.watch(sock)
            return sock

    return Watched


def read_capped(response: urllib3.BaseHTTPResponse, *, cap: int, deadline: float) -> bytes:
    """The body's first `cap` bytes at most, read until `deadline` (time.monotonic()) at the latest."""
    data = b""
    while len(data) < cap and time.monotonic() < deadline:
        chunk = response.read1(cap - len(data), decode_content=False)
        if not chunk:
            break
        data += chunk
    return data
