"""One endpoint, probed: the sequence of read-only requests and what each answer proves.

All decisions live in `fingerprint` (parsers) and `verdict` (findings); this module only asks.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import secrets
import socket
import ssl
from dataclasses import dataclass, field

from etcdsec.model import Access, Apis, Auth, Data, Leaks, ProbeResult
from etcdsec.net import tls as tlsinfo
from etcdsec.net.http1 import HTTPConnection, HTTPError, Response
from etcdsec.probe import fingerprint as fp
from etcdsec.probe.options import ProbeOptions
from etcdsec.probe.session import ConnectError, EndpointSession, Limits, open_connection
from etcdsec.probe.v3api import GatewayApi, GrpcApi, V3Api
from etcdsec.targets import Target

JSON = [("Content-Type", "application/json")]
_GO_TLS_TO_HTTP = b"Client sent an HTTP request to an HTTPS server"


class ProbeStop(Exception):
    """Nothing more can be learnt; the message becomes `error`."""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _json(resp: Response | None) -> object:
    return fp.json_body(resp.body) if resp is not None and resp.status == 200 else None


async def resolve(host: str, timeout: float) -> str:
    try:
        socket.inet_pton(socket.AF_INET6 if ":" in host else socket.AF_INET, host)
        return host
    except OSError:
        pass
    try:
        async with asyncio.timeout(timeout):
            infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (TimeoutError, OSError) as exc:
        raise ProbeStop(f"cannot resolve {host}: {getattr(exc, 'strerror', None) or 'timeout'}") from None
    return str(infos[0][4][0])


@dataclass
class Evidence:
    """What the answers showed, before it is judged."""

    version: fp.VersionInfo | None = None
    cluster_id_header: bool = False  # an X-Etcd-Cluster-Id etcd could send (hex, at most 16 digits)
    v2_answer: bool = False  # a v2 body or key headers only etcd's v2 API sends
    v3_header: bool = False
    health_body: bool = False
    peer_members: bool = False
    metrics_etcd: bool = False
    host_rejected: bool = False
    notes: list[str] = field(default_factory=list)


class Prober:
    def __init__(self, target: Target, options: ProbeOptions, result: ProbeResult) -> None:
        self.t, self.o, self.r = target, options, result
        self.limits = Limits(options.connect_timeout, options.request_timeout, options.max_body,
                             options.max_connections)
        self.ev = Evidence()
        self.session: EndpointSession | None = None
        self.v3: V3Api | None = None
        self.token: str | None = None
        self.user_can_write: bool | None = None
        self.v2_write_checked: bool | None = None
        self.basic: list[tuple[str, str]] = []
        # A key that is not there: etcd answers a GET of it with a v2 error body naming it, no value.
        self.missing_key = "/etcdsec-probe-" + secrets.token_hex(6)
        if options.user is not None:
            cred = base64.b64encode(f"{options.user}:{options.password or ''}".encode()).decode()
            self.basic = [("Authorization", f"Basic {cred}")]

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()
        if self.v3 is not None:
            await self.v3.close()

    # -- connection and scheme -----------------------------------------------------------------
    def _tls_context(self) -> ssl.SSLContext:
        return tlsinfo.client_context(self.o.cacert, self.o.cert, self.o.key)

    async def connect(self) -> Response:
        """Open the first connection, find the scheme, and fetch /version on it."""
        r, t = self.r, self.t
        schemes = [self.o.scheme or t.scheme] if (self.o.scheme or t.scheme) else ["http", "https"]
        host_header = t.netloc
        sni = None if _is_ip(t.host) else t.host
        failures: list[str] = []
        for scheme in schemes:
            ctx = self._tls_context() if scheme == "https" else None
            try:
                conn = await open_connection(r.ip or t.host, t.port, host_header, ctx, sni, self.limits)
            except ConnectError as exc:
                if "TLS handshake" in str(exc):
                    r.reachable = True  # TCP was accepted; only TLS failed
                if exc.refused:
                    r.reachable = False
                    raise ProbeStop("connection refused") from None
                if exc.tls_alert is not None and tlsinfo.is_client_cert_alert(exc.tls_alert):
                    r.tls = await tlsinfo.grab_certificate_tls12(r.ip or t.host, t.port, sni,
                                                                  self.o.connect_timeout)
                    return self._cert_required(scheme, None)
                if not r.reachable and scheme == schemes[0] and "handshake" not in str(exc):
                    raise ProbeStop(str(exc)) from None  # the TCP connect itself failed
                failures.append(f"{scheme}: {exc}")
                continue
            r.reachable = True
            r.scheme = scheme
            if ctx is not None:
                r.tls = tlsinfo.describe(conn.ssl_object)
            try:
                resp = await conn.request("GET", "/version", timeout=self.limits.request_timeout,
                                          max_body=64 * 1024)
            except HTTPError as exc:
                await conn.close()
                cause = exc.__cause__
                if ctx is not None and cause is not None and tlsinfo.is_client_cert_alert(cause):
                    return self._cert_required(scheme, conn)
                if "within" in str(exc):  # silent or dripping: trying TLS would only wait again
                    raise ProbeStop(str(exc)) from None
                failures.append(f"{scheme}: {exc}")
                continue
            if scheme == "http" and resp.status == 400 and _GO_TLS_TO_HTTP in resp.body:
                await conn.close()
                failures.append("http: refused, the port speaks TLS")
                continue
            r.scheme = scheme
            self.session = EndpointSession(r.ip or t.host, t.port, host_header, ctx, sni, self.limits,
                                           first=conn if conn.reusable else None)
            if resp.truncated:
                self.ev.notes.append("GET /version: body cut at 64 KiB")
            return resp
        raise ProbeStop("; ".join(failures) or "no answer")

    def _cert_required(self, scheme: str, conn: HTTPConnection | None) -> Response:
        self.r.reachable = True
        self.r.scheme = scheme
        self.r.client_cert_required = True
        if conn is not None and self.r.tls is None:
            self.r.tls = tlsinfo.describe(conn.ssl_object)
        raise ProbeStop("TLS client certificate required" if not self.o.cert else
                        "TLS client certificate rejected")

    # -- the probe -------------------------------------------------------------------------------
    async def run(self) -> None:
        version_resp = await self.connect()
        assert self.session is not None
        s, r = self.session, self.r
        if version_resp.status == 421:
            self.ev.host_rejected = b"Host header was unrecognized" in version_resp.body
        elif version_resp.status == 200:
            self.ev.version = fp.parse_version(version_resp.body)
            if self.ev.version is None and b"etcd" in version_resp.body[:4096]:
                self.ev.notes.append("GET /version names etcd but is not etcd's answer")
        if self.ev.version:
            r.version = self.ev.version.server
            r.cluster_version = self.ev.version.cluster
            r.storage_version = self.ev.version.storage

        async with asyncio.TaskGroup() as tg:
            t_members = tg.create_task(s.try_request("GET", "/members"))
            t_health = tg.create_task(s.try_request("GET", "/health", max_body=4096))
            t_v2members = tg.create_task(s.try_request("GET", "/v2/members", headers=self.basic))
            t_v2auth = tg.create_task(s.try_request("GET", "/v2/auth/enable", max_body=4096))
            t_v2stats = tg.create_task(s.try_request("GET", "/v2/stats/self", headers=self.basic))
            t_v2head = tg.create_task(s.try_request("HEAD", "/v2/keys/", headers=self.basic))
            t_v2missing = tg.create_task(s.try_request("GET", "/v2/keys" + self.missing_key, headers=self.basic,
                                                       max_body=4096))
            t_vars = tg.create_task(s.try_request("GET", "/debug/vars", max_body=512 * 1024))
            t_metrics = tg.create_task(s.try_request("GET", "/metrics", max_body=512 * 1024))
            t_pprof = tg.create_task(s.try_request("GET", "/debug/pprof/", max_body=16 * 1024))
            t_v3 = tg.create_task(self.v3_phase())

        self.read_members(t_members.result(), t_v2members.result())
        self.read_health(t_health.result())
        self.read_v2(t_v2auth.result(), t_v2head.result(), t_v2missing.result(), t_v2stats.result())
        self.read_leaks(t_vars.result(), t_metrics.result(), t_pprof.result())
        t_v3.result()
        if r.apis.v2 and r.auth.v2_enabled and r.auth.v2_guest_open and self.o.check_write:
            await self.check_v2_write()
        self.decide_write()
        if self.o.collect_data and (r.access.read_v2 or r.access.read_v3):
            await self.data_phase()
        self.decide_identity()

    # -- readers of each answer ----------------------------------------------------------------
    def read_members(self, peer: Response | None, v2: Response | None) -> None:
        r = self.r
        members = fp.parse_members(_json(peer))
        if members and fp.peer_member_list(_json(peer)):
            self.ev.peer_members = True
            r.role = "peer"
            r.leaks.peer_api = True
            r.members = members
            return
        r.role = "client"
        v2doc = _json(v2)
        v2members = fp.parse_members(v2doc) if isinstance(v2doc, dict) else None
        if v2members is not None:
            r.apis.v2 = True
            if not r.members:
                r.members = v2members
        self.read_cluster_id(v2)

    def read_health(self, resp: Response | None) -> None:
        doc = fp.json_body(resp.body) if resp is not None else None
        if isinstance(doc, dict) and doc.get("health") in ("true", "false") and set(doc) <= {"health", "reason"}:
            self.ev.health_body = True
            self.r.leaks.health = True

    def read_cluster_id(self, resp: Response | None) -> bool:
        """True when resp carries a cluster id etcd could send; a malformed one is noted, not believed."""
        value = resp.headers.get("x-etcd-cluster-id") if resp is not None else None
        if value is None:
            return False
        if fp.cluster_id(value) is None:
            note = "X-Etcd-Cluster-Id is not an etcd cluster id (lower-case hex, at most 16 digits)"
            if note not in self.ev.notes:
                self.ev.notes.append(note)
            return False
        self.ev.cluster_id_header = True
        self.r.cluster_id = self.r.cluster_id or value
        return True

    def v2_readable(self, head: Response | None, missing: Response | None) -> bool | None:
        """Read access through v2, proven by etcd's own answers: HEAD /v2/keys/ 200 with the key headers
        and a GET of a missing key answered with error 100 naming that key; 401 with error 110 says no."""
        if head is None or missing is None or not self.read_cluster_id(head):
            return None
        err = fp.v2_error(fp.json_body(missing.body))
        if missing.status == 401 and err is not None and err[0] == 110:
            return False
        if head.status in (401, 403):
            return False
        if head.status != 200:
            return None
        if fp.v2_key_headers(head.headers) and missing.status == 404 and err == (100, self.missing_key):
            return True
        self.ev.notes.append(f"HEAD /v2/keys/ answered 200, but not as etcd does (key headers, and GET "
                             f"/v2/keys{self.missing_key} answering error 100): v2 read access not proven")
        return None

    def read_v2(self, auth: Response | None, head: Response | None, missing: Response | None,
                stats: Response | None) -> None:
        r = self.r
        auth_doc = _json(auth)
        if isinstance(auth_doc, dict) and set(auth_doc) == {"enabled"} and isinstance(auth_doc["enabled"], bool) \
                and self.read_cluster_id(auth):
            self.ev.v2_answer = True
            r.apis.v2 = True
            r.auth.v2_enabled = auth_doc["enabled"]
        notes = len(self.ev.notes)
        readable = self.v2_readable(head, missing)
        claimed = len(self.ev.notes) > notes  # v2 answered as etcd would not: neither yes nor no
        if readable is not None:
            self.ev.v2_answer = True
            r.apis.v2 = True
            r.access.read_v2 = readable
            if r.auth.v2_enabled:
                # With auth on, an anonymous request is served as the guest role.
                r.auth.v2_guest_open = readable if not self.basic else None
        elif r.apis.v2 is None and self.ev.version is not None and r.role == "client" and not claimed:
            r.apis.v2 = False
            r.access.read_v2 = False
        st = fp.parse_stats_self(_json(stats))
        if st:
            r.member_id = r.member_id or st.id
            r.leader = r.leader or st.leader
            if st.start_time:
                self._set_start(st.start_time)

    def read_leaks(self, dvars: Response | None, metrics: Response | None, pprof: Response | None) -> None:
        r = self.r
        flags = fp.cmdline_flags(fp.json_body(dvars.body) if dvars is not None and dvars.status == 200 else None)
        if flags is not None:
            r.leaks.debug_vars = True
            r.leaks.cmdline_flags = flags
        if metrics is not None and metrics.status == 200:
            facts = fp.parse_metrics(metrics.body)
            if facts.is_etcd:
                self.ev.metrics_etcd = True
                r.leaks.metrics = True
                if facts.start_time:
                    self._set_start(facts.start_time)
                if r.db_size is None and facts.db_size is not None:
                    r.db_size = facts.db_size
        if pprof is not None and pprof.status == 200 and b"/debug/pprof/" in pprof.body:
            r.leaks.pprof = True

    def _set_start(self, start: dt.datetime) -> None:
        self.r.start_time = start.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
        self.r.uptime_s = max(0, int((dt.datetime.now(dt.UTC) - start).total_seconds()))

    # -- v3 (gRPC gateway) -----------------------------------------------------------------------
    async def v3_post(self, path: str, doc: dict[str, object], token: bool = False) -> Response | None:
        if self.v3 is None:
            return None
        return await self.v3.call(path, doc, self.token if token else None)

    async def find_v3(self, version: str | None) -> dict[str, object] | None:
        """The gateway prefix this version serves; failing that, gRPC itself. Returns the status."""
        assert self.session is not None
        for prefix in fp.v3_prefixes_for(version):
            gateway = GatewayApi(self.session, prefix)
            status = _json(await gateway.call("/maintenance/status", {}))
            if fp.v3_header(status) is not None:
                self.v3 = gateway
                self.r.apis.v3_prefix = prefix
                return status  # type: ignore[return-value]
            if isinstance(status, dict) and "header" in status:
                self.ev.notes.append(f"POST {prefix}/maintenance/status: its header is not etcd's "
                                     "(cluster_id, member_id, revision, raft_term)")
        # gRPC is asked only of what already looks like etcd 3.x: a parsed /version, or the 421 of a
        # host whitelist (gRPC ignores it). Anything else would just cost a timeout.
        if not (self.ev.host_rejected or (fp.semver(version) or (0, 0, 0)) >= (3, 0, 0)):
            return None
        t = self.t
        tls = tlsinfo.client_context(self.o.cacert, self.o.cert, self.o.key, alpn=("h2",)) \
            if self.r.scheme == "https" else None
        grpc = GrpcApi(self.r.ip or t.host, t.port, t.netloc, tls, None if _is_ip(t.host) else t.host,
                       self.o.request_timeout)
        status = _json(await grpc.call("/maintenance/status", {}))
        if fp.v3_header(status) is not None:
            self.v3 = grpc
            self.r.apis.grpc = True
            return status  # type: ignore[return-value]
        await grpc.close()
        return None

    async def v3_phase(self) -> None:
        r = self.r
        status = await self.find_v3(self.ev.version.server if self.ev.version else None)
        if status is None:
            return
        self.ev.v3_header = True
        header = fp.v3_header(status) or {}
        r.cluster_id = fp.uint_str(header.get("cluster_id"))
        r.member_id = fp.uint_str(header.get("member_id"))
        r.leader = fp.uint_str(status.get("leader")) or r.leader
        if str(status.get("dbSize", "")).isdigit():
            r.db_size = int(status["dbSize"])
        if not r.version and fp.semver(status.get("version")):
            r.version = str(status["version"])

        everything = {"key": _b64(b"\x00"), "range_end": _b64(b"\x00"), "count_only": True}
        if self.o.user is not None:
            auth = await self.v3_post("/auth/authenticate", {"name": self.o.user, "password": self.o.password or ""})
            doc = _json(auth)
            if isinstance(doc, dict) and fp.v3_header(doc) is not None and isinstance(doc.get("token"), str):
                self.token = doc["token"]
                r.credentials_rejected = False
            elif fp.is_rejected_login(fp.v3_error(fp.json_body(auth.body) if auth is not None else None)):
                r.credentials_rejected = True
        async with asyncio.TaskGroup() as tg:
            t_members = tg.create_task(self.v3_post("/cluster/member/list", {}))
            t_authstatus = tg.create_task(self.v3_post("/auth/status", {}))
            t_anon = tg.create_task(self.v3_post("/kv/range", everything))
            t_mine = tg.create_task(self.v3_post("/kv/range", everything, token=True)) if self.token else None

        members = fp.parse_members(_json(t_members.result()))
        if members:
            r.members = members
        anon = t_anon.result()
        anon_doc = fp.json_body(anon.body) if anon is not None else None
        st = t_authstatus.result()
        st_doc = fp.json_body(st.body) if st is not None else None
        enabled = fp.auth_status(st_doc) if st is not None and st.status == 200 else None
        if enabled is not None:
            r.auth.v3_enabled = enabled
        elif fp.is_auth_error(fp.v3_error(st_doc)) or fp.is_auth_error(fp.v3_error(anon_doc)):
            r.auth.v3_enabled = True
        elif anon is not None and anon.status == 200 and fp.range_count(anon_doc) is not None:
            r.auth.v3_enabled = False

        mine = t_mine.result() if t_mine is not None else anon
        mine_doc = fp.json_body(mine.body) if mine is not None else None
        count = fp.range_count(mine_doc) if mine is not None and mine.status == 200 else None
        if count is not None:
            r.access.read_v3 = True
            r.data.key_count = count
        elif mine is not None and mine.status == 200:
            self.ev.notes.append(f"{self.v3.label if self.v3 else 'v3'}/kv/range answered 200 with a body that "
                                 "is not etcd's RangeResponse: v3 read access not proven")
        elif fp.is_auth_error(fp.v3_error(mine_doc)):
            r.access.read_v3 = False
        if r.auth.v3_enabled and self.token:
            self.user_can_write = await self.v3_user_can_write()

    def decide_write(self) -> None:
        """Write access, decided without writing: auth off on a served API means root for everyone."""
        r = self.r
        # Auth off is believed only where a key API answered as etcd does (read proven).
        v3_open = self.v3 is not None and r.auth.v3_enabled is False and r.access.read_v3 is True
        v2_open = bool(r.apis.v2) and r.auth.v2_enabled is False and r.access.read_v2 is True
        if v3_open or v2_open or self.user_can_write or self.v2_write_checked:
            r.access.write = True
            return
        no_v3_api = (fp.semver(r.version) or (3, 0, 0)) < (3, 0, 0)  # 2.x and older serve none
        v3_closed = r.auth.v3_enabled is True or (self.v3 is None and no_v3_api)
        v2_closed = r.apis.v2 is False or (r.auth.v2_enabled is True and r.auth.v2_guest_open is False)
        if self.v2_write_checked is False:
            v2_closed = True
        if r.role == "client" and v3_closed and v2_closed and not (self.token and self.user_can_write is None):
            r.access.write = False

    async def v3_user_can_write(self) -> bool | None:
        """From the user's own roles (etcd lets a user read its own user and roles): root, or any
        WRITE/READWRITE permission, means it can write somewhere."""
        doc = _json(await self.v3_post("/auth/user/get", {"name": self.o.user}, token=True))
        if not isinstance(doc, dict) or fp.v3_header(doc) is None:
            return None
        roles = [str(role) for role in doc.get("roles") or []][:16]
        if "root" in roles:
            return True
        answers = [_json(await self.v3_post("/auth/role/get", {"role": role}, token=True)) for role in roles]
        if any(not isinstance(a, dict) or fp.v3_header(a) is None for a in answers):
            return None
        return any(p.get("permType") in ("WRITE", "READWRITE") for a in answers for p in a.get("perm") or []
                   if isinstance(p, dict))

    # -- data: names and counts only ---------------------------------------------------------------
    async def count(self, start: bytes, end: bytes) -> int | None:
        resp = await self.v3_post("/kv/range", {"key": _b64(start), "range_end": _b64(end), "count_only": True},
                                  token=True)
        return fp.range_count(_json(resp))

    async def first_key(self, start: bytes, end: bytes) -> bytes | None:
        resp = await self.v3_post("/kv/range", {"key": _b64(start), "range_end": _b64(end), "limit": 1,
                                                "keys_only": True}, token=True)
        doc = _json(resp)
        if fp.range_count(doc) is None:
            return None
        kvs = doc.get("kvs") or []  # type: ignore[union-attr]
        try:
            return base64.b64decode(kvs[0]["key"], validate=True) if kvs else None
        except (KeyError, ValueError, TypeError):
            return None

    async def data_phase(self) -> None:
        r = self.r
        if r.access.read_v3 and self.v3 is not None:
            budget = [self.o.max_prefix_queries]
            async with asyncio.TaskGroup() as tg:
                t_k8s = tg.create_task(self.count(b"/registry/", fp.prefix_end(b"/registry/")))
                t_sec = tg.create_task(self.count(b"/registry/secrets/", fp.prefix_end(b"/registry/secrets/")))
            k8s, secrets_n = t_k8s.result(), t_sec.result()
            r.data.kubernetes = bool(k8s) if k8s is not None else None
            r.data.secret_keys = secrets_n
            prefixes = await self.walk_prefixes(b"\x00", b"\x00", 1, budget)
            if k8s:
                prefixes.update(await self.walk_prefixes(b"/registry/", fp.prefix_end(b"/registry/"), 2, budget))
            r.data.top_prefixes = {p.decode("utf-8", "replace"): n for p, n in sorted(prefixes.items())}
        elif r.access.read_v2:
            head = await self.session.try_request("HEAD", "/v2/keys/registry", headers=self.basic) \
                if self.session else None
            if _v2_head(head) is not None:
                r.data.kubernetes = _v2_head(head)
                if r.data.kubernetes:
                    sec = await self.session.try_request("HEAD", "/v2/keys/registry/secrets",  # type: ignore[union-attr]
                                                         headers=self.basic)
                    if _v2_head(sec) is False:
                        r.data.secret_keys = 0

    async def walk_prefixes(self, start: bytes, end: bytes, depth: int, budget: list[int]) -> dict[bytes, int]:
        """Exact key counts per prefix: first key -> its prefix -> count_only -> skip past it."""
        found: dict[bytes, int] = {}
        while budget[0] > 0:
            budget[0] -= 1
            key = await self.first_key(start, end)
            if key is None:
                break
            prefix = fp.top_prefix(key, depth)
            n = await self.count(prefix, fp.prefix_end(prefix))
            if n is None:
                break
            found[prefix] = n
            start = fp.prefix_end(prefix)
            if end != b"\x00" and start >= end:
                break
        return found

    async def check_v2_write(self) -> None:
        """Opt-in: a PUT that cannot succeed (prevExist on a random missing key) shows write access."""
        assert self.session
        key = "/etcdsec-write-check-" + secrets.token_hex(8)
        resp = await self.session.try_request(
            "PUT", f"/v2/keys{key}?prevExist=true", b"value=etcdsec",
            [("Content-Type", "application/x-www-form-urlencoded"), *self.basic])
        if resp is None:
            return
        doc = fp.json_body(resp.body)
        if resp.status == 404 and isinstance(doc, dict) and doc.get("errorCode") == 100:
            self.v2_write_checked = True
        elif resp.status in (401, 403):
            self.v2_write_checked = False

    # -- is it etcd? -------------------------------------------------------------------------------
    def decide_identity(self) -> None:
        ev, r = self.ev, self.r
        corroborated = ev.v3_header or ev.cluster_id_header or ev.peer_members or ev.metrics_etcd or ev.health_body
        if ev.host_rejected:
            r.is_etcd = True
            if self.v3 is None:  # gRPC ignores the whitelist; only when it did not answer is this a stop
                r.error = r.error or "Host header rejected (--host-whitelist): only names it lists are answered"
        elif (ev.version is not None and corroborated) or ev.v3_header or (ev.cluster_id_header and ev.v2_answer):
            r.is_etcd = True
        else:
            r.is_etcd = False
            r.role = None
            _clear_etcd_facts(r)
        if ev.notes and not r.error:  # what was claimed and not proven, etcd or not
            r.error = "; ".join(ev.notes)


def _clear_etcd_facts(r: ProbeResult) -> None:
    """A non-etcd service may echo anything: keep none of it as etcd facts."""
    r.version = r.cluster_version = r.storage_version = None
    r.cluster_id = r.member_id = r.leader = r.start_time = None
    r.uptime_s = r.db_size = None
    r.members = []
    r.apis, r.auth, r.access, r.data, r.leaks = Apis(), Auth(), Access(), Data(), Leaks()


def _v2_head(resp: Response | None) -> bool | None:
    """A HEAD of a v2 key: True (there: 200 with etcd's key headers), False (404 from etcd), else None."""
    if resp is None or fp.cluster_id(resp.headers.get("x-etcd-cluster-id")) is None:
        return None
    if resp.status == 200 and fp.v2_key_headers(resp.headers):
        return True
    return False if resp.status == 404 else None


def _is_ip(host: str) -> bool:
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, host)
            return True
        except OSError:
            continue
    return False
