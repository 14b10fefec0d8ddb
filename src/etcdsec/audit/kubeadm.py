"""A kubeadm ClusterConfiguration, rendered to the etcd and kube-apiserver flags kubeadm would write.

From kubeadm `phases/etcd/local.go` (getEtcdCommand) and `phases/controlplane/manifests.go`: the
defaults below, then `extraArgs` override a default of the same name. v1beta3 writes extraArgs as a
map, v1beta4 as a list of {name, value} where repeats are kept (etcd then takes the last). This lets a
configuration be audited before `kubeadm init` renders it: files it names may not exist yet.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from etcdsec.audit.collector import Collector
from etcdsec.audit.model import Origin
from etcdsec.audit.yamllines import line_of

NODE_IP_PLACEHOLDER = "NODE_IP"  # the advertise address, when the file does not give one


def _extra_args(section: Any, shown: str) -> list[tuple[str, str, Origin]]:
    raw = section.get("extraArgs") if isinstance(section, dict) else None
    out: list[tuple[str, str, Origin]] = []
    if isinstance(raw, dict):  # v1beta3
        out += [(str(k), str(v), Origin(shown, line_of(raw, k))) for k, v in raw.items()]
    elif isinstance(raw, list):  # v1beta4
        out += [(str(item.get("name")), str(item.get("value", "")), Origin(shown, line_of(raw, i)))
                for i, item in enumerate(raw) if isinstance(item, dict) and item.get("name")]
    return out


def _args(defaults: dict[str, str], extra: list[tuple[str, str, Origin]], built_in: Origin) -> list[tuple[str, Origin]]:
    overridden = {name for name, _, _ in extra}
    words = [(f"--{k}={v}", built_in) for k, v in defaults.items() if k not in overridden]
    return words + [(f"--{name}={value}", origin) for name, value, origin in extra]


def add_cluster_configuration(collector: Collector, docs: list[Any], path: Path, root: Path) -> None:
    shown = collector.show(path)
    cluster = next(d for d in docs if isinstance(d, dict) and d.get("kind") == "ClusterConfiguration")
    init = next((d for d in docs if isinstance(d, dict) and d.get("kind") == "InitConfiguration"), {})
    endpoint = init.get("localAPIEndpoint") if isinstance(init, dict) else None
    ip = str(endpoint.get("advertiseAddress")) if isinstance(endpoint, dict) and endpoint.get(
        "advertiseAddress") else NODE_IP_PLACEHOLDER
    pki = str(cluster.get("certificatesDir") or "/etc/kubernetes/pki")
    built_in = Origin(process="kubeadm default")
    etcd = cluster.get("etcd") if isinstance(cluster.get("etcd"), dict) else {}
    local = etcd.get("local") if isinstance(etcd.get("local"), dict) else None
    external = etcd.get("external") if isinstance(etcd.get("external"), dict) else None
    origin = Origin(shown, line_of(cluster, "etcd") or line_of(cluster, "kind"))
    if external is None:
        local = local or {}
        defaults = {
            "advertise-client-urls": f"https://{ip}:2379",
            "cert-file": f"{pki}/etcd/server.crt",
            "client-cert-auth": "true",
            "data-dir": str(local.get("dataDir") or "/var/lib/etcd"),
            "experimental-initial-corrupt-check": "true",
            "experimental-watch-progress-notify-interval": "5s",
            "initial-advertise-peer-urls": f"https://{ip}:2380",
            "key-file": f"{pki}/etcd/server.key",
            "listen-client-urls": f"https://127.0.0.1:2379,https://{ip}:2379",
            "listen-metrics-urls": "http://127.0.0.1:2381",
            "listen-peer-urls": f"https://{ip}:2380",
            "peer-cert-file": f"{pki}/etcd/peer.crt",
            "peer-client-cert-auth": "true",
            "peer-key-file": f"{pki}/etcd/peer.key",
            "peer-trusted-ca-file": f"{pki}/etcd/ca.crt",
            "snapshot-count": "10000",
            "trusted-ca-file": f"{pki}/etcd/ca.crt",
        }
        env = [(str(e.get("name")), str(e.get("value", "")), Origin(shown, line_of(local.get("extraEnvs"), i)))
               for i, e in enumerate(local.get("extraEnvs") or []) if isinstance(e, dict) and e.get("name")]
        instance = collector.add_etcd(f"etcd (kubeadm ClusterConfiguration {shown}, as kubeadm would render it)",
                                      origin, root, _args(defaults, _extra_args(local, shown), built_in), env)
        instance.planned = True
        servers = "https://127.0.0.1:2379"
        etcd_files = {"etcd-cafile": f"{pki}/etcd/ca.crt", "etcd-certfile": f"{pki}/apiserver-etcd-client.crt",
                      "etcd-keyfile": f"{pki}/apiserver-etcd-client.key"}
    else:
        servers = ",".join(str(e) for e in external.get("endpoints") or [])
        etcd_files = {flag: str(external[key]) for flag, key in (
            ("etcd-cafile", "caFile"), ("etcd-certfile", "certFile"), ("etcd-keyfile", "keyFile"))
            if external.get(key)}
    api_defaults = {"client-ca-file": f"{pki}/ca.crt", "etcd-servers": servers, **etcd_files}
    api_section = cluster.get("apiServer") if isinstance(cluster.get("apiServer"), dict) else {}
    collector.add_apiserver(f"kube-apiserver (kubeadm ClusterConfiguration {shown}, as kubeadm would render it)",
                            Origin(shown, line_of(cluster, "apiServer") or line_of(cluster, "kind")), root,
                            _args(api_defaults, _extra_args(api_section, shown), built_in))
    collector.apiservers[-1].planned = True
