"""Where etcd and kube-apiserver configuration lives: host trees, loose files and systemd units.

Each `add_*` function finds configuration and hands it to a `Collector`, which records every file as a
`Source` (anything that could not be read is recorded as such, so the report never silently drops a
file) and builds the instances; k3s and kubeadm layouts are read by their own modules.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import yaml

from etcdsec.audit import k3s, kubeadm, systemd
from etcdsec.audit.collector import MAX_FILE_BYTES, Collector, path_key, read_regular_file
from etcdsec.audit.envfile import looks_like_env_file, parse_env_file
from etcdsec.audit.manifests import pod_commands
from etcdsec.audit.model import Origin, real_path, resolve_under
from etcdsec.audit.shellcmd import find_invocation
from etcdsec.audit.yamllines import UnsafeYAMLError, load_all, yaml_problem

# Env files that a stock unit loads: (path under the root, extra env the stock unit sets, args variable).
STOCK_ENV_FILES = (
    ("etc/default/etcd", "Debian/Ubuntu etcd-server unit", {"ETCD_DATA_DIR": "/var/lib/etcd/default"},
     "DAEMON_ARGS"),
    ("etc/etcd.env", "kubespray etcd.service", {}, None),
    ("etc/etcd/etcd.conf", "RPM etcd.service", {}, None),
    ("etc/sysconfig/etcd", "RPM etcd.service", {}, None),
)
# etcd YAML config files at well-known places, and what runs them.
STOCK_CONFIG_FILES = (
    ("etc/etcd/etcd.conf.yml", "etcd --config-file"),
    ("etc/etcd/etcd.conf.yaml", "etcd --config-file"),
    ("etc/etcd/etcd.yml", "etcd --config-file"),
    ("etc/etcd/etcd.yaml", "etcd --config-file"),
    ("etc/etcd/etcd.conf", "etcd --config-file"),  # only when it is YAML rather than KEY=value
    ("var/snap/etcd/common/etcd.conf.yml", "snap etcd"),
    ("var/lib/rancher/k3s/server/db/etcd/config", "k3s embedded etcd"),
    ("var/lib/rancher/rke2/server/db/etcd/config", "RKE2 etcd"),
)
MANIFEST_DIRS = ("etc/kubernetes/manifests", "var/lib/rancher/rke2/agent/pod-manifests")
# Keys that mark a YAML mapping as an etcd config file.
_ETCD_CONFIG_KEYS = {"name", "data-dir", "listen-client-urls", "listen-peer-urls", "advertise-client-urls",
                     "initial-cluster", "client-transport-security", "peer-transport-security"}
MAX_FILES_PER_DIRECTORY = 5000  # a bound on walking an arbitrary directory of loose files


def is_tree(directory: Path) -> bool:
    """A directory that holds a host's filesystem layout (`etc/...`, `var/lib/...`)."""
    return (directory / "etc").is_dir() or (directory / "var" / "lib").is_dir()


# --- systemd units ----------------------------------------------------------------------------------
def add_unit(collector: Collector, root: Path, unit: systemd.Unit) -> None:
    if unit.exec_start is None:
        return
    env: list[tuple[str, str, Origin]] = [
        (key, loc.value, Origin(collector.show(loc.path), loc.line)) for key, loc in unit.environment]
    for name, optional, _where in unit.environment_files:
        path = real_path(root, name)
        collector.claim(path)
        text = collector.read_text(path, "environment file", optional=optional)
        if text is not None:  # EnvironmentFile= values override Environment= ones
            env += [(e.key, e.value, Origin(collector.show(path), e.line)) for e in parse_env_file(text)]
    values = {key: value for key, value, _ in env}
    where_set = {key: origin for key, _, origin in env}
    expanded = systemd.exec_words(unit.exec_start.value, values)
    words = [w for w, _ in expanded]
    here = Origin(collector.show(unit.exec_start.path), unit.exec_start.line)
    label_unit = f"systemd {unit.name}"
    for program in ("etcd", "kube-apiserver"):
        args = _program_args(words, program)
        if args is None:
            continue
        # Words that came from a $VARIABLE point at the line that set it (e.g. DAEMON_ARGS=).
        origins = [where_set.get(var, here) if var else here for _, var in expanded[len(words) - len(args):]]
        if len(origins) != len(args):
            origins = [here] * len(args)
        located = list(zip(args, origins, strict=True))
        if program == "etcd":
            collector.add_etcd(f"etcd ({label_unit})", here, root, located, env)
        else:
            collector.add_apiserver(f"kube-apiserver ({label_unit})", here, root, located)
        return


