"""Move the honeypot's modules into rooms by role and rewrite every reference (dev tool, not shipped).

Re-runnable and idempotent: files still at an old path are `git mv`ed, then every import, every
dotted module string (`etcdsec.honeypot.x`) and every code path (`honeypot/x.py`) under src, tests,
bench, scripts and docs is rewritten to the new place. Running it twice changes nothing. Run from
anywhere inside the repository, then `ruff check --fix src tests bench scripts` sorts the imports.

    python3 scripts/rehouse.py            # apply
    python3 scripts/rehouse.py --dry-run  # list what would change
"""

from __future__ import annotations

import argparse
import ast
import io
import re
import subprocess
import sys
import tokenize
from pathlib import Path

PKG = "etcdsec.honeypot"

# old module (under etcdsec.honeypot) -> new module. A new path never equals an old one, so a
# second run finds nothing to do; v3.gateway (a module) becomes the package v3/gateway/, and any
# dotted name that already starts with a new module path is left alone.
MOVES: dict[str, str] = {
    # core/ (persona, identity, session, limits, honeytokens: already there) gets the bait; context.py,
    # the SensorContext that holds one of each, stays above core/ as house-tidy built it
    "dataset": "core.bait",
    "kubeproto": "core.kubeproto",
    "events_fields": "core.events_fields",
    # wire/: sans-IO, Go-exact bytes in and out
    "request": "wire.request",
    "gohttp": "wire.go_response",
    "goserver": "wire.go_http_rules",
    "fasthead": "wire.fast_head",
    "gojson": "wire.go_json",
    "v3.gojson": "wire.go_json_errors",
    "websocket": "wire.websocket",
    "proxyproto": "wire.proxyproto",
    # serve/: the asyncio shells around the sans-IO parts
    "listener": "serve.listener",
    "cmuxsniff": "serve.cmuxsniff",
    "guard": "serve.guard",
    "shedding": "serve.shedding",
    "http1": "serve.http1",
    "fastconn": "serve.fast_reader",
    "exchange": "serve.exchange",
    "eager": "serve.inline_start",
    "reuseport": "serve.reuseport",
    # endpoints/: the decoy's non-key endpoints (/version, /metrics, /debug/vars, /config/local/log)
    "surface": "endpoints.surface",
    "etcd_metrics": "endpoints.etcd_metrics",
    "debug_vars": "endpoints.debug_vars",
    "go_runtime": "endpoints.go_runtime",
    "config_log": "endpoints.config_log",
    # v2/: the v2 API and its store
    "v2http": "v2.api",
    "v2store": "v2.keystore",
    "v2_metrics": "endpoints.v2_metrics",
    # persist/: the keyspace kept across restarts
    "durable": "persist.keyspace",
    "journal": "persist.journal",
    # the sensor's own Prometheus port, not the decoy's /metrics
    "metrics": "sensor_metrics",
    # v3/gateway/ and v3/grpc/
    "v3.gateway": "v3.gateway.json_gateway",
    "v3.jsonpb": "v3.gateway.jsonpb",
    "v3.jsonrequest": "v3.gateway.jsonrequest",
    "v3.plain": "v3.gateway.plain",
    "v3.grpc_server": "v3.grpc.server",
    "v3.grpc_shell": "serve.grpc_shell",  # an asyncio shell: with the listener and guard it uses
    "v3.handshake": "v3.grpc.handshake",
    "v3.hpack_cache": "v3.grpc.hpack_cache",
    "v3.wire": "v3.grpc.gogo_errors",
    # new on branch grpc-lean (moved when the lead re-runs this after merging it)
    "v3.lean_h2": "v3.grpc.lean_h2",
    "v3.lean_headers": "v3.grpc.lean_headers",
    "v3.grpcgo_h2": "v3.grpc.grpcgo_h2",  # added at the grpc-lean merge (grpc-go's h2 rules out of server.py)
    # new on branch workers-shared (--shared-keyspace): the frames and the v3 client side stay with v3
    # (v3/state and v3/service hold a RemoteKeyspace); the owner's server and the links go to shared/,
    # above v3/; the v2 forwarding (both ends of its frame) goes to v2/
    "keyspace_codec": "v3.keyspace_codec",
    "keyspace_link": "shared.link",
    "v3.owner": "shared.owner",
    "v2_forward": "v2.forward",
}

