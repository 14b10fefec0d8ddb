"""What tests and benchmarks do to a test-bed etcd beyond starting it and writing v3 keys: etcdctl,
v2 writes, turning auth on. The shipped test bed (etcdsec.testbed) keeps only what `etcdsec demo`
needs."""

from __future__ import annotations

import base64
import os
import subprocess

from etcdsec.testbed.etcd import EtcdServer


def etcdctl(server: EtcdServer, *args: str, api: str = "3") -> str:
    """Run etcdctl against this server (its own TLS files when it has them); stdout, or RuntimeError."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ETCDCTL")}
    env["ETCDCTL_API"] = api
    cmd = [str(server.etcdctl), f"--endpoints={server.client_url}"]
    if server.scheme == "https" and server.ca:
        cmd += [f"--cacert={server.ca.cert_path}"] if api == "3" else [f"--ca-file={server.ca.cert_path}"]
        if server.client_cert:
            if api == "3":
                cmd += [f"--cert={server.client_cert.cert}", f"--key={server.client_cert.key}"]
            else:
                cmd += [f"--cert-file={server.client_cert.cert}", f"--key-file={server.client_cert.key}"]
    out = subprocess.run(cmd + list(args), env=env, capture_output=True, timeout=20)
    if out.returncode != 0:
        raise RuntimeError(f"etcdctl {' '.join(args)}: {out.stderr.decode(errors='replace')}")
    return out.stdout.decode()


def v2_put(server: EtcdServer, key: str, value: str, auth: tuple[str, str] | None = None) -> None:
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if auth:
        headers["Authorization"] = "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
    status, body = server.http("PUT", f"/v2/keys{key}", f"value={value}".encode(), headers)
    if status not in (200, 201):
        raise RuntimeError(f"v2 put {key}: {status} {body[:200]!r}")


def enable_v3_auth(server: EtcdServer, root_password: str = "rootpw") -> None:
    etcdctl(server, "user", "add", f"root:{root_password}")
    etcdctl(server, "auth", "enable")


def enable_v2_auth(server: EtcdServer, root_password: str = "rootpw") -> None:
    """v2 auth with the default guest role left as etcd creates it (full read/write)."""
    status, body = server.http("PUT", "/v2/auth/users/root", {"user": "root", "password": root_password})
    if status not in (200, 201):
        raise RuntimeError(f"v2 user add: {status} {body!r}")
    status, body = server.http("PUT", "/v2/auth/enable")
    if status != 200:
        raise RuntimeError(f"v2 auth enable: {status} {body!r}")
