"""k3s runs kube-apiserver inside its own process: rebuild the flags k3s gives it.

From k3s `pkg/daemons/control/server.go`: with embedded etcd the API server gets
`--etcd-servers=https://127.0.0.1:2379`, the etcd client certificate and CA under
`server/tls/etcd/`, `--client-ca-file=server/tls/client-ca.crt`, and
`--encryption-provider-config=server/cred/encryption-config.json` only when `secrets-encryption` is
on. `kube-apiserver-arg` entries (`key=value`) override these. Settings come from
`/etc/rancher/k3s/config.yaml`, its `config.yaml.d/*.yaml` drop-ins, then `k3s server` flags in the unit.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from etcdsec.audit import systemd
from etcdsec.audit.collector import Collector
from etcdsec.audit.etcdflags import is_true
from etcdsec.audit.model import ApiServerInstance, Origin, Setting
from etcdsec.audit.yamllines import line_of, load_all, yaml_problem

DATA_DIR = "/var/lib/rancher/k3s/server"
EMBEDDED_ETCD_CONFIG = "var/lib/rancher/k3s/server/db/etcd/config"


def _options(collector: Collector, root: Path) -> dict[str, list[tuple[str, Origin]]]:
    """k3s server options by name: every value with where it was set (lists keep every entry)."""
    found: dict[str, list[tuple[str, Origin]]] = {}
    files = [root / "etc/rancher/k3s/config.yaml"]
    dropins = root / "etc/rancher/k3s/config.yaml.d"
    if dropins.is_dir():
        files += sorted(dropins.glob("*.yaml"))
    for path in files:
        if not path.is_file():
            continue
        text = collector.read_text(path, "k3s config file")
        try:
            docs = load_all(text or "")
        except yaml.YAMLError as exc:
            collector.unparsable(path, yaml_problem(exc))
            continue
        doc = docs[0] if docs and isinstance(docs[0], dict) else {}
        shown = collector.show(path)
        for key, value in doc.items():
            name, append = str(key).rstrip("+"), str(key).endswith("+")
            values = value if isinstance(value, list) else [value]
            entries = [(_text(v), Origin(shown, line_of(value, i) or line_of(doc, key)))
                       for i, v in enumerate(values)]
            found[name] = [*found.get(name, []), *entries] if append else entries
    for name in systemd.service_names(root):
        if not name.startswith("k3s"):
            continue
        unit = systemd.Unit(name)
        for path in systemd.unit_files(root, name):
            systemd.apply_unit_file(unit, path, collector.read_text(path, "systemd unit") or "")
        if unit.exec_start is None:
            continue
        words = [w for w, _ in systemd.exec_words(unit.exec_start.value, {})]
        if "server" not in words:
            continue
        here = Origin(collector.show(unit.exec_start.path), unit.exec_start.line)
        args = words[words.index("server") + 1:]
        i = 0
        while i < len(args):
            flag = args[i].lstrip("-")
            i += 1
            name, sep, value = flag.partition("=")
            if not sep:
                if i < len(args) and not args[i].startswith("-"):
                    value, i = args[i], i + 1
                else:
                    value = "true"
            found.setdefault(name, [])
            found[name] = [*found[name], (value, here)] if name.endswith("-arg") else [(value, here)]
    return found


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def add_k3s_apiserver(collector: Collector, root: Path) -> None:
    """The kube-apiserver of a k3s server that uses embedded etcd, as k3s would start it."""
    options = _options(collector, root)
    built_in = Origin(process="k3s built-in kube-apiserver flag")
    flags: dict[str, Setting] = {
        name: Setting(name, value, built_in, "flag") for name, value in (
            ("etcd-servers", "https://127.0.0.1:2379"),
            ("etcd-cafile", f"{DATA_DIR}/tls/etcd/server-ca.crt"),
            ("etcd-certfile", f"{DATA_DIR}/tls/etcd/client.crt"),
            ("etcd-keyfile", f"{DATA_DIR}/tls/etcd/client.key"),
            ("client-ca-file", f"{DATA_DIR}/tls/client-ca.crt"),
        )}
    encrypt = options.get("secrets-encryption", [])
    if encrypt and is_true(encrypt[-1][0]):
        path = f"{DATA_DIR}/cred/encryption-config.json"
        flags["encryption-provider-config"] = Setting(
            "encryption-provider-config", path, encrypt[-1][1], "flag",
            f"secrets-encryption: {encrypt[-1][0]} (--encryption-provider-config={path})")
    for value, origin in options.get("kube-apiserver-arg", []):
        name, _, arg = value.lstrip("-").partition("=")
        flags[name] = Setting(name, arg, origin, "flag", f"kube-apiserver-arg: {value}")
    collector.apiservers.append(ApiServerInstance("kube-apiserver (k3s embedded)", Origin(collector.show(
        root / EMBEDDED_ETCD_CONFIG)), root, flags))
