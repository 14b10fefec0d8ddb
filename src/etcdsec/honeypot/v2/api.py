"""The v2 HTTP API (`/v2/keys`, `/v2/members`, `/v2/machines`, `/v2/stats/*`, `/v2/auth/*`) on a V2Store."""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
from collections.abc import AsyncIterator

from etcdsec.honeypot.context import SensorContext
from etcdsec.honeypot.endpoints.surface import (
    cluster_id_hex,
    stats_leader_body,
    stats_self_body,
    stats_store_body,
    v2_members_body,
)
from etcdsec.honeypot.v2.keystore import Event, V2Error, V2Store, Watcher, clean_key
from etcdsec.honeypot.wire.go_json import go_json
from etcdsec.honeypot.wire.go_json_errors import decode_error, quote_char
from etcdsec.honeypot.wire.go_response import Response, json_response, method_not_allowed, not_found
from etcdsec.honeypot.wire.request import Request

KEYS_PREFIX = "/v2/keys"
MAX_ADDED_MEMBERS = 8
MAX_AUTH_USERS = 100
FLAGS = ("recursive", "sorted", "wait", "dir", "quorum", "stream", "refresh")  # boolean form fields
KEY_METHODS = "HEAD,GET,PUT,POST,DELETE"  # etcd's allowMethod joins with "," and no space


