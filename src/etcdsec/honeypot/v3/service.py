"""The v3 unary methods as etcd answers them (sans-IO), shared by the gRPC server and the gateway.

`METHODS` maps the gRPC path (`/etcdserverpb.KV/Range`) to its request/response types, handler
and gateway path(s). Handlers take a `Call` and the decoded request and return the response
message or raise `V3Error`, whose code and text are etcd's.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from google.protobuf.message import Message

from etcdsec.honeypot.core.persona import Persona
from etcdsec.honeypot.core.session import Session
from etcdsec.honeypot.v3 import admin, errors
from etcdsec.honeypot.v3.call import READ, WRITE, Call
from etcdsec.honeypot.v3.gateway.plain import PlainPut, PlainRange
from etcdsec.honeypot.v3.mvcc import KeyRev, WriteTxn, range_end_of
from etcdsec.honeypot.v3.remote import RemoteWatch
from etcdsec.honeypot.v3.snapshot import snapshot_responses
from etcdsec.honeypot.v3.state import V3State
from etcdsec.honeypot.v3.watch import WatchStream, kv_message
from etcdsec.proto import etcd_v3_pb2 as pb

MAX_TXN_OPS = 128
MAX_REQUEST_BYTES = 1536 * 1024  # etcd --max-request-bytes default


Handler = Callable[[Call, Any], Message]


@dataclass(frozen=True)
class Method:
    path: str  # gRPC path
    request: type[Message]
    response: type[Message]
    handler: Handler | None  # None: a streaming method, served by its transport
    gateway: tuple[str, ...] = ()  # canonical /v3/... paths
    min_version: tuple[int, int] = (3, 0)
    streaming: bool = False  # bidirectional: served message by message by the transport
    server_stream: bool = False  # one request, the handler returns the list of responses


# --- KV -------------------------------------------------------------------------------------------
def _kv(kv: KeyRev, keys_only: bool = False) -> pb.KeyValue:
    msg = kv_message(kv)
    if keys_only:
        msg.ClearField("value")
    return msg


_SORT_KEYS: dict[int, Callable[[KeyRev], Any]] = {
    pb.RangeRequest.KEY: lambda kv: kv.key,
    pb.RangeRequest.VERSION: lambda kv: kv.version,
    pb.RangeRequest.CREATE: lambda kv: kv.create_revision,
    pb.RangeRequest.MOD: lambda kv: kv.mod_revision,
    pb.RangeRequest.VALUE: lambda kv: kv.value,
}


# enum values as module constants: a lookup on the protobuf class costs more than the comparison
_KEY, _NONE = pb.RangeRequest.KEY, pb.RangeRequest.NONE
_ASCEND, _DESCEND = pb.RangeRequest.ASCEND, pb.RangeRequest.DESCEND


def _txn_rev(call: Call, txn: WriteTxn) -> int:
    """etcd's revision for an op inside a txn: the new one once the txn has changed something."""
    return txn.rev if txn.changes else call.ns.store.revision


RangeArgs = pb.RangeRequest | PlainRange
PutArgs = pb.PutRequest | PlainPut


@dataclass(slots=True)
class RangeResult:
    """A Range answer before it is a message: the gateway renders it to JSON without protobuf."""

    revision: int  # of the response header
    count: int
    more: bool
    kvs: list[KeyRev]  # empty for count_only
    keys_only: bool


def range_result(call: Call, r: RangeArgs, txn: WriteTxn | None = None) -> RangeResult:
    if not r.key:
        raise errors.empty_key()
    if txn is None:
        call.require(READ, r.key, r.range_end)
    store = call.ns.store
    kvs = store.range(r.key, range_end_of(r.key, r.range_end), r.revision)
    count = len(kvs)
    if r.min_mod_revision or r.max_mod_revision or r.min_create_revision or r.max_create_revision:
        kvs = [kv for kv in kvs
               if (not r.min_mod_revision or kv.mod_revision >= r.min_mod_revision)
               and (not r.max_mod_revision or kv.mod_revision <= r.max_mod_revision)
               and (not r.min_create_revision or kv.create_revision >= r.min_create_revision)
               and (not r.max_create_revision or kv.create_revision <= r.max_create_revision)]
    order = r.sort_order
    if r.sort_target != _KEY and order == _NONE:
        order = _ASCEND  # etcd sorts ascending when only a target is given
    if order != _NONE:
        kvs.sort(key=_SORT_KEYS.get(r.sort_target, _SORT_KEYS[0]), reverse=order == _DESCEND)
    more = r.limit > 0 and len(kvs) > r.limit
    if more:
        kvs = kvs[: r.limit]
    revision = store.revision if txn is None else _txn_rev(call, txn)
    return RangeResult(revision, count, more, [] if r.count_only else kvs, r.keys_only)