def add_unit_files(collector: Collector, root: Path, name: str, files: list[Path]) -> None:
    unit = systemd.Unit(name)
    for path in files:
        text = collector.read_text(path, "systemd unit")
        if text is not None:
            systemd.apply_unit_file(unit, path, text)
    add_unit(collector, root, unit)


# --- trees and loose files --------------------------------------------------------------------------
def add_tree(collector: Collector, root: Path) -> None:
    """Audit a host tree (`/` or a copy of one) at the places etcd configuration lives."""
    seen_units: set[Path] = set()
    for name in systemd.service_names(root):
        files = systemd.unit_files(root, name)
        # An alias (etcd2.service -> etcd.service, from Alias=) is the same unit: audit it once.
        main = path_key(files[0]) if files else None
        if main in seen_units:
            continue
        if any(_mentions_program(p) for p in files):
            if main is not None:
                seen_units.add(main)
            add_unit_files(collector, root, name, files)
    for directory in MANIFEST_DIRS:
        folder = root / directory
        if folder.is_dir():
            for path in sorted(folder.iterdir()):
                if path.suffix in (".yaml", ".yml", ".json", ".manifest") and _candidate(path):
                    add_manifest(collector, path, root)
    for rel, runner, extra_env, args_var in STOCK_ENV_FILES:
        path = resolve_under(root, rel)
        if _candidate(path) and not collector.claimed(path):
            text = collector.read_text(path, "environment file")
            if text is not None and not (rel == "etc/etcd/etcd.conf" and _is_yaml_mapping(text)):
                # Lines that are not KEY=value are skipped, as systemd's EnvironmentFile= does.
                add_env_file(collector, path, root, text, runner, extra_env, args_var)
    for rel, runner in STOCK_CONFIG_FILES:
        path = resolve_under(root, rel)
        if _candidate(path) and not collector.claimed(path):
            add_config_file(collector, path, root, runner)
    if (root / k3s.EMBEDDED_ETCD_CONFIG).is_file():
        k3s.add_k3s_apiserver(collector, root)


def add_env_file(collector: Collector, path: Path, root: Path, text: str, runner: str,
                 extra_env: dict[str, str] | None = None, args_var: str | None = "DAEMON_ARGS") -> None:
    """An env file with no unit in sight: audit it as the stock unit that loads it would run etcd."""
    collector.claim(path)
    shown = collector.show(path)
    assumed = Origin(process=f"{runner} default (assumed)")
    env = [(k, v, assumed) for k, v in (extra_env or {}).items()]
    entries = parse_env_file(text)
    env += [(e.key, e.value, Origin(shown, e.line)) for e in entries]
    args: list[tuple[str, Origin]] = []
    for e in entries:
        if args_var and e.key == args_var:
            args = [(w, Origin(shown, e.line)) for w in e.value.split()]
    collector.add_etcd(f"etcd ({runner}, {shown})", Origin(shown), root, args, env)


def add_config_file(collector: Collector, path: Path, root: Path, runner: str) -> None:
    host = "/" + str(path.relative_to(root)) if path.is_relative_to(root) else str(path)
    shown = collector.show(path)
    collector.add_etcd(f"etcd ({runner}, {shown})", Origin(shown), root,
                  [(f"--config-file={host}", Origin(process=f"{runner} (assumed)"))], [])


def add_manifest(collector: Collector, path: Path, root: Path) -> None:
    text = collector.read_text(path, "static pod manifest")
    if text is None:
        return
    try:
        docs = load_all(text)
    except yaml.YAMLError as exc:
        collector.unparsable(path, yaml_problem(exc))
        return
    for doc in docs:
        for found in pod_commands(doc):
            collector.add_container(found, path, root)


