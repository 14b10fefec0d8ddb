"""What an audit has read and what it describes: sources (read, missing, unreadable) and instances.

The `Collector` reads files (bounded: regular files only, MAX_FILE_BYTES at most) and builds etcd and
kube-apiserver instances from their argv, environment and config file. Where to look is decided by
`sources` (trees, loose files, systemd units), `k3s`, `kubeadm` and `procfs`, which all feed one
collector; it knows none of them.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import yaml

from etcdsec.audit import etcdflags
from etcdsec.audit.manifests import ContainerCommand
from etcdsec.audit.model import ApiServerInstance, EtcdInstance, Origin, Setting, Source, real_path
from etcdsec.audit.yamllines import load_all, yaml_problem

MAX_FILE_BYTES = 4 << 20  # configuration files are small; a huge file is reported, not read


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
        return self._by_path.get(path_key(path))

    def read_bytes(self, path: Path, kind: str, optional: bool = False) -> bytes | None:
        """The file's bytes, recording it as a source; None (recorded, with the reason) when unreadable.

        Only regular files up to MAX_FILE_BYTES are read: a FIFO, a device or a symlink loop planted
        where a configuration file should be is reported, never waited on or read without end.
        """
        key = path_key(path)
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
        key = path_key(path)
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
        src = self._by_path.get(path_key(path))
        if src is not None:
            src.status, src.detail = "unparsable", detail

    def claim(self, path: Path) -> None:
        self._claimed.add(path_key(path))

    def claimed(self, path: Path) -> bool:
        return path_key(path) in self._claimed

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
        self.apiservers.append(ApiServerInstance(label, origin, root, apiserver_flags(args),
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


def path_key(path: Path) -> Path:
    """A file's identity: its resolved path (the absolute one when it cannot be resolved)."""
    try:
        return path.resolve()
    except (OSError, RuntimeError):  # RuntimeError: a symlink loop (Python 3.11's pathlib)
        return path.absolute()


def apiserver_flags(args: list[tuple[str, Origin]]) -> dict[str, Setting]:
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