def do_range(call: Call, r: pb.RangeRequest, txn: WriteTxn | None = None) -> pb.RangeResponse:
    res = range_result(call, r, txn)
    # a txn's inner range carries only the revision in its header
    head = call.header(res.revision) if txn is None else pb.ResponseHeader(revision=res.revision)
    resp = pb.RangeResponse(header=head, count=res.count, more=res.more)
    add, keys_only = resp.kvs.add, res.keys_only
    for kv in res.kvs:  # built in place: extend() would copy each message once more
        add(key=kv.key, create_revision=kv.create_revision, mod_revision=kv.mod_revision, version=kv.version,
            value=b"" if keys_only else kv.value, lease=kv.lease)
    return resp


def _check_put(call: Call, r: PutArgs) -> None:
    if not r.key:
        raise errors.empty_key()
    if r.ignore_value and r.value:
        raise errors.value_provided()
    if r.ignore_lease and r.lease:
        raise errors.lease_provided()
    if len(r.key) + len(r.value) > min(MAX_REQUEST_BYTES, call.state.ctx.limits.max_value_bytes + 1024):
        raise errors.request_too_large()


def _put_kv(call: Call, txn: WriteTxn, r: PutArgs) -> KeyRev | None:
    """Write one Put into `txn`; the key's previous live version, if any."""
    ns = call.ns
    current = ns.store.get(r.key)
    value, lease = r.value, r.lease
    if r.ignore_value or r.ignore_lease:
        if current is None:
            raise errors.key_not_found()
        if r.ignore_value:
            value = current.value
        if r.ignore_lease:
            lease = current.lease
    if lease and ns.lessor.get(lease) is None:
        raise errors.lease_not_found()
    prev = txn.put(r.key, value, lease)
    if prev is not None and prev.lease != lease:
        ns.lessor.detach(prev.lease, r.key)
    ns.lessor.attach(lease, r.key)
    return prev


def _apply_put(call: Call, txn: WriteTxn, r: pb.PutRequest) -> pb.PutResponse:
    prev = _put_kv(call, txn, r)
    resp = pb.PutResponse()
    if r.prev_kv and prev is not None:
        resp.prev_kv.CopyFrom(_kv(prev))
    return resp


def _apply_delete(call: Call, txn: WriteTxn, r: pb.DeleteRangeRequest) -> pb.DeleteRangeResponse:
    deleted = txn.delete_range(r.key, range_end_of(r.key, r.range_end))
    for kv in deleted:
        call.ns.lessor.detach(kv.lease, kv.key)
    resp = pb.DeleteRangeResponse(deleted=len(deleted))
    if r.prev_kv:
        resp.prev_kvs.extend(_kv(kv) for kv in deleted)
    return resp


def put_result(call: Call, r: PutArgs) -> tuple[int, KeyRev | None]:
    """A Put before it is a message: (revision of the header, prev_kv to answer or None); the
    gateway renders it to JSON without protobuf."""
    _check_put(call, r)
    call.require(WRITE, r.key)
    with call.ns.store.txn() as txn:
        prev = _put_kv(call, txn, r)
        rev = txn.commit()
    return rev, prev if r.prev_kv else None


def put(call: Call, r: pb.PutRequest) -> pb.PutResponse:
    rev, prev = put_result(call, r)
    resp = pb.PutResponse(header=call.header(rev))
    if prev is not None:
        resp.prev_kv.CopyFrom(_kv(prev))
    return resp


def delete_range(call: Call, r: pb.DeleteRangeRequest) -> pb.DeleteRangeResponse:
    if not r.key:
        raise errors.empty_key()
    call.require(WRITE, r.key, r.range_end)
    with call.ns.store.txn() as txn:
        resp = _apply_delete(call, txn, r)
        rev = txn.commit()
    resp.header.CopyFrom(call.header(rev))
    return resp