# each new folder's __init__.py says what the folder is
FOLDERS: dict[str, str] = {
    "core": "What every part of the honeypot shares: persona, identity, session, limits, honeytokens, the bait.",
    "wire": "Sans-IO, Go-exact: request type, Go's HTTP rules, fast recogniser, renderers, WebSocket, PROXY.",
    "serve": "The asyncio shells: listener, guard, the HTTP/1 connection, the life of one request, gRPC bytes.",
    "endpoints": "The decoy's non-key endpoints: /version, /metrics, /debug/vars, /config/local/log, peer /members.",
    "v2": "etcd's v2 HTTP API and the v2 key store behind it.",
    "persist": "The honeypot's keyspace kept across restarts: snapshot plus append-only journal.",
    "v3/gateway": "etcd's v3 JSON gateway (grpc-gateway): request reading, jsonpb rendering, routes.",
    "v3/grpc": "etcd's gRPC API over HTTP/2, sans-IO: handshake, connection, hpack cache, gogo errors.",
    "shared": "--shared-keyspace (experimental): worker 0's keyspace owner and the links the other workers forward on.",
}

OLD = {f"{PKG}.{k}": f"{PKG}.{v}" for k, v in MOVES.items()}
NEW = set(OLD.values())
DOTTED = re.compile(r"\betcdsec\.honeypot(?:\.\w+)+")
# a code path, with or without src/etcdsec/ in front; tests/honeypot/... is not one
PATH = re.compile(r"(?<![\w/.-])((?:src/)?(?:etcdsec/)?honeypot/)([\w/]+)\.py\b")
V3PATH = re.compile(r"(?<![\w/.-])(v3/)(\w+)\.py\b")
TEXT_SUFFIXES = {".py", ".md", ".sh", ".toml", ".cfg", ".ini", ".txt", ".yaml", ".yml"}
ROOTS = ("src", "tests", "bench", "scripts", "docs", "README.md", "pyproject.toml")


def new_module(dotted: str) -> str:
    """The dotted name with its module part moved; unchanged if it already names a new place."""
    parts = dotted.split(".")
    for cut in range(len(parts), 2, -1):
        head = ".".join(parts[:cut])
        if head in NEW:
            return dotted
        if head in OLD:
            return ".".join([OLD[head], *parts[cut:]])
    return dotted


def new_path(rel: str) -> str | None:
    """`v3/gateway` (a path under honeypot/, no .py) -> its new path, or None."""
    moved = OLD.get(f"{PKG}.{rel.replace('/', '.')}")
    return moved.removeprefix(f"{PKG}.").replace(".", "/") if moved else None


def rewrite_from_package(text: str) -> str:
    """`from etcdsec.honeypot[.v3] import mod, ...` naming moved modules: import from their new
    package, and rename the module's local name where the file uses it."""
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return text
    lines = text.splitlines(keepends=True)
    renames: dict[str, str] = {}
    edits: list[tuple[int, int, str]] = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.ImportFrom) or node.level or not node.module:
            continue
        if node.module.startswith(f"{PKG}.") and node.module in NEW:
            continue
        if not node.module.startswith(PKG):
            continue
        groups: dict[str, list[str]] = {}
        changed = False
        for alias in node.names:
            full = f"{node.module}.{alias.name}"
            target = full if full in NEW else OLD.get(full, full)
            parent, _, name = target.rpartition(".")
            if target != full:
                changed = True
                if alias.asname is None and name != alias.name:
                    renames[alias.name] = name
            local = f" as {alias.asname}" if alias.asname else ""
            groups.setdefault(parent, []).append(f"{name}{local}")
        if not changed:
            continue
        indent = lines[node.lineno - 1][: node.col_offset]
        new = "".join(f"{indent}from {parent} import {', '.join(names)}\n" for parent, names in groups.items())
        edits.append((node.lineno - 1, node.end_lineno or node.lineno, new))
    for start, end, new in sorted(edits, reverse=True):
        lines[start:end] = [new]
    text = "".join(lines)
    return rename_names(text, renames) if renames else text


