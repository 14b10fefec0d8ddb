"""Pure parsers for what etcd discloses. No I/O here: bytes in, facts out.

Version formats by era (etcd source, `version` handlers):
  0.4        text      "etcd v0.4.6"
  2.0        JSON      {"releaseVersion": "2.0.13", "internalVersion": "2"}
  2.1 - 3.5  JSON      {"etcdserver": "3.4.23", "etcdcluster": "3.4.0"}
  3.6+       JSON      {"etcdserver": "3.6.0", "etcdcluster": "3.6.0", "storage": "3.6.0"}
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass
from typing import Any

from etcdsec.model import Member

_SEMVER = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)(?:[-+][0-9A-Za-z.+-]*)?$")
_V04 = re.compile(rb"^etcd v?(\d+\.\d+\.\d+[0-9A-Za-z.+-]*)\s*$")
# Flags whose values are secrets or credentials: listed by name only.
_SENSITIVE_FLAG = re.compile(r"pass|token|secret|priv-key|credential", re.I)


@dataclass(frozen=True)
class VersionInfo:
    server: str
    cluster: str | None = None
    storage: str | None = None
    era: str = "2.1+"


def semver(text: str | None) -> tuple[int, int, int] | None:
    if not isinstance(text, str):
        return None
    m = _SEMVER.match(text.strip())
    return (int(m.group(1)), int(m.group(2)), int(m.group(3))) if m else None


def json_body(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):  # a hostile body may nest 500k deep
        return None


def parse_version(body: bytes) -> VersionInfo | None:
    """The etcd version from a `/version` body, or None when it is not one etcd would send."""
    m = _V04.match(body.strip())
    if m and semver(m.group(1).decode()):
        return VersionInfo(server=m.group(1).decode(), era="0.4")
    doc = json_body(body)
    if not isinstance(doc, dict):
        return None
    if "etcdserver" in doc:
        server, cluster = doc.get("etcdserver"), doc.get("etcdcluster")
        if not semver(server) or not (cluster in (None, "not_decided") or semver(cluster)):
            return None
        allowed = {"etcdserver", "etcdcluster", "storage"}
        if set(doc) - allowed:
            return None
        storage = doc.get("storage")
        return VersionInfo(str(server).lstrip("v"), cluster if semver(cluster) else None,
                           storage if semver(storage) else None, "3.6+" if "storage" in doc else "2.1+")
    if "releaseVersion" in doc and semver(doc.get("releaseVersion")):
        return VersionInfo(str(doc["releaseVersion"]).lstrip("v"), None, None, "2.0")
    return None


def v3_prefixes_for(version: str | None) -> list[str]:
    """gRPC-gateway prefixes to try, most likely first (3.0-3.2 /v3alpha, 3.3 /v3beta, 3.4+ /v3)."""
    v = semver(version)
    if v is None or v[0] >= 4:
        return ["/v3", "/v3beta", "/v3alpha"]
    if v[0] < 3:
        return []
    if v[1] <= 2:
        return ["/v3alpha"]
    if v[1] == 3:
        return ["/v3beta", "/v3alpha"]
    return ["/v3", "/v3beta"]


def uint_str(value: Any) -> str | None:
    """etcd ids: the gateway sends uint64 as decimal strings, v2 as hex. Normalise to hex."""
    if value is None:
        return None
    if isinstance(value, int):
        return format(value, "x")
    text = str(value)
    return format(int(text), "x") if text.isdigit() else text


def _urls(value: Any) -> list[str]:
    return [str(u) for u in value] if isinstance(value, list) else []


def parse_members(doc: Any) -> list[Member] | None:
    """Members from `/v2/members` ({"members": [...]}), peer `/members` ([...]) or the v3 member list."""
    items = doc.get("members") if isinstance(doc, dict) else doc
    if not isinstance(items, list):
        return None
    members = []
    for item in items:
        if not isinstance(item, dict):
            return None
        ident = item.get("ID", item.get("id"))
        peer = item.get("peerURLs")
        if ident is None or not isinstance(peer, list):
            return None
        members.append(Member(name=item.get("name") or None, id=uint_str(ident),
                              peer_urls=_urls(peer), client_urls=_urls(item.get("clientURLs"))))
    return members


def uint64(value: Any) -> int | None:
    """A uint64 as the gateway sends it (a decimal string; gRPC via json_format: the same), else None."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    text = str(value)
    if not (text.isascii() and text.isdigit()) or len(text) > 20:
        return None
    number = int(text)
    return number if number < 1 << 64 else None


