"""Read a host's etcd and kube-apiserver configuration from a tree, single files or live processes.

Everything read is recorded as a `Source`; anything that could not be read is recorded as such, so the
report never silently drops a file.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import yaml

from etcdsec.audit import etcdflags, k3s, kubeadm, systemd
from etcdsec.audit.envfile import looks_like_env_file, parse_env_file
from etcdsec.audit.manifests import ContainerCommand, pod_commands
from etcdsec.audit.model import (
    ApiServerInstance,
    EtcdInstance,
    Origin,
    Setting,
    Source,
    real_path,
    resolve_under,
)
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
MAX_FILE_BYTES = 4 << 20  # configuration files are small; a huge file is reported, not read


def is_tree(directory: Path) -> bool:
    """A directory that holds a host's filesystem layout (`etc/...`, `var/lib/...`)."""
    return (directory / "etc").is_dir() or (directory / "var" / "lib").is_dir()


class Collector:
    """Accumulates sources read and the etcd / kube-apiserver instances they describe."""

    def __init__(self) -> None:
        self.sources: list[Source] = []
        self.etcd: list[EtcdInstance] = []
        self.apiservers: list[ApiServerInstance] = []
        self.encryption_files: list[Path] = []  # EncryptionConfiguration files given directly
        self._by_path: dict[Path, Source] = {}
        self._claimed: set[Path] = set()
        self._cwd = Path.cwd()

    # --- reading ---------------------------------------------------------------------------
    def show(self, path: Path) -> str:
        try:
            return str(path.relative_to(self._cwd))
        except ValueError:
            return str(path)

    def source(self, path: Path) -> Source | None:
        return self._by_path.get(_key(path))

    def read_bytes(self, path: Path, kind: str, optional: bool = False) -> bytes | None:
        """The file's bytes, recording it as a source; None (recorded, with the reason) when unreadable.

        Only regular files up to MAX_FILE_BYTES are read: a FIFO, a device or a symlink loop planted
        where a configuration file should be is reported, never waited on or read without end.
        """
        key = _key(path)
        known = self._by_path.get(key)
        try:
            data = read_regular_file(path, MAX_FILE_BYTES)
        except FileNotFoundError:
            status, detail, data = ("absent-optional" if optional else "missing"), "no such file", None
        except IsADirectoryError:
            status, detail, data = "unreadable", "is a directory", None
        except OSError as exc:
            status, detail, data = "unreadable", exc.strerror or str(exc), None
        else:
            status, detail = "read", ""
        if known is None:
            known = Source(self.show(path), kind, status, detail, real=path)
            self._by_path[key] = known
            self.sources.append(known)
        return data

    def read_text(self, path: Path, kind: str, optional: bool = False) -> str | None:
        """`read_bytes` as UTF-8 (undecodable bytes replaced)."""
        data = self.read_bytes(path, kind, optional)
        return None if data is None else data.decode("utf-8", errors="replace")

    def look_at(self, path: Path, kind: str, optional: bool = False) -> bool:
        """Record a file or directory examined by its metadata only (keys: contents never read)."""
        key = _key(path)
        if key not in self._by_path:
            if path.exists():
                status, detail = "read", "metadata only"
            else:
                status, detail = ("absent-optional" if optional else "missing"), "no such file"
            source = Source(self.show(path), kind, status, detail, real=path)
            self._by_path[key] = source
            self.sources.append(source)
        return self._by_path[key].status == "read"

    def unparsable(self, path: Path, detail: str) -> None:
        src = self._by_path.get(_key(path))
        if src is not None:
            src.status, src.detail = "unparsable", detail

    def claim(self, path: Path) -> None:
        self._claimed.add(_key(path))

    def claimed(self, path: Path) -> bool:
        return _key(path) in self._claimed

    # --- building instances ------------------------------------------------------------------
    def add_etcd(self, label: str, origin: Origin, root: Path, args: list[tuple[str, Origin]],
                 env: list[tuple[str, str, Origin]], mounts: list[tuple[str, str]] | None = None,
                 pid: int | None = None, config_real: Path | None = None) -> EtcdInstance:
        """Resolve one etcd's effective settings from its argv, environment and --config-file."""
        mounts = mounts or []
        parsed = etcdflags.parse_argv(args)
        env_settings = etcdflags.settings_from_env(env)
        choice = etcdflags.config_file_choice(parsed.settings, env_settings)
        config = None
        incomplete = None
        if choice is not None:
            # A config file named on the command line is read where it is, not under --root.
            path = config_real or real_path(root, choice.value, mounts)
            self.claim(path)
            text = self.read_text(path, "etcd config file")
            if text is None:
                incomplete = f"its config file {choice.value} ({choice.origin}) could not be read"
            else:
                try:
                    docs = load_all(text)
                except yaml.YAMLError as exc:
                    self.unparsable(path, yaml_problem(exc))
                    incomplete = f"its config file {choice.value} could not be parsed: {yaml_problem(exc)}"
                else:
                    config = etcdflags.settings_from_config(docs[0] if docs else {}, self.show(path))
        res = etcdflags.resolve(parsed.settings, env_settings, config)
        instance = EtcdInstance(label, origin, root, res.settings,
                                config_file=choice.origin if res.config_file else None,
                                ignored=res.ignored, refuses_to_start=parsed.errors + res.errors,
                                mounts=mounts, incomplete=incomplete, live_pid=pid)
        self.etcd.append(instance)
        return instance

    def add_apiserver(self, label: str, origin: Origin, root: Path, args: list[tuple[str, Origin]],
                      mounts: list[tuple[str, str]] | None = None, pid: int | None = None) -> None:
        self.apiservers.append(ApiServerInstance(label, origin, root, _apiserver_flags(args),
                                                 mounts or [], pid))

    def add_container(self, found: ContainerCommand, path: Path, root: Path) -> None:
        shown = self.show(path)
        args = [(word, Origin(shown, line)) for word, line in found.args]
        origin = Origin(shown, found.line)
        label = f"{found.program} (static pod {shown}, container {found.container})"
        if found.program == "etcd":
            env = [(name, value, Origin(shown, line)) for name, value, line in found.env]
            self.add_etcd(label, origin, root, args, env, found.mounts)
        else:
            self.add_apiserver(label, origin, root, args, found.mounts)

    # --- systemd ------------------------------------------------------------------------------
    def add_unit(self, root: Path, unit: systemd.Unit) -> None:
        if unit.exec_start is None:
            return
        env: list[tuple[str, str, Origin]] = [
            (key, loc.value, Origin(self.show(loc.path), loc.line)) for key, loc in unit.environment]
        for name, optional, _where in unit.environment_files:
            path = real_path(root, name)
            self.claim(path)
            text = self.read_text(path, "environment file", optional=optional)
            if text is not None:  # EnvironmentFile= values override Environment= ones
                env += [(e.key, e.value, Origin(self.show(path), e.line)) for e in parse_env_file(text)]
        values = {key: value for key, value, _ in env}
        where_set = {key: origin for key, _, origin in env}
        expanded = systemd.exec_words(unit.exec_start.value, values)
        words = [w for w, _ in expanded]
        here = Origin(self.show(unit.exec_start.path), unit.exec_start.line)
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
                self.add_etcd(f"etcd ({label_unit})", here, root, located, env)
            else:
                self.add_apiserver(f"kube-apiserver ({label_unit})", here, root, located)
            return

    def add_unit_files(self, root: Path, name: str, files: list[Path]) -> None:
        unit = systemd.Unit(name)
        for path in files:
            text = self.read_text(path, "systemd unit")
            if text is not None:
                systemd.apply_unit_file(unit, path, text)
        self.add_unit(root, unit)

    # --- files and trees -----------------------------------------------------------------------
    def add_tree(self, root: Path) -> None:
        """Audit a host tree (`/` or a copy of one) at the places etcd configuration lives."""
        seen_units: set[Path] = set()
        for name in systemd.service_names(root):
            files = systemd.unit_files(root, name)
            # An alias (etcd2.service -> etcd.service, from Alias=) is the same unit: audit it once.
            main = _key(files[0]) if files else None
            if main in seen_units:
                continue
            if any(_mentions_program(p) for p in files):
                if main is not None:
                    seen_units.add(main)
                self.add_unit_files(root, name, files)
        for directory in MANIFEST_DIRS:
            folder = root / directory
            if folder.is_dir():
                for path in sorted(folder.iterdir()):
                    if path.suffix in (".yaml", ".yml", ".json", ".manifest") and _candidate(path):
                        self.add_manifest(path, root)
        for rel, runner, extra_env, args_var in STOCK_ENV_FILES:
            path = resolve_under(root, rel)
            if _candidate(path) and not self.claimed(path):
                text = self.read_text(path, "environment file")
                if text is not None and not (rel == "etc/etcd/etcd.conf" and _is_yaml_mapping(text)):
                    # Lines that are not KEY=value are skipped, as systemd's EnvironmentFile= does.
                    self.add_env_file(path, root, text, runner, extra_env, args_var)
        for rel, runner in STOCK_CONFIG_FILES:
            path = resolve_under(root, rel)
            if _candidate(path) and not self.claimed(path):
                self.add_config_file(path, root, runner)
        if (root / k3s.EMBEDDED_ETCD_CONFIG).is_file():
            k3s.add_k3s_apiserver(self, root)

    def add_env_file(self, path: Path, root: Path, text: str, runner: str,
                     extra_env: dict[str, str] | None = None, args_var: str | None = "DAEMON_ARGS") -> None:
        """An env file with no unit in sight: audit it as the stock unit that loads it would run etcd."""
        self.claim(path)
        shown = self.show(path)
        assumed = Origin(process=f"{runner} default (assumed)")
        env = [(k, v, assumed) for k, v in (extra_env or {}).items()]
        entries = parse_env_file(text)
        env += [(e.key, e.value, Origin(shown, e.line)) for e in entries]
        args: list[tuple[str, Origin]] = []
        for e in entries:
            if args_var and e.key == args_var:
                args = [(w, Origin(shown, e.line)) for w in e.value.split()]
        self.add_etcd(f"etcd ({runner}, {shown})", Origin(shown), root, args, env)

    def add_config_file(self, path: Path, root: Path, runner: str) -> None:
        host = "/" + str(path.relative_to(root)) if path.is_relative_to(root) else str(path)
        shown = self.show(path)
        self.add_etcd(f"etcd ({runner}, {shown})", Origin(shown), root,
                      [(f"--config-file={host}", Origin(process=f"{runner} (assumed)"))], [])

    def add_manifest(self, path: Path, root: Path) -> None:
        text = self.read_text(path, "static pod manifest")
        if text is None:
            return
        try:
            docs = load_all(text)
        except yaml.YAMLError as exc:
            self.unparsable(path, yaml_problem(exc))
            return
        for doc in docs:
            for found in pod_commands(doc):
                self.add_container(found, path, root)

    def add_file(self, path: Path, root: Path) -> None:
        """A single file named on the command line: recognise what it is by name and content."""
        if path.suffix == ".service" or (path.suffix == ".conf" and path.parent.name.endswith(".service.d")):
            name = path.name if path.suffix == ".service" else path.parent.name[: -len(".d")]
            self.add_unit_files(root, name, [path])
            return
        text = self.read_text(path, "file")
        if text is None:
            return
        source = self.source(path)
        try:
            docs = load_all(text)
        except UnsafeYAMLError as exc:  # YAML that etcd and the kubelet refuse too: say so, read nothing
            self.unparsable(path, yaml_problem(exc))
            return
        except yaml.YAMLError:
            docs = []  # not YAML: maybe an env file
        pods = [found for doc in docs for found in pod_commands(doc)]
        if any(isinstance(d, dict) and d.get("kind") == "ClusterConfiguration" for d in docs):
            if source:
                source.kind = "kubeadm config"
            kubeadm.add_cluster_configuration(self, docs, path, root)
        elif pods:
            if source:
                source.kind = "static pod manifest"
            for found in pods:
                self.add_container(found, path, root)
        elif any(isinstance(d, dict) and d.get("kind") == "EncryptionConfiguration" for d in docs):
            if source:
                source.kind = "encryption provider config"
            self.encryption_files.append(path)
        elif docs and isinstance(docs[0], dict) and _ETCD_CONFIG_KEYS & set(map(str, docs[0])):
            if source:
                source.kind = "etcd config file"
            self.add_etcd(f"etcd (config file {self.show(path)})", Origin(self.show(path)), root,
                          [(f"--config-file={path}", Origin(process="named on the command line"))], [],
                          config_real=path)
        elif looks_like_env_file(text):
            if source:
                source.kind = "environment file"
            self.add_env_file(path, root, text, "etcd environment file")
        elif source:
            source.status, source.detail = "unrecognised", "not an etcd/kube-apiserver configuration"

    def add_path(self, path: Path, root: Path | None) -> None:
        """A PATH argument: a host tree, a directory of loose files, or one file."""
        if path.is_dir() and root is not None and path.resolve() in (root.resolve(), (root / "etc").resolve()):
            self.add_tree(root)
        elif path.is_dir():
            if root is None and path.resolve().name == "etc" and path.resolve() != Path("/etc"):
                self.add_tree(path.resolve().parent)
            elif root is None and path.resolve() == Path("/etc"):
                self.add_tree(Path("/"))
            elif is_tree(path):
                self.add_tree(root or path)
            else:
                files = _walk_files(path, MAX_FILES_PER_DIRECTORY)
                for file in files:
                    if not self.source(file) and not self.claimed(file):
                        self.add_file(file, root or Path("/"))
        elif path.exists() or path.is_symlink():
            self.add_file(path, root or Path("/"))
        else:
            self.read_text(path, "file")  # recorded as missing