def _compare(call: Call, c: pb.Compare) -> bool:
    store = call.ns.store
    kvs = store.range(c.key, range_end_of(c.key, c.range_end)) if c.range_end else (
        [kv] if (kv := store.get(c.key)) is not None else [])
    target = c.target
    if not kvs:
        # A missing key compares as zero values (version 0, create 0, ...); VALUE never matches.
        if target == pb.Compare.VALUE:
            return False
        kvs = [KeyRev(c.key, 0, 0, 0, b"", 0)]
    for kv in kvs:
        have: Any
        want: Any
        if target == pb.Compare.VERSION:
            have, want = kv.version, c.version
        elif target == pb.Compare.CREATE:
            have, want = kv.create_revision, c.create_revision
        elif target == pb.Compare.MOD:
            have, want = kv.mod_revision, c.mod_revision
        elif target == pb.Compare.VALUE:
            have, want = kv.value, c.value
        else:
            have, want = kv.lease, c.lease
        res = c.result
        ok = (have == want if res == pb.Compare.EQUAL else have > want if res == pb.Compare.GREATER
              else have < want if res == pb.Compare.LESS else have != want)
        if not ok:
            return False
    return True


def _check_txn(call: Call, r: pb.TxnRequest, max_ops: int = MAX_TXN_OPS) -> None:
    # etcd's checkTxnRequest: a nested txn gets what its parent left of the budget, so nesting
    # ends at 128 levels (the recursion here with it)
    count = max(len(r.compare), len(r.success), len(r.failure))
    if count > max_ops:
        raise errors.too_many_ops()
    for c in r.compare:
        if not c.key:
            raise errors.empty_key()
    for ops in (r.success, r.failure):
        puts: set[bytes] = set()
        for op in ops:
            kind = op.WhichOneof("request")
            if kind == "request_range" and not op.request_range.key:
                raise errors.empty_key()
            if kind == "request_put":
                _check_put(call, op.request_put)
                if op.request_put.key in puts:
                    raise errors.duplicate_key()
                puts.add(op.request_put.key)
            if kind == "request_delete_range" and not op.request_delete_range.key:
                raise errors.empty_key()
            if kind == "request_txn":
                _check_txn(call, op.request_txn, max_ops - count)


def _apply_ops(call: Call, txn: WriteTxn, r: pb.TxnRequest, resp: pb.TxnResponse) -> None:
    ok = all(_compare(call, c) for c in r.compare)
    resp.succeeded = ok
    for op in r.success if ok else r.failure:
        kind = op.WhichOneof("request")
        out = resp.responses.add()
        if kind == "request_range":
            out.response_range.CopyFrom(do_range(call, op.request_range, txn))
        elif kind == "request_put":
            out.response_put.CopyFrom(_apply_put(call, txn, op.request_put))
            out.response_put.header.revision = txn.rev
        elif kind == "request_delete_range":
            out.response_delete_range.CopyFrom(_apply_delete(call, txn, op.request_delete_range))
            out.response_delete_range.header.revision = _txn_rev(call, txn)
        elif kind == "request_txn":
            out.response_txn.header.SetInParent()  # etcd leaves a nested txn's header empty
            _apply_ops(call, txn, op.request_txn, out.response_txn)


def _require_txn(call: Call, r: pb.TxnRequest) -> None:
    """etcd checks every compare and the ops of both branches before running a txn."""
    for c in r.compare:
        call.require(READ, c.key, c.range_end)
    for op in [*r.success, *r.failure]:
        kind = op.WhichOneof("request")
        if kind == "request_range":
            call.require(READ, op.request_range.key, op.request_range.range_end)
        elif kind == "request_put":
            call.require(WRITE, op.request_put.key)
        elif kind == "request_delete_range":
            call.require(WRITE, op.request_delete_range.key, op.request_delete_range.range_end)
        elif kind == "request_txn":
            _require_txn(call, op.request_txn)


def txn(call: Call, r: pb.TxnRequest) -> pb.TxnResponse:
    _check_txn(call, r)
    call.check_token()
    _require_txn(call, r)
    resp = pb.TxnResponse()
    with call.ns.store.txn() as t:
        _apply_ops(call, t, r, resp)
        rev = t.commit()
    resp.header.CopyFrom(call.header(rev))
    return resp


