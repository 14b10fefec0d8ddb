"""Kubernetes static pod manifests: the etcd and kube-apiserver containers, their args, env and mounts."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from etcdsec.audit.shellcmd import find_invocation
from etcdsec.audit.yamllines import line_of


@dataclass
class ContainerCommand:
    program: str  # "etcd" or "kube-apiserver"
    container: str
    args: list[tuple[str, int | None]]  # each word with the manifest line it came from
    env: list[tuple[str, str, int | None]]  # (NAME, value, line) for literal `value:` entries
    mounts: list[tuple[str, str]] = field(default_factory=list)  # (container path, host path)
    line: int | None = None  # the container's `name:` line


def _is_program(word: str, program: str) -> bool:
    return str(word).rsplit("/", 1)[-1] == program


def _command_words(container: dict[str, Any], program: str) -> list[tuple[str, int | None]] | None:
    command = container.get("command") or []
    args = container.get("args") or []
    if not isinstance(command, list) or not isinstance(args, list):
        return None
    words = [(str(w), line_of(command, i)) for i, w in enumerate(command)]
    words += [(str(w), line_of(args, i)) for i, w in enumerate(args)]
    if not words:
        return None
    if _is_program(words[0][0], program):
        return words[1:]
    # `sh -c "<script>"`: read the script as the shell would.
    if _is_program(words[0][0], "sh") or _is_program(words[0][0], "bash"):
        for word, line in words[1:]:
            if word.startswith("-"):
                continue
            found = find_invocation(word, program)
            if found is not None:
                return [(w, line) for w in found]
    return None


def _mounts(pod_spec: dict[str, Any], container: dict[str, Any]) -> list[tuple[str, str]]:
    volumes = {}
    for volume in pod_spec.get("volumes") or []:
        if isinstance(volume, dict) and isinstance(volume.get("hostPath"), dict):
            volumes[volume.get("name")] = str(volume["hostPath"].get("path", ""))
    out = []
    for mount in container.get("volumeMounts") or []:
        if isinstance(mount, dict) and mount.get("name") in volumes:
            inside = str(mount.get("mountPath", "")).rstrip("/") or "/"
            out.append((inside, volumes[mount["name"]].rstrip("/")))
    return out


def pod_commands(doc: Any, programs: tuple[str, ...] = ("etcd", "kube-apiserver")) -> list[ContainerCommand]:
    """The etcd / kube-apiserver containers of a Pod document (empty for anything else)."""
    if not isinstance(doc, dict) or doc.get("kind") != "Pod" or not isinstance(doc.get("spec"), dict):
        return []
    spec = doc["spec"]
    found: list[ContainerCommand] = []
    for container in spec.get("containers") or []:
        if not isinstance(container, dict):
            continue
        for program in programs:
            words = _command_words(container, program)
            if words is None:
                continue
            env_list = container.get("env") or []
            env = [(str(e["name"]), str(e["value"]), line_of(env_list, i))
                   for i, e in enumerate(env_list)
                   if isinstance(e, dict) and "name" in e and "value" in e]
            found.append(ContainerCommand(program, str(container.get("name", "?")), words, env,
                                          _mounts(spec, container), line_of(container, "name")))
            break
    return found