def read_regular_file(path: Path, limit: int) -> bytes:
    """At most `limit` bytes of a regular file (OSError otherwise, with a reason a person can act on)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)  # a FIFO must not block the open
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise IsADirectoryError(errno.EISDIR, "is a directory")
        if not stat.S_ISREG(info.st_mode):
            raise OSError(errno.EINVAL, f"not a regular file ({_file_type(info.st_mode)})")
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise OSError(errno.EFBIG, f"larger than {limit >> 20} MiB: not a configuration file")
    return data


def _file_type(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "an unknown file type"


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


def _key(path: Path) -> Path:
    try:
        return path.resolve()
    except (OSError, RuntimeError):  # RuntimeError: a symlink loop (Python 3.11's pathlib)
        return path.absolute()


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


def _apiserver_flags(args: list[tuple[str, Origin]]) -> dict[str, Setting]:
    """kube-apiserver flags (pflag syntax): `--flag=value`, `--flag value`, bare `--flag` for booleans."""
    flags: dict[str, Setting] = {}
    i = 0
    while i < len(args):
        word, origin = args[i]
        i += 1
        if not word.startswith("-"):
            continue
        name, sep, value = word.lstrip("-").partition("=")
        if not sep:
            if i < len(args) and not args[i][0].startswith("-"):
                value = args[i][0]
                i += 1
            else:
                value = "true"
        flags[name] = Setting(name, value, origin, "flag")
    return flags