def compact(call: Call, r: pb.CompactionRequest) -> pb.CompactionResponse:
    call.check_token()
    call.ns.store.compact(r.revision)
    return pb.CompactionResponse(header=call.header())


# --- Lease ----------------------------------------------------------------------------------------
def lease_grant(call: Call, r: pb.LeaseGrantRequest) -> pb.LeaseGrantResponse:
    call.check_token()
    lease = call.ns.lessor.grant(r.ID, r.TTL, call.state.clock())
    return pb.LeaseGrantResponse(header=call.header(), ID=lease.id, TTL=lease.ttl)


def lease_revoke(call: Call, r: pb.LeaseRevokeRequest) -> pb.LeaseRevokeResponse:
    call.check_token()
    lease = call.ns.lessor.get(r.ID)
    for key in sorted(lease.keys) if lease is not None else []:
        call.require(WRITE, key)
    call.ns.revoke(r.ID)
    return pb.LeaseRevokeResponse(header=call.header())


def lease_ttl(call: Call, r: pb.LeaseTimeToLiveRequest) -> pb.LeaseTimeToLiveResponse:
    lease = call.ns.lessor.get(r.ID)
    if lease is None:
        return pb.LeaseTimeToLiveResponse(header=call.header(), ID=r.ID, TTL=-1)
    resp = pb.LeaseTimeToLiveResponse(header=call.header(), ID=r.ID, TTL=lease.remaining(call.state.clock()),
                                      grantedTTL=lease.ttl)
    if r.keys:
        resp.keys.extend(sorted(lease.keys))
    return resp


def lease_leases(call: Call, r: pb.LeaseLeasesRequest) -> pb.LeaseLeasesResponse:
    return pb.LeaseLeasesResponse(header=call.header(),
                                  leases=[pb.LeaseStatus(ID=i) for i in sorted(call.ns.lessor.leases)])


def keepalive_one(call: Call, r: pb.LeaseKeepAliveRequest) -> pb.LeaseKeepAliveResponse:
    ttl = call.ns.lessor.renew(r.ID, call.state.clock())
    return pb.LeaseKeepAliveResponse(header=call.header(), ID=r.ID, TTL=ttl)


# --- Cluster / Maintenance ------------------------------------------------------------------------


def status(call: Call, r: pb.StatusRequest) -> pb.StatusResponse:
    ns = call.ns
    db_size, in_use = ns.db_size()
    ident = call.state.ctx.identity
    resp = pb.StatusResponse(header=call.header(), version=call.persona.version, dbSize=db_size,
                             leader=ident.member_id, raftIndex=ns.raft_index, raftTerm=ident.raft_term)
    if call.persona.major_minor >= (3, 4):  # fields added in 3.4
        resp.raftAppliedIndex = ns.raft_index
        resp.dbSizeInUse = in_use
    return resp


def alarm(call: Call, r: pb.AlarmRequest) -> pb.AlarmResponse:
    try:
        call.check_token()
    except errors.V3Error:
        if call.persona.major_minor < (3, 5):  # 3.4 lets the auth package's error through untranslated
            raise errors.V3Error(errors.Code.UNKNOWN, "auth: invalid auth token") from None
        raise
    if call.persona.major_minor < (3, 5):
        return pb.AlarmResponse()  # 3.4 answers an alarm list without a header
    return pb.AlarmResponse(header=call.header())


def defragment(call: Call, r: Message) -> pb.HeaderOnlyResponse:
    return pb.HeaderOnlyResponse()  # etcd answers a defragment with an empty message


def _kv_hash(call: Call, rev: int = 0) -> int:
    """A stable 32-bit digest of the keyspace (etcd: crc32 of the backend), changes with every write."""
    crc = zlib.crc32(call.ns.store.revision.to_bytes(8, "big"))
    for kv in call.ns.store.range(b"\x00", b"", rev if 0 < rev <= call.ns.store.revision else 0):
        crc = zlib.crc32(kv.value, zlib.crc32(kv.key, crc))
    return crc


def snapshot(call: Call, r: pb.SnapshotRequest) -> list[pb.SnapshotResponse]:
    call.require_admin()
    size, _ = call.ns.db_size()
    return snapshot_responses(size, call.ns.raft_index)


