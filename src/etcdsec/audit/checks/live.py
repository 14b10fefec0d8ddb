"""Checks on what a live endpoint allows an anonymous client (from the prober, via --endpoint)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from etcdsec.audit.checks.base import AuditContext, Hit, client_urls
from etcdsec.audit.model import EtcdInstance


def probe_matches(probe: Any, inst: EtcdInstance) -> bool:
    """A probe result belongs to an instance when its address is one of the instance's client URLs."""
    for url in client_urls(inst):
        if probe.ip and url.host == probe.ip and probe.port and url.text.rstrip("/").endswith(f":{probe.port}"):
            return True
    return False


def check_rbac(ctx: AuditContext) -> Iterator[Hit]:
    for probe in ctx.probes:
        evidence = [f"live endpoint {probe.target}"]
        # Group the runtime view with the configuration it belongs to, when one was audited.
        owner = next((i.label for i in ctx.collector.etcd if probe_matches(probe, i)), probe.target)
        if not probe.reachable:
            yield Hit(
                "medium",
                f"live endpoint {probe.target} not reachable: {probe.error or 'no answer'}",
                evidence,
                owner,
            )
            continue
        if probe.client_cert_required:
            continue  # client-certificate-only access
        if probe.access.read_v3 or probe.access.write:
            what = "read and write" if probe.access.write else "read"
            yield Hit(
                "critical",
                f"anonymous clients can {what} keys over v3 (auth "
                f"{'enabled' if probe.auth.v3_enabled else 'disabled'})",
                evidence,
                owner,
            )
        elif probe.auth.v3_enabled is False:
            yield Hit("high", "v3 auth is disabled and no client certificate is required", evidence, owner)
        if probe.auth.v2_guest_open or probe.access.read_v2:
            yield Hit("high", "the v2 API answers anonymous reads (guest role open)", evidence, owner)