class V2Api:
    def __init__(self, ctx: SensorContext, store: V2Store) -> None:
        self.ctx = ctx
        self.store = store
        self.auth_users: dict[str, dict[str, object]] = {}
        self.added_members: dict[str, dict[str, object]] = {}
        self.auth_enabled = False
        self._cluster_id = cluster_id_hex(ctx)  # fixed for the deployment: formatted once

    # --- headers --------------------------------------------------------------------------
    def _index_headers(self, with_raft: bool = True) -> list[tuple[str, str]]:
        headers = [("X-Etcd-Cluster-Id", self._cluster_id), ("X-Etcd-Index", str(self.store.index))]
        if with_raft:
            ident = self.ctx.identity
            headers += [("X-Raft-Index", str(ident.raft_index_base + self.store.index)),
                        ("X-Raft-Term", str(ident.raft_term))]
        return headers

    def _error(self, err: V2Error) -> Response:
        return json_response(err.status, go_json(err.to_dict(), newline=True),
                             [("X-Etcd-Cluster-Id", cluster_id_hex(self.ctx)),
                              ("X-Etcd-Index", str(err.index))])

    def _bad_form(self, code: int, cause: str) -> Response:
        return self._error(V2Error(code, cause, self.store.index))

    # --- dispatch ------------------------------------------------------------------------
    async def handle(self, req: Request) -> Response:
        path = req.path
        if path == KEYS_PREFIX or path.startswith(KEYS_PREFIX + "/"):
            return await self.keys(req, path[len(KEYS_PREFIX):] or "/")
        if path in ("/v2/members", "/v2/members/") or path.startswith("/v2/members/"):
            return self.members(req)
        if path == "/v2/machines" and self.ctx.persona.extra.get("v2_machines", True):
            # removed before 3.2.0 (etcd PR 7803), put back in 3.3.0 (PR 8062): 3.2.x answers 404
            if req.method not in ("GET", "HEAD"):
                return method_not_allowed("GET,HEAD")
            return Response(200, ", ".join(self.ctx.identity.client_urls).encode(), sniff_type=True)
        if path in ("/v2/stats/self", "/v2/stats/leader", "/v2/stats/store"):
            if req.method != "GET":
                return method_not_allowed("GET")
            if path.endswith("self"):
                body = stats_self_body(self.ctx)
            elif path.endswith("leader"):
                body = stats_leader_body(self.ctx)
            else:
                body = stats_store_body(self.store.stats.counts, len(self.store.watchers))
            return json_response(200, body)
        if path.startswith("/v2/auth/") or path == "/v2/auth":
            return self.auth(req, path[len("/v2/auth"):])
        return not_found()

    # --- /v2/keys -------------------------------------------------------------------------
    async def keys(self, req: Request, key: str) -> Response:
        if req.method not in ("GET", "HEAD", "PUT", "POST", "DELETE"):
            return method_not_allowed(KEY_METHODS)
        form = req.form()

        def one(name: str) -> str | None:
            return form[name][0] if name in form else None

        try:
            if req.body_error and req.form_reads_body():  # parseKeyRequest: ParseForm's read failed
                raise V2Error(210, req.body_error, 0)
            flags: dict[str, bool | None] = dict.fromkeys(FLAGS)
            if not form.keys().isdisjoint(FLAGS):  # in FLAGS order: the first bad one is the error
                for name in FLAGS:
                    if name in form:
                        flags[name] = _bool(form[name][0], f'"{name}"')
            prev_exist = _bool(one("prevExist"), "prevExist") if "prevExist" in form else None
            ttl = prev_index = wait_index = None
            if "ttl" in form and form["ttl"][0] != "":
                ttl = _uint(form["ttl"][0], 202, "ttl")
            if "prevIndex" in form and form["prevIndex"][0] != "":
                # etcd reads an absent prevIndex as 0: 0 means "no condition"
                prev_index = _uint(form["prevIndex"][0], 203, "prevIndex") or None
            if "waitIndex" in form and form["waitIndex"][0] != "":
                wait_index = _uint(form["waitIndex"][0], 203, "waitIndex")
            if req.method in ("GET", "HEAD"):
                if flags["wait"]:
                    return self._watch(key, bool(flags["recursive"]), wait_index)
                result = self.store.get(key, recursive=bool(flags["recursive"]))
                return json_response(200, go_json(result, newline=True), self._index_headers())
            if req.method == "PUT":
                value = one("value")
                if flags["refresh"]:
                    if "value" in form:
                        raise V2Error(211, "A value was provided on a refresh", 0)
                    if ttl is None:
                        raise V2Error(212, "No TTL value set", 0)
                    prev_exist = True  # a refresh updates an existing key only
                if (prev_exist and flags["dir"] and self.ctx.persona.extra.get("v2_dir_update_fails")
                        and self.store.is_dir(key)):
                    # etcd 3.5's v2 store fails updating a directory's TTL this way (measured)
                    raise V2Error(300, f"nodePath /1{clean_key(key)} : Not a file ()", 0)
                prev_value = one("prevValue")
                if prev_value == "":
                    raise V2Error(201, '"prevValue" cannot be empty', 0)
                if len(value or "") > self.ctx.limits.max_value_bytes:
                    raise V2Error(300, "etcdserver: request is too large", self.store.index)
                event, created = self.store.set(key, value, dir=bool(flags["dir"]), ttl=ttl,
                                                prev_exist=prev_exist, prev_value=prev_value,
                                                prev_index=prev_index, refresh=bool(flags["refresh"]))
                status = 201 if created else 200
                return json_response(status, go_json(event, newline=True), self._index_headers())
            if req.method == "POST":
                value = one("value") or ""
                if len(value) > self.ctx.limits.max_value_bytes:
                    raise V2Error(300, "etcdserver: request is too large", self.store.index)
                event = self.store.create_in_order(key, value, ttl=ttl)
                return json_response(201, go_json(event, newline=True), self._index_headers())
            event = self.store.delete(key, dir=bool(flags["dir"]), recursive=bool(flags["recursive"]),
                                      prev_value=one("prevValue"), prev_index=prev_index)
            return json_response(200, go_json(event, newline=True), self._index_headers())
        except V2Error as err:
            return self._error(err)

    def _watch(self, key: str, recursive: bool, since: int | None) -> Response:
        loop = asyncio.get_running_loop()
        fired: asyncio.Future[Event] = loop.create_future()

        def notify(event: Event) -> None:
            if not fired.done():
                fired.set_result(event)

        found = self.store.watch(key, recursive, since, notify)
        head = [("Content-Type", "application/json"), *self._index_headers()]
        if isinstance(found, Event):  # etcd streams even an event it already has

            async def once() -> AsyncIterator[bytes]:
                yield go_json(found.to_dict(), newline=True)

            return Response(200, b"", head, stream=once())
        watcher: Watcher = found
        timeout = self.ctx.limits.wait_timeout_s or None  # 0: until the client leaves, as etcd
        store = self.store

        async def body() -> AsyncIterator[bytes]:
            # etcd sends the headers at once and the event when it happens; the connection layer ends
            # this when the client leaves (and `timeout`, when set, bounds it).
            try:
                event = await asyncio.wait_for(fired, timeout)
                yield go_json(event.to_dict(), newline=True)
            except TimeoutError:
                return
            finally:
                store.cancel(watcher)

        return Response(200, b"", head, stream=body())

    # --- /v2/members ----------------------------------------------------------------------
    def members(self, req: Request) -> Response:
        cid = [("X-Etcd-Cluster-Id", cluster_id_hex(self.ctx))]
        sub = req.path[len("/v2/members"):].strip("/")
        if req.method == "GET":
            if not sub:
                body = json.loads(v2_members_body(self.ctx))
                body["members"] += list(self.added_members.values())
                body["members"].sort(key=lambda m: int(m["id"], 16))  # etcd lists members by id
                return json_response(200, go_json(body, newline=True), cid)
            if sub == "leader":
                body = json.loads(v2_members_body(self.ctx))["members"][0]
                return json_response(200, go_json(body, newline=True), cid)
            return _message(404, "Not found", cid)
        if req.method in ("POST", "PUT", "DELETE") and self.auth_enabled and not self._is_root(req):
            return json_response(401, go_json({"message": "Insufficient credentials"}))
        if req.method in ("POST", "PUT"):
            ctype = req.header(b"content-type") or b""
            if ctype.split(b";")[0].strip() != b"application/json":
                text = ctype.decode("latin-1")  # into a JSON message: the one place it becomes text
                return _message(415, f"Bad Content-Type {text}, accept application/json", cid)
            error = _go_json_error(req.body)
            if error is not None:
                return _message(400, error, cid)
        if req.method in ("PUT", "DELETE") and sub:
            if sub in self.added_members:
                if req.method == "DELETE":
                    del self.added_members[sub]
                return Response(204, b"", cid)
            if sub != f"{self.ctx.identity.member_id:x}":
                return _message(404, f"No such member: {sub}", cid)
            # removing or moving the only member would lose quorum
            return _message(412, "etcdserver: re-configuration failed due to not enough started members", cid)
        if req.method == "POST" and not sub:
            # etcd accepts the new (never started) member; it is remembered for /v2/members only
            data = json.loads(req.body or b"{}")
            peers = data.get("peerURLs") if isinstance(data, dict) else None
            peers = [str(u) for u in peers][:8] if isinstance(peers, list) else []
            member_id = f"{secrets.randbits(64):x}"
            member = {"id": member_id, "name": "", "peerURLs": peers, "clientURLs": []}
            if len(self.added_members) < MAX_ADDED_MEMBERS:
                self.added_members[member_id] = member
            return json_response(201, go_json(member, newline=True), cid)
        return method_not_allowed("GET,POST,DELETE,PUT")

    # --- /v2/auth -------------------------------------------------------------------------
    def _is_root(self, req: Request) -> bool:
        """HTTP Basic credentials of the root user (as the attacker set them)."""
        header = req.header(b"authorization") or b""
        if header[:6].lower() != b"basic " or not header.isascii():  # as before: non-ASCII text never decoded
            return False
        try:
            user, _, password = base64.b64decode(header[6:].strip()).decode("utf-8", "replace").partition(":")
        except ValueError:
            return False
        root = self.auth_users.get("root")
        return user == "root" and root is not None and root.get("password") == password

    def _user_view(self, name: str) -> dict[str, object]:
        roles = self.auth_users[name].get("roles")
        view: dict[str, object] = {"user": name}
        if roles:
            view["roles"] = [_role(r) for r in roles]  # type: ignore[attr-defined]
        return view

    def auth(self, req: Request, sub: str) -> Response:
        cid = [("X-Etcd-Cluster-Id", cluster_id_hex(self.ctx))]
        if self.auth_enabled and not (sub == "/enable" and req.method == "GET") and not self._is_root(req):
            return json_response(401, go_json({"message": "Insufficient credentials"}))
        if sub == "/enable":
            if req.method == "GET":
                return json_response(200, go_json({"enabled": self.auth_enabled}, newline=True), cid)
            if req.method == "DELETE" and not self.auth_enabled:
                return _message(409, "auth: already disabled", cid)
            if req.method == "PUT" and self.auth_enabled:
                return _message(409, "auth: already enabled", cid)
            if req.method in ("PUT", "DELETE"):
                if "root" not in self.auth_users:
                    return _message(409, "auth: No root user available, please create one", cid)
                self.auth_enabled = req.method == "PUT"
                self.store.index += 2 if self.auth_enabled else 1  # etcd writes its auth state to the v2 store
                return json_response(200, b"", cid)
            return method_not_allowed("GET,PUT,DELETE")
        if sub in ("/users", "/users/"):
            if req.method != "GET":
                return method_not_allowed("GET")
            users = [self._user_view(u) for u in sorted(self.auth_users)]
            return json_response(200, go_json({"users": users or None}, newline=True), cid)
        if sub.startswith("/users/"):
            name = sub[len("/users/"):]
            if req.method == "GET":
                if name not in self.auth_users:
                    return _message(404, f"auth: User {name} does not exist.", cid)
                return json_response(200, go_json(self._user_view(name), newline=True), cid)
            if req.method == "PUT":
                try:
                    data = json.loads(req.body or b"{}")
                    assert isinstance(data, dict)
                except (ValueError, AssertionError):
                    return _message(400, "Invalid JSON in request body.", cid)
                created = name not in self.auth_users
                if created and len(self.auth_users) >= MAX_AUTH_USERS:
                    return _message(500, "auth: too many users", cid)
                # the first user also creates etcd's auth directories: the index moves by 5, then by 1
                self.store.index += 5 if not self.auth_users else 1
                roles = data.get("roles") or (["root"] if name == "root" else None)
                password = str(data.get("password", ""))[:256]
                self.auth_users[name] = {"roles": roles, "password": password}
                return json_response(201 if created else 200, go_json({"user": name, "roles": roles}, newline=True),
                                     cid)
            if req.method == "DELETE":
                if self.auth_users.pop(name, None) is None:
                    return _message(404, f"auth: User {name} does not exist.", cid)
                self.store.index += 1
                return json_response(200, b"", cid)
            return method_not_allowed("GET,PUT,DELETE")
        root_role = {"role": "root", "permissions": {"kv": {"read": ["/*"], "write": ["/*"]}}}
        if sub in ("/roles", "/roles/"):
            if req.method != "GET":
                return method_not_allowed("GET")
            return json_response(200, go_json({"roles": [root_role]}, newline=True), cid)
        if sub.startswith("/roles/"):
            name = sub[len("/roles/"):]
            if req.method != "GET":
                return _message(403, "auth: Cannot modify role before auth is enabled", cid)
            if name == "root":
                return json_response(200, go_json(root_role, newline=True), cid)
            return _message(404, f"auth: Role {name} does not exist.", cid)
        return not_found()