# Every v3 reply etcd sends carries this header; a fresh cluster is already at revision 1, term >= 1.
_V3_HEADER_FIELDS = ("cluster_id", "member_id", "revision", "raft_term")


def v3_header(doc: Any) -> dict[str, Any] | None:
    """The ResponseHeader of a v3 reply (cluster_id, member_id, revision, raft_term, all uint64), or
    None: a body without all four is not etcd's answer, whatever else it says."""
    if not isinstance(doc, dict):
        return None
    header = doc.get("header")
    if not isinstance(header, dict) or any(uint64(header.get(f)) is None for f in _V3_HEADER_FIELDS):
        return None
    return header if uint64(header["cluster_id"]) and uint64(header["member_id"]) else None


def range_count(doc: Any) -> int | None:
    """The key count of a count_only / keys_only RangeResponse, or None when the body is not one."""
    if v3_header(doc) is None:
        return None
    assert isinstance(doc, dict)
    if set(doc) - {"header", "kvs", "more", "count"} or not isinstance(doc.get("kvs", []), list):
        return None
    if not isinstance(doc.get("more", False), bool):
        return None
    return uint64(doc.get("count", "0"))


def auth_status(doc: Any) -> bool | None:
    """`enabled` from an AuthStatusResponse (false is omitted by the gateway), or None when not one."""
    if v3_header(doc) is None or set(doc) - {"header", "enabled", "authRevision"}:
        return None
    enabled = doc.get("enabled", False)
    return enabled if isinstance(enabled, bool) else None


# etcd prints ids with types.ID.String(), strconv.FormatUint(id, 16): lower-case hex, no zero padding
# (etcd 3.4 here answered "13360e293c9b961", 15 digits), never zero.
_CLUSTER_ID = re.compile(r"[0-9a-f]{1,16}")


def cluster_id(value: str | None) -> str | None:
    """An X-Etcd-Cluster-Id header value, when it is one etcd could send."""
    if value is None or not _CLUSTER_ID.fullmatch(value) or int(value, 16) == 0:
        return None
    return value


def peer_member_list(doc: Any) -> bool:
    """The peer port's `GET /members`: a non-empty array, each member with a non-zero uint64 id (a JSON
    number from etcd 3.4/3.5, hex text from older ones) and at least one peer URL. `[]` is what a
    catch-all JSON service says."""
    def member_id(value: Any) -> bool:
        if isinstance(value, int) and not isinstance(value, bool):
            return 0 < value < 1 << 64
        return isinstance(value, str) and cluster_id(value) is not None

    return isinstance(doc, list) and bool(doc) and all(
        isinstance(m, dict) and member_id(m.get("id"))
        and isinstance(m.get("peerURLs"), list) and bool(m["peerURLs"])
        and all(isinstance(u, str) for u in m["peerURLs"]) for m in doc)


def v2_key_headers(headers: dict[str, str]) -> bool:
    """The headers etcd's v2 keys API puts on a successful read (HEAD or GET)."""
    return (cluster_id(headers.get("x-etcd-cluster-id")) is not None
            and all(uint64(headers.get(h)) is not None for h in ("x-etcd-index", "x-raft-index", "x-raft-term")))


def v2_error(doc: Any) -> tuple[int, str] | None:
    """(errorCode, cause) from a v2 error body, e.g. (100, '/missing') for a key that is not there."""
    if not isinstance(doc, dict) or set(doc) - {"errorCode", "message", "cause", "index"}:
        return None
    code, message, index = doc.get("errorCode"), doc.get("message"), doc.get("index")
    if isinstance(code, bool) or not isinstance(code, int) or not isinstance(message, str):
        return None
    if isinstance(index, bool) or not isinstance(index, int) or index < 0:
        return None
    cause = doc.get("cause", "")
    return (code, cause) if isinstance(cause, str) else None


def v3_error(doc: Any) -> tuple[int, str] | None:
    """(gRPC code, message) from a gateway error body, e.g. (3, 'etcdserver: user name is empty')."""
    if isinstance(doc, dict) and isinstance(doc.get("code"), int) and ("error" in doc or "message" in doc):
        return doc["code"], str(doc.get("message") or doc.get("error") or "")
    return None


def is_auth_error(err: tuple[int, str] | None) -> bool:
    if err is None:
        return False
    code, message = err
    msg = message.lower()
    return code in (3, 7, 16) and ("user name is empty" in msg or "invalid auth token" in msg
                                    or "permission denied" in msg or "authentication failed" in msg)