def hash_(call: Call, r: pb.HashRequest) -> pb.HashResponse:
    return pb.HashResponse(header=call.header(), hash=_kv_hash(call))


def hash_kv(call: Call, r: pb.HashKVRequest) -> pb.HashKVResponse:
    call.ns.store.check_revision(r.revision)
    return pb.HashKVResponse(header=call.header(), hash=_kv_hash(call, r.revision),
                             compact_revision=call.ns.store.compact_revision)


_M = Method
_UNARY = [
    _M("/etcdserverpb.KV/Range", pb.RangeRequest, pb.RangeResponse, do_range, ("/v3/kv/range",)),
    _M("/etcdserverpb.KV/Put", pb.PutRequest, pb.PutResponse, put, ("/v3/kv/put",)),
    _M("/etcdserverpb.KV/DeleteRange", pb.DeleteRangeRequest, pb.DeleteRangeResponse, delete_range,
       ("/v3/kv/deleterange",)),
    _M("/etcdserverpb.KV/Txn", pb.TxnRequest, pb.TxnResponse, txn, ("/v3/kv/txn",)),
    _M("/etcdserverpb.KV/Compact", pb.CompactionRequest, pb.CompactionResponse, compact,
       ("/v3/kv/compaction",)),
    _M("/etcdserverpb.Watch/Watch", pb.WatchRequest, pb.WatchResponse, None, ("/v3/watch",),
       streaming=True),
    _M("/etcdserverpb.Lease/LeaseGrant", pb.LeaseGrantRequest, pb.LeaseGrantResponse, lease_grant,
       ("/v3/lease/grant",)),
    _M("/etcdserverpb.Lease/LeaseRevoke", pb.LeaseRevokeRequest, pb.LeaseRevokeResponse, lease_revoke,
       ("/v3/lease/revoke", "/v3/kv/lease/revoke")),
    _M("/etcdserverpb.Lease/LeaseKeepAlive", pb.LeaseKeepAliveRequest, pb.LeaseKeepAliveResponse, None,
       ("/v3/lease/keepalive",), streaming=True),
    _M("/etcdserverpb.Lease/LeaseTimeToLive", pb.LeaseTimeToLiveRequest, pb.LeaseTimeToLiveResponse,
       lease_ttl, ("/v3/lease/timetolive", "/v3/kv/lease/timetolive")),
    _M("/etcdserverpb.Lease/LeaseLeases", pb.LeaseLeasesRequest, pb.LeaseLeasesResponse, lease_leases,
       ("/v3/lease/leases", "/v3/kv/lease/leases"), min_version=(3, 3)),
    _M("/etcdserverpb.Cluster/MemberList", pb.MemberListRequest, pb.MemberListResponse, admin.member_list,
       ("/v3/cluster/member/list",)),
    _M("/etcdserverpb.Maintenance/Status", pb.StatusRequest, pb.StatusResponse, status,
       ("/v3/maintenance/status",)),
    _M("/etcdserverpb.Maintenance/Alarm", pb.AlarmRequest, pb.AlarmResponse, alarm,
       ("/v3/maintenance/alarm",)),
    _M("/etcdserverpb.Maintenance/Defragment", pb.StatusRequest, pb.HeaderOnlyResponse, defragment,
       ("/v3/maintenance/defragment",)),
    _M("/etcdserverpb.Maintenance/Snapshot", pb.SnapshotRequest, pb.SnapshotResponse, snapshot,  # type: ignore[arg-type]
       ("/v3/maintenance/snapshot",), server_stream=True),
    _M("/etcdserverpb.Maintenance/Hash", pb.HashRequest, pb.HashResponse, hash_, ("/v3/maintenance/hash",)),
    _M("/etcdserverpb.Maintenance/HashKV", pb.HashKVRequest, pb.HashKVResponse, hash_kv,
       (), min_version=(3, 3)),  # no gateway route in 3.4/3.5
    _M("/etcdserverpb.Auth/AuthStatus", pb.AuthStatusRequest, pb.AuthStatusResponse, admin.auth_status,
       ("/v3/auth/status",), min_version=(3, 5)),
    _M("/etcdserverpb.Auth/Authenticate", pb.AuthenticateRequest, pb.AuthenticateResponse, admin.authenticate,
       ("/v3/auth/authenticate",)),
    _M("/etcdserverpb.Auth/UserList", pb.AuthUserListRequest, pb.AuthUserListResponse, admin.user_list,
       ("/v3/auth/user/list",)),
    _M("/etcdserverpb.Auth/RoleList", pb.AuthRoleListRequest, pb.AuthRoleListResponse, admin.role_list,
       ("/v3/auth/role/list",)),
    _M("/etcdserverpb.Auth/UserGet", pb.AuthUserGetRequest, pb.AuthUserGetResponse, admin.user_get,
       ("/v3/auth/user/get",)),
    _M("/etcdserverpb.Auth/RoleGet", pb.AuthRoleGetRequest, pb.AuthRoleGetResponse, admin.role_get,
       ("/v3/auth/role/get",)),
    _M("/etcdserverpb.Auth/UserAdd", pb.AuthUserAddRequest, pb.HeaderOnlyResponse, admin.user_add,
       ("/v3/auth/user/add",)),
    _M("/etcdserverpb.Auth/RoleAdd", pb.AuthRoleAddRequest, pb.HeaderOnlyResponse, admin.role_add,
       ("/v3/auth/role/add",)),
    _M("/etcdserverpb.Auth/AuthEnable", pb.AuthEnableRequest, pb.HeaderOnlyResponse, admin.auth_enable,
       ("/v3/auth/enable",)),
    _M("/etcdserverpb.Auth/AuthDisable", pb.AuthDisableRequest, pb.HeaderOnlyResponse, admin.auth_disable,
       ("/v3/auth/disable",)),
    _M("/etcdserverpb.Auth/UserDelete", pb.AuthUserDeleteRequest, pb.HeaderOnlyResponse, admin.user_delete,
       ("/v3/auth/user/delete",)),
    _M("/etcdserverpb.Auth/UserChangePassword", pb.AuthUserChangePasswordRequest, pb.HeaderOnlyResponse,
       admin.user_change_password, ("/v3/auth/user/changepw",)),
    _M("/etcdserverpb.Auth/UserGrantRole", pb.AuthUserGrantRoleRequest, pb.HeaderOnlyResponse,
       admin.user_grant_role, ("/v3/auth/user/grant",)),
    _M("/etcdserverpb.Auth/UserRevokeRole", pb.AuthUserRevokeRoleRequest, pb.HeaderOnlyResponse,
       admin.user_revoke_role, ("/v3/auth/user/revoke",)),
    _M("/etcdserverpb.Auth/RoleDelete", pb.AuthRoleDeleteRequest, pb.HeaderOnlyResponse, admin.role_delete,
       ("/v3/auth/role/delete",)),
    _M("/etcdserverpb.Auth/RoleGrantPermission", pb.AuthRoleGrantPermissionRequest, pb.HeaderOnlyResponse,
       admin.role_grant_permission, ("/v3/auth/role/grant",)),
    _M("/etcdserverpb.Auth/RoleRevokePermission", pb.AuthRoleRevokePermissionRequest, pb.HeaderOnlyResponse,
       admin.role_revoke_permission, ("/v3/auth/role/revoke",)),
    _M("/etcdserverpb.Cluster/MemberAdd", pb.MemberAddRequest, pb.MemberAddResponse, admin.member_add,
       ("/v3/cluster/member/add",)),
    _M("/etcdserverpb.Cluster/MemberRemove", pb.MemberRemoveRequest, pb.MembersResponse, admin.member_remove,
       ("/v3/cluster/member/remove",)),
    _M("/etcdserverpb.Cluster/MemberUpdate", pb.MemberUpdateRequest, pb.MembersResponse, admin.member_update,
       ("/v3/cluster/member/update",)),
    _M("/etcdserverpb.Cluster/MemberPromote", pb.MemberPromoteRequest, pb.MembersResponse, admin.member_promote,
       ("/v3/cluster/member/promote",), min_version=(3, 4)),
    _M("/etcdserverpb.Maintenance/MoveLeader", pb.MoveLeaderRequest, pb.HeaderOnlyResponse, admin.move_leader,
       ("/v3/maintenance/transfer-leadership",), min_version=(3, 3)),
]