def rename_names(text: str, renames: dict[str, str]) -> str:
    """Rename a module's local name in code (not in strings or comments, not after a dot)."""
    tokens = list(tokenize.generate_tokens(io.StringIO(text).readline))
    lines = text.splitlines(keepends=True)
    prev = None
    hits: list[tuple[int, int, str, str]] = []
    for tok in tokens:
        if tok.type == tokenize.NAME and tok.string in renames and not (prev and prev.string == "."):
            hits.append((tok.start[0], tok.start[1], tok.string, renames[tok.string]))
        if tok.type not in (tokenize.NL, tokenize.COMMENT):
            prev = tok
    for row, col, old, new in sorted(hits, reverse=True):
        line = lines[row - 1]
        lines[row - 1] = line[:col] + new + line[col + len(old) :]
    return "".join(lines)


IMPORTED = re.compile(r"\s+import\s+\(?\s*(\w+)")


def dotted(m: re.Match[str]) -> str:
    """A dotted name; in `from X import y`, X stays when X.y is already a new module."""
    name = m.group(0)
    imported = IMPORTED.match(m.string, m.end())
    if imported and f"{name}.{imported.group(1)}" in NEW:
        return name
    return new_module(name)


def rewrite_text(text: str, python: bool) -> str:
    if python:
        text = rewrite_from_package(text)
    text = DOTTED.sub(dotted, text)

    def path(m: re.Match[str]) -> str:
        moved = new_path(m.group(2))
        return f"{m.group(1)}{moved}.py" if moved else m.group(0)

    def v3path(m: re.Match[str]) -> str:
        moved = new_path(f"v3/{m.group(2)}")
        return f"{moved}.py" if moved else m.group(0)

    text = PATH.sub(path, text)
    return V3PATH.sub(v3path, text)


def move_files(root: Path, dry: bool) -> list[str]:
    base = root / "src" / "etcdsec" / "honeypot"
    done: list[str] = []
    for folder, doc in FOLDERS.items():
        init = base / folder / "__init__.py"
        if not init.exists():
            done.append(f"create {init.relative_to(root)}")
            if not dry:
                init.parent.mkdir(parents=True, exist_ok=True)
                init.write_text(f'"""{doc}"""\n')
                subprocess.run(["git", "add", str(init)], cwd=root, check=True)
    for old, new in MOVES.items():
        src = base / (old.replace(".", "/") + ".py")
        dst = base / (new.replace(".", "/") + ".py")
        if src.exists() and not dst.exists():
            done.append(f"git mv {src.relative_to(root)} {dst.relative_to(root)}")
            if not dry:
                dst.parent.mkdir(parents=True, exist_ok=True)
                subprocess.run(["git", "mv", str(src), str(dst)], cwd=root, check=True)
    return done


def skipped(path: Path) -> bool:
    """Build leftovers, not sources: bytecode caches and the egg-info's file list."""
    return any(part == "__pycache__" or part.endswith(".egg-info") for part in path.parts)


def text_files(root: Path) -> list[Path]:
    out: list[Path] = []
    for name in ROOTS:
        top = root / name
        paths = [top] if top.is_file() else sorted(top.rglob("*"))
        out += [p for p in paths if p.is_file() and p.suffix in TEXT_SUFFIXES and not skipped(p)]
    here = Path(__file__).resolve()
    return [p for p in out if p.resolve() != here]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true")
    args = parser.parse_args()
    top = subprocess.run(["git", "rev-parse", "--show-toplevel"], capture_output=True, text=True, check=True)
    root = Path(top.stdout.strip())
    changes = move_files(root, args.dry_run)
    for path in text_files(root):
        text = path.read_text(encoding="utf-8")
        new = rewrite_text(text, path.suffix == ".py")
        if new != text:
            changes.append(f"rewrite {path.relative_to(root)}")
            if not args.dry_run:
                path.write_text(new, encoding="utf-8")
    print("\n".join(changes) or "nothing to do")
    return 0


if __name__ == "__main__":
    sys.exit(main())