def _bool(text: str | None, name: str) -> bool | None:
    if text is None or text == "":
        return None if text is None else False
    low = text.lower()
    if low in ("1", "t", "true"):
        return True
    if low in ("0", "f", "false"):
        return False
    raise V2Error(209, f"invalid value for {name}", 0)  # a request error: index 0


def _uint(text: str | None, code: int, name: str) -> int:
    """strconv.ParseUint; the error is raised before the store is asked, so its index is 0."""
    if not (text or "").isascii() or not (text or "").isdigit() or int(text or "0") >= 1 << 64:
        raise V2Error(code, f'invalid value for "{name}"', 0)
    return int(text or "0")


def _role(name: object) -> dict[str, object]:
    """A role as the user listing shows it (only root exists until roles are added)."""
    if name == "root":
        return {"role": "root", "permissions": {"kv": {"read": ["/*"], "write": ["/*"]}}}
    return {"role": str(name)}


def _go_json_error(body: bytes) -> str | None:
    """encoding/json's error for a request body (the v3 side's Go scanner), None when it decodes."""
    # etcd reads the whole body and json.Unmarshal()s it: Unmarshal's wording, and no trailing data
    error, end = decode_error(body)
    if error in ("EOF", "unexpected EOF"):
        return "unexpected end of JSON input"
    rest = body[end:].lstrip(b" \t\r\n")
    if error is None and rest:
        return f"invalid character {quote_char(rest[0])} after top-level value"
    return error


def _message(status: int, message: str, headers: list[tuple[str, str]]) -> Response:
    """etcd's httptypes.HTTPError: `{"message":...}` without a trailing newline."""
    return json_response(status, go_json({"message": message}), headers)