METHODS: dict[str, Method] = {m.path: m for m in _UNARY}
GATEWAY: dict[str, Method] = {g: m for m in _UNARY for g in m.gateway}
# Gateway routes newer than their method: before 3.4 the lease routes lived under /kv/lease only
# (rpc.proto@v3.3.25; measured: /v3beta/lease/revoke is grpc-gateway's 404 on 3.3.25).
GATEWAY_SINCE: dict[str, tuple[int, int]] = {"/v3/lease/revoke": (3, 4), "/v3/lease/timetolive": (3, 4),
                                             "/v3/lease/leases": (3, 4)}


def available(method: Method, persona: Persona) -> bool:
    return persona.grpc_enabled and persona.major_minor >= method.min_version


def gateway_method(canon: str, persona: Persona) -> Method | None:
    """The method behind a canonical gateway path (`/v3/kv/range`) for this persona, or None."""
    m = GATEWAY.get(canon)
    if m is None or not available(m, persona) or persona.major_minor < GATEWAY_SINCE.get(canon, (0, 0)):
        return None
    return m


def _src(session: Session | None) -> str:
    return session.src_ip if session is not None else ""


def invoke_stream(state: V3State, session: Session | None, method: Method, request: Message,
                  token: str | None = None) -> list[Message]:
    """Run one server-streaming method (Snapshot): all its responses, in order."""
    assert method.handler is not None and method.server_stream
    if state.remote is not None:  # --shared-keyspace: the owner runs it
        parts = state.remote.call(method.path, _src(session), token, request.SerializeToString())
        return [method.response.FromString(p) for p in parts]
    call = Call(state, state.namespace(session), session, state.ctx.persona, token)
    return list(method.handler(call, request))  # type: ignore[call-overload]


