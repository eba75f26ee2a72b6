"""The production stack on loopback: nginx (the shipped deploy/nginx/referral-api.conf), `referral-api
serve` (gunicorn, gevent workers) and the webhook worker, each a real process in a temporary folder.

Used by tests/test_deploy_nginx.py and bench/soak.py. Needs Debian's nginx (`.ci/run` installs it).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import re
import shutil
import signal
import socket
import subprocess  # nosec B404 - starts nginx and the service, fixed argument lists
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parent.parent
NGINX_CONF = REPO / "deploy" / "nginx" / "referral-api.conf"
BIN = Path(sys.executable).parent
RELEASE = "/opt/referral-api/"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def nginx_binary() -> str | None:
    return shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if Path(p).exists()), None)


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and localhost, made here with `cryptography`, and its key."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                    x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                       critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_path.chmod(0o600)
    return cert_path, key_path


def render(conf: str, *, https_port: int, http_port: int, app_ports: list[int], cert: Path, key: Path,
           logs: Path) -> str:
    """The shipped server configuration on loopback: ports, upstreams, certificate, logs and the release
    path replaced; every other directive as shipped."""
    out = conf.replace(RELEASE, str(REPO) + "/")
    out = re.sub(r"^\s*listen \[::\]:\d+.*\n", "", out, flags=re.M)
    out = re.sub(r"listen 80;", f"listen 127.0.0.1:{http_port};", out)
    out = re.sub(r"listen 443 ssl;", f"listen 127.0.0.1:{https_port} ssl;", out)
    upstreams = "".join(f"    server 127.0.0.1:{p} max_fails=3 fail_timeout=10s;\n" for p in app_ports)
    out, n = re.subn(r"^\s*server 127\.0\.0\.1:8000[^\n]*\n", upstreams, out, flags=re.M)
    assert n == 1, "the shipped upstream line was not found"
    out = re.sub(r"ssl_certificate\s+\S+;", f"ssl_certificate {cert};", out)
    out = re.sub(r"ssl_certificate_key\s+\S+;", f"ssl_certificate_key {key};", out)
    out = re.sub(r"access_log /var/log/nginx/\S+", f"access_log {logs / 'access.log'}", out)
    return re.sub(r"error_log\s+/var/log/nginx/\S+", f"error_log {logs / 'error.log'}", out)


def main_conf(prefix: Path, server_conf: Path) -> str:
    """A whole nginx.conf for a non-root-friendly prefix around the server configuration."""
    user = "user root;\n" if os.geteuid() == 0 else ""  # workers must read the test's 0700 folders
    temp = "".join(f"{kind}_temp_path {prefix / kind};\n    "
                   for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    return (f"{user}worker_processes 1;\ndaemon off;\npid {prefix / 'nginx.pid'};\n"
            f"error_log {prefix / 'error.log'} warn;\nevents {{ worker_connections 2048; }}\n"
            f"http {{\n    {temp}access_log off;\n    include {server_conf};\n}}\n")


def wait_http(url: str, *, timeout: float = 60.0, **kwargs) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            requests.get(url, timeout=2, **kwargs)
            return
        except requests.RequestException:
            time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer within {timeout}s")


@dataclass
class Stack:
    """nginx + app processes (+ worker) on loopback; `base` is the https address nginx serves."""

    folder: Path
    env: dict[str, str]
    workers: int = 2
    with_worker: bool = False
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    https_port: int = 0
    app_port: int = 0
    cert: Path | None = None

    @property
    def base(self) -> str:
        return f"https://127.0.0.1:{self.https_port}"

    @property
    def app_base(self) -> str:
        return f"http://127.0.0.1:{self.app_port}"

    @property
    def metrics_dir(self) -> Path:
        return self.folder / "metrics"

    def _spawn(self, name: str, args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
        log = open(self.folder / f"{name}.log", "ab")  # noqa: SIM115  (kept by the process)
        proc = subprocess.Popen(args, env=env or self.env, stdout=log, stderr=subprocess.STDOUT,  # nosec B603
                                stdin=subprocess.DEVNULL, start_new_session=True)
        self.procs[name] = proc
        return proc

    def start(self) -> Stack:
        nginx = nginx_binary()
        if nginx is None:
            raise RuntimeError("nginx is not installed (apt-get install -y nginx-light)")
        self.folder.mkdir(parents=True, exist_ok=True)
        self.app_port, self.https_port = free_port(), free_port()
        self._spawn("app", [str(BIN / "referral-api"), "serve", "--host", "127.0.0.1",
                            "--port", str(self.app_port), "--workers", str(self.workers)],
                    env={**self.env, "PROMETHEUS_MULTIPROC_DIR": str(self.metrics_dir)})
        if self.with_worker:
            self._spawn("worker", [str(BIN / "referral-api"), "webhooks", "work", "--poll-interval", "0.2"])
        self.cert, key = self_signed(self.folder)
        server = self.folder / "referral-api.conf"
        server.write_text(render(NGINX_CONF.read_text(), https_port=self.https_port, http_port=free_port(),
                                 app_ports=[self.app_port], cert=self.cert, key=key, logs=self.folder))
        (self.folder / "nginx.conf").write_text(main_conf(self.folder, server))
        test = subprocess.run([nginx, "-t", "-p", str(self.folder), "-c", str(self.folder / "nginx.conf"),  # nosec
                               "-e", str(self.folder / "error.log")], capture_output=True, text=True)
        if test.returncode:
            raise RuntimeError("nginx -t refused the configuration: " + test.stderr)
        self._spawn("nginx", [nginx, "-p", str(self.folder), "-c", str(self.folder / "nginx.conf"),
                              "-e", str(self.folder / "error.log")])
        wait_http(self.app_base + "/healthz")
        wait_http(self.base + "/healthz", verify=str(self.cert))
        return self

    def pids(self) -> dict[str, list[int]]:
        """Every process of the stack by role: gunicorn's master and workers, nginx's, the worker."""
        out: dict[str, list[int]] = {}
        for name, proc in self.procs.items():
            children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
            kids = [int(p) for p in children.read_text().split()] if children.exists() else []
            out[name] = [proc.pid, *kids]
        return out

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM if proc.args[0] != nginx_binary() else signal.SIGQUIT)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)

    def __enter__(self) -> Stack:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()
