"""Checks on files: modes and owners of configs, keys and the data dir; CA identity; unreadable sources."""

from __future__ import annotations

import hashlib
import stat
from collections.abc import Iterator
from pathlib import Path

from cryptography import x509

from etcdsec.audit.checks.base import AuditContext, Hit, quote
from etcdsec.audit.etcdflags import DEFAULTS
from etcdsec.audit.model import EtcdInstance, Setting


def _key_file_names(inst: EtcdInstance) -> list[str]:
    return [n for n in ("key-file", "peer-key-file", "client-key-file", "peer-client-key-file") if inst.get(n)]


def _mode_hits(
    ctx: AuditContext,
    path: Path,
    shown: str,
    limit: int,
    severity: str,
    what: str,
    owners: tuple[str, ...] = ("root",),
    owner_severity: str = "low",
) -> Iterator[Hit]:
    try:
        info = path.stat()
    except OSError:
        return
    mode = stat.S_IMODE(info.st_mode)
    if mode & ~limit & 0o777:
        yield Hit(severity, f"{what} {shown} has mode {mode:03o} (want {limit:03o} or stricter)", [shown], shown)
    if ctx.live_host:
        owner = _owner(info.st_uid)
        if owner not in owners:
            yield Hit(
                owner_severity,
                f"{what} {shown} is owned by {owner} (want {' or '.join(owners)})",
                [shown],
                shown,
            )


def _owner(uid: int) -> str:
    try:
        import pwd

        return pwd.getpwuid(uid).pw_name
    except (KeyError, ImportError):
        return str(uid)


_CONFIG_KINDS = {
    "static pod manifest": 0o600,
    "environment file": 0o600,
    "etcd config file": 0o600,
    "encryption provider config": 0o600,
    "k3s config file": 0o600,
}


def check_file_perms(ctx: AuditContext) -> Iterator[Hit]:
    for source in ctx.collector.sources:
        if source.status == "read" and source.kind in _CONFIG_KINDS and source.real is not None:
            severity = "high" if source.kind == "encryption provider config" else "medium"
            yield from _mode_hits(ctx, source.real, source.path, _CONFIG_KINDS[source.kind], severity, source.kind)
    seen: set[Path] = set()
    key_files: list[tuple[Path, Setting]] = []
    for inst in ctx.collector.etcd:
        if inst.planned:
            continue
        key_files += [(inst.real_path(inst.value(n)), inst.settings[n]) for n in _key_file_names(inst)]
    for api in ctx.collector.apiservers:
        if api.get("etcd-keyfile") and not api.planned:
            key_files.append((api.real_path(api.flags["etcd-keyfile"].value), api.flags["etcd-keyfile"]))
    for path, setting in key_files:
        if path in seen:
            continue
        seen.add(path)
        if not ctx.collector.look_at(path, "private key"):
            continue
        shown = ctx.collector.show(path)
        for hit in _mode_hits(ctx, path, shown, 0o600, "high", "private key"):
            yield Hit(hit.severity, hit.title, [*hit.evidence, f"{setting.origin}: {setting.describe()}"], shown)


def check_data_dir(inst: EtcdInstance, ctx: AuditContext) -> Iterator[Hit]:
    if inst.planned:
        return
    setting = inst.get("data-dir")
    if setting is not None:
        path = inst.real_path(setting.value)
    elif inst.live_pid is not None:
        path = Path(f"/proc/{inst.live_pid}/cwd") / f"{inst.value('name', DEFAULTS['name'])}.etcd"
    else:
        return  # the default is relative to a working directory this audit cannot know
    shown = ctx.collector.show(path)
    # A copied tree often lacks the data directory: then it is listed as absent, not reported.
    if not ctx.collector.look_at(path, "etcd data dir", optional=True):
        return
    for hit in _mode_hits(ctx, path, shown, 0o700, "high", "data directory", owners=("etcd",)):
        note = " (kubeadm and kubespray run etcd as root and leave it root-owned)" if "owned" in hit.title else ""
        yield Hit(hit.severity, hit.title + note, [*hit.evidence, quote(inst, "data-dir")], hit.subject)


def _fingerprints(ctx: AuditContext, path: Path) -> set[str]:
    data = ctx.collector.read_bytes(path, "CA certificate")  # bounded; records why it could not be read
    if data is None:
        return set()
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError:
        ctx.collector.unparsable(path, "no PEM certificate")
        return set()
    return {hashlib.sha256(c.tbs_certificate_bytes).hexdigest() for c in certs}


def check_unique_ca(ctx: AuditContext) -> Iterator[Hit]:
    for api in ctx.collector.apiservers:
        client_ca = api.get("client-ca-file")
        if client_ca is None or api.planned:
            continue
        k8s = _fingerprints(ctx, api.real_path(client_ca.value))
        for inst in ctx.collector.etcd:
            etcd_ca = inst.get("trusted-ca-file")
            if etcd_ca is None or inst.incomplete or inst.planned or inst.root != api.root:
                continue
            if k8s & _fingerprints(ctx, inst.real_path(etcd_ca.value)):
                yield Hit(
                    "high",
                    "etcd trusts the Kubernetes client CA: every certificate that CA signed "
                    "(kubelets, users) is accepted by etcd",
                    [
                        f"{etcd_ca.origin}: {etcd_ca.describe()}",
                        f"{client_ca.origin}: {client_ca.describe()}",
                    ],
                    inst.label,
                )


def check_sources(ctx: AuditContext) -> Iterator[Hit]:
    for source in ctx.collector.sources:
        if source.status in ("unreadable", "unparsable", "missing"):
            yield Hit(
                "medium",
                f"{source.kind} {source.path} is {source.status} ({source.detail}): "
                "the audit of what depends on it is incomplete",
                [source.path],
                source.path,
            )
        elif source.status == "unrecognised":
            yield Hit(
                "info",
                f"{source.path} is not a configuration this audit understands; skipped",
                [source.path],
                source.path,
            )