RANGE = "/etcdserverpb.KV/Range"


def reads_here(state: V3State, revision: int, token: str | None) -> bool:
    """In a forwarding worker: whether a Range at `revision` (0: the latest) is answered from the
    replica (current, no token, history it holds) rather than by the keyspace owner."""
    replica = state.replica
    if replica is None or token is not None:
        return False
    if revision > 0:
        store = state.namespace(None).store
        if not store.compact_revision < revision <= store.revision:
            return False  # older than the copy's history, or a future revision: the owner answers
    return replica.current()


def invoke(state: V3State, session: Session | None, method: Method, request: Message,
           token: str | None = None) -> Message:
    """Run one unary method; V3Error propagates to the transport."""
    assert method.handler is not None
    call = local_call(state, session, method, request, token)
    if call is None:
        return forward(state, session, method, request, token)
    return method.handler(call, request)


def forward(state: V3State, session: Session | None, method: Method, request: Message,
            token: str | None = None) -> Message:
    """The keyspace owner's answer (a forwarding worker)."""
    assert state.remote is not None
    return method.response.FromString(state.remote.call(method.path, _src(session), token, request.SerializeToString()))


def local_call(state: V3State, session: Session | None, method: Method, request: Message,
               token: str | None = None) -> Call | None:
    """The call run in this process, or None when the keyspace owner runs it (a forwarding worker)."""
    if state.remote is not None and not (method.path == RANGE and reads_here(state, request.revision, token)):
        return None
    return Call(state, state.namespace(session), session, state.ctx.persona, token)


def keepalive(state: V3State, session: Session | None, request: pb.LeaseKeepAliveRequest) -> pb.LeaseKeepAliveResponse:
    """One LeaseKeepAlive message of a stream, renewed where the lessor is."""
    if state.remote is not None:
        return pb.LeaseKeepAliveResponse.FromString(state.remote.call(
            "/etcdserverpb.Lease/LeaseKeepAlive", _src(session), None, request.SerializeToString()))
    return keepalive_one(Call(state, state.namespace(session), session, state.ctx.persona), request)


def open_watch(state: V3State, session: Session | None, max_watchers: int,
               on_ready: Callable[[], None] | None = None) -> WatchStream | RemoteWatch:
    """A watch stream on the caller's namespace, in this process or (--shared-keyspace) the owner's."""
    if state.remote is not None:
        return state.remote.open_watch(_src(session), on_ready=on_ready)
    return state.namespace(session).hub.open(max_watchers=max_watchers, on_ready=on_ready)