def add_file(collector: Collector, path: Path, root: Path) -> None:
    """A single file named on the command line: recognise what it is by name and content."""
    if path.suffix == ".service" or (path.suffix == ".conf" and path.parent.name.endswith(".service.d")):
        name = path.name if path.suffix == ".service" else path.parent.name[: -len(".d")]
        add_unit_files(collector, root, name, [path])
        return
    text = collector.read_text(path, "file")
    if text is None:
        return
    source = collector.source(path)
    try:
        docs = load_all(text)
    except UnsafeYAMLError as exc:  # YAML that etcd and the kubelet refuse too: say so, read nothing
        collector.unparsable(path, yaml_problem(exc))
        return
    except yaml.YAMLError:
        docs = []  # not YAML: maybe an env file
    pods = [found for doc in docs for found in pod_commands(doc)]
    if any(isinstance(d, dict) and d.get("kind") == "ClusterConfiguration" for d in docs):
        if source:
            source.kind = "kubeadm config"
        kubeadm.add_cluster_configuration(collector, docs, path, root)
    elif pods:
        if source:
            source.kind = "static pod manifest"
        for found in pods:
            collector.add_container(found, path, root)
    elif any(isinstance(d, dict) and d.get("kind") == "EncryptionConfiguration" for d in docs):
        if source:
            source.kind = "encryption provider config"
        collector.encryption_files.append(path)
    elif docs and isinstance(docs[0], dict) and _ETCD_CONFIG_KEYS & set(map(str, docs[0])):
        if source:
            source.kind = "etcd config file"
        collector.add_etcd(f"etcd (config file {collector.show(path)})", Origin(collector.show(path)), root,
                      [(f"--config-file={path}", Origin(process="named on the command line"))], [],
                      config_real=path)
    elif looks_like_env_file(text):
        if source:
            source.kind = "environment file"
        add_env_file(collector, path, root, text, "etcd environment file")
    elif source:
        source.status, source.detail = "unrecognised", "not an etcd/kube-apiserver configuration"


def add_path(collector: Collector, path: Path, root: Path | None) -> None:
    """A PATH argument: a host tree, a directory of loose files, or one file."""
    if path.is_dir() and root is not None and path.resolve() in (root.resolve(), (root / "etc").resolve()):
        add_tree(collector, root)
    elif path.is_dir():
        if root is None and path.resolve().name == "etc" and path.resolve() != Path("/etc"):
            add_tree(collector, path.resolve().parent)
        elif root is None and path.resolve() == Path("/etc"):
            add_tree(collector, Path("/"))
        elif is_tree(path):
            add_tree(collector, root or path)
        else:
            files = _walk_files(path, MAX_FILES_PER_DIRECTORY)
            for file in files:
                if not collector.source(file) and not collector.claimed(file):
                    add_file(collector, file, root or Path("/"))
    elif path.exists() or path.is_symlink():
        add_file(collector, path, root or Path("/"))
    else:
        collector.read_text(path, "file")  # recorded as missing


def is_symlink_loop(path: Path) -> bool:
    try:
        os.stat(path)
    except OSError as exc:
        return exc.errno == errno.ELOOP
    return False


def _candidate(path: Path) -> bool:
    """Anything but a directory: a FIFO, device or symlink loop is read too, and reported, not skipped."""
    return (path.exists() and not path.is_dir()) or is_symlink_loop(path)


def _walk_files(top: Path, limit: int) -> list[Path]:
    """Up to `limit` regular files under `top`, sorted; symlinked directories are not followed."""
    found: list[Path] = []
    for directory, subdirs, names in os.walk(top):
        subdirs.sort()
        found += [Path(directory) / n for n in sorted(names) if _candidate(Path(directory) / n)]
        if len(found) >= limit:
            break
    return found[:limit]


def _is_yaml_mapping(text: str) -> bool:
    try:
        docs = load_all(text)
    except UnsafeYAMLError:
        return True  # YAML, and hostile: the config-file path reports it
    except yaml.YAMLError:
        return False
    return bool(docs) and isinstance(docs[0], dict)


def _mentions_program(path: Path) -> bool:
    try:
        text = read_regular_file(path, MAX_FILE_BYTES).decode("utf-8", errors="replace")
    except OSError:
        return path.name.startswith(("etcd", "kube-apiserver"))
    return "etcd" in text or "kube-apiserver" in text


def _program_args(words: list[str], program: str) -> list[str] | None:
    if not words:
        return None
    if words[0].rsplit("/", 1)[-1] == program:
        return words[1:]
    if words[0].rsplit("/", 1)[-1] in ("sh", "bash") and "-c" in words:
        script = words[words.index("-c") + 1] if words.index("-c") + 1 < len(words) else ""
        return find_invocation(script, program)
    return None