def is_rejected_login(err: tuple[int, str] | None) -> bool:
    """Authenticate refused: etcd's ErrAuthFailed ('authentication failed, invalid user ID or password')."""
    return err is not None and err[0] == 3 and "authentication failed" in err[1].lower()


_GO_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNIT = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def go_duration_seconds(text: Any) -> float | None:
    """'1h2m3.5s' -> 3723.5 (Go's time.Duration.String())."""
    if not isinstance(text, str) or not text:
        return None
    parts = _GO_DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text.lstrip("-"):
        return None
    return sum(float(n) * _UNIT[u] for n, u in parts)


def parse_time(text: Any) -> dt.datetime | None:
    """RFC 3339 with Go's nanoseconds ('2026-11-27T03:41:02.123456789Z')."""
    if not isinstance(text, str):
        return None
    m = re.match(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)$", text)
    if not m:
        return None
    frac = (m.group(2) or ".0")[:7]
    tz = "+00:00" if m.group(3) == "Z" else m.group(3)
    try:
        return dt.datetime.fromisoformat(m.group(1) + frac + tz)
    except ValueError:
        return None


@dataclass
class StatsSelf:
    name: str | None
    id: str | None
    state: str | None
    start_time: dt.datetime | None
    leader: str | None
    leader_uptime_s: float | None


def parse_stats_self(doc: Any) -> StatsSelf | None:
    if not isinstance(doc, dict) or "id" not in doc or "state" not in doc:
        return None
    leader = doc.get("leaderInfo") if isinstance(doc.get("leaderInfo"), dict) else {}
    return StatsSelf(doc.get("name"), uint_str(doc.get("id")), doc.get("state"),
                     parse_time(doc.get("startTime")), uint_str(leader.get("leader")),
                     go_duration_seconds(leader.get("uptime")))


def cmdline_flags(doc: Any) -> list[str] | None:
    """Flags from expvar `/debug/vars` "cmdline"; values of credential-like flags are withheld."""
    if not isinstance(doc, dict) or not isinstance(doc.get("cmdline"), list):
        return None
    flags = []
    for arg in doc["cmdline"][1:]:
        arg = str(arg)
        if not arg.startswith("-"):
            continue
        name, sep, _value = arg.partition("=")
        flags.append(f"{name}=<withheld>" if sep and _SENSITIVE_FLAG.search(name) else arg)
    return flags


@dataclass
class MetricsFacts:
    is_etcd: bool
    version: str | None
    start_time: dt.datetime | None
    db_size: int | None


_METRIC = re.compile(rb'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)', re.M)


def parse_metrics(body: bytes) -> MetricsFacts:
    """Prometheus text from `/metrics`: an etcd one names etcd_server_* families."""
    version = start = db = None
    etcd = False
    for m in _METRIC.finditer(body):
        name = m.group(1)
        if name.startswith(b"etcd_server_"):
            etcd = True
        if name == b"etcd_server_version" and m.group(2):
            vm = re.search(rb'server_version="([^"]+)"', m.group(2))
            version = vm.group(1).decode() if vm else None
        elif name == b"process_start_time_seconds":
            try:
                start = dt.datetime.fromtimestamp(float(m.group(3)), dt.UTC)
            except (ValueError, OverflowError):
                pass
        elif name in (b"etcd_mvcc_db_total_size_in_bytes", b"etcd_debugging_mvcc_db_total_size_in_bytes"):
            try:
                db = int(float(m.group(3)))
            except ValueError:
                pass
    return MetricsFacts(etcd, version, start, db)


def top_prefix(key: bytes, depth: int = 1) -> bytes:
    """'/registry/pods/ns/x' -> '/registry/' (depth 1) or '/registry/pods/' (depth 2)."""
    start = 1 if key.startswith(b"/") else 0
    pos = start
    for _ in range(depth):
        nxt = key.find(b"/", pos)
        if nxt < 0:
            return key
        pos = nxt + 1
    return key[:pos]


def prefix_end(prefix: bytes) -> bytes:
    """The range_end that covers every key starting with prefix (etcd's GetPrefixRangeEnd)."""
    end = bytearray(prefix)
    for i in range(len(end) - 1, -1, -1):
        if end[i] < 0xFF:
            end[i] += 1
            return bytes(end[: i + 1])
    return b"\x00"
