"""etcd's v3 errors: the gRPC status code and the exact message text etcd sends (rpctypes)."""

from __future__ import annotations

from enum import IntEnum


class Code(IntEnum):
    """gRPC status codes."""

    OK = 0
    CANCELLED = 1
    UNKNOWN = 2
    INVALID_ARGUMENT = 3
    DEADLINE_EXCEEDED = 4
    NOT_FOUND = 5
    ALREADY_EXISTS = 6
    PERMISSION_DENIED = 7
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    ABORTED = 10
    OUT_OF_RANGE = 11
    UNIMPLEMENTED = 12
    INTERNAL = 13
    UNAVAILABLE = 14
    DATA_LOSS = 15
    UNAUTHENTICATED = 16


class V3Error(Exception):
    """A failed v3 call, carried to the wire as grpc-status/grpc-message or a gateway error body."""

    def __init__(self, code: Code, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class NoReply(Exception):
    """A call the persona's release never answers: it waits on a context only the client can end
    (3.3's MoveLeader to a non-member loops until the leader changes; measured on 3.3.25). The gRPC
    transport holds the stream open, logged, until the client resets it or leaves."""


def _err(code: Code, message: str) -> V3Error:
    return V3Error(code, message)


def go_code(code: int) -> str:
    """grpc-go's codes.Code.String(): INVALID_ARGUMENT -> InvalidArgument."""
    return "".join(part.capitalize() for part in Code(code).name.split("_"))


def watch_refusal(release: tuple[int, int], err: V3Error, watch_id: int) -> tuple[str, int]:
    """(cancel_reason, watch_id) of a watch the caller may not read. 3.3's isWatchPermitted is a bool
    (always "permission denied", id -1: measured on 3.3.25); 3.4 cancels with the error itself and id
    -1; 3.5 says permission denied with the requested id."""
    denied = "rpc error: code = PermissionDenied desc = etcdserver: permission denied"
    if release < (3, 4):
        return denied, -1
    if release < (3, 5):
        return f"rpc error: code = {go_code(err.code)} desc = {err.message}", -1
    return denied, watch_id


# Constructors rather than shared instances: an exception object should not be raised twice.
def empty_key() -> V3Error:
    return _err(Code.INVALID_ARGUMENT, "etcdserver: key is not provided")


def key_not_found() -> V3Error:
    return _err(Code.INVALID_ARGUMENT, "etcdserver: key not found")


def value_provided() -> V3Error:
    return _err(Code.INVALID_ARGUMENT, "etcdserver: value is provided")


def lease_provided() -> V3Error:
    return _err(Code.INVALID_ARGUMENT, "etcdserver: lease is provided")


def too_many_ops() -> V3Error:
    return _err(Code.INVALID_ARGUMENT, "etcdserver: too many operations in txn request")


def duplicate_key() -> V3Error:
    return _err(Code.INVALID_ARGUMENT, "etcdserver: duplicate key given in txn request")


def compacted() -> V3Error:
    return _err(Code.OUT_OF_RANGE, "etcdserver: mvcc: required revision has been compacted")


def future_rev() -> V3Error:
    return _err(Code.OUT_OF_RANGE, "etcdserver: mvcc: required revision is a future revision")


def no_space() -> V3Error:
    return _err(Code.RESOURCE_EXHAUSTED, "etcdserver: mvcc: database space exceeded")


def request_too_large() -> V3Error:
    return _err(Code.INVALID_ARGUMENT, "etcdserver: request is too large")


def lease_not_found() -> V3Error:
    return _err(Code.NOT_FOUND, "etcdserver: requested lease not found")


def lease_exists() -> V3Error:
    return _err(Code.FAILED_PRECONDITION, "etcdserver: lease already exists")


def lease_ttl_too_large() -> V3Error:
    return _err(Code.OUT_OF_RANGE, "etcdserver: too large lease TTL")


def auth_not_enabled() -> V3Error:
    return _err(Code.FAILED_PRECONDITION, "etcdserver: authentication is not enabled")


def user_empty() -> V3Error:
    return _err(Code.INVALID_ARGUMENT, "etcdserver: user name is empty")


def user_exists() -> V3Error:
    return _err(Code.FAILED_PRECONDITION, "etcdserver: user name already exists")


def user_not_found() -> V3Error:
    return _err(Code.FAILED_PRECONDITION, "etcdserver: user name not found")


def role_empty() -> V3Error:
    return _err(Code.INVALID_ARGUMENT, "etcdserver: role name is empty")


def role_exists() -> V3Error:
    return _err(Code.FAILED_PRECONDITION, "etcdserver: role name already exists")


def role_not_found() -> V3Error:
    return _err(Code.FAILED_PRECONDITION, "etcdserver: role name not found")


def root_user_missing() -> V3Error:
    return _err(Code.FAILED_PRECONDITION, "etcdserver: root user does not exist")


def invalid_token() -> V3Error:
    return _err(Code.UNAUTHENTICATED, "etcdserver: invalid auth token")


def role_not_granted() -> V3Error:
    return _err(Code.FAILED_PRECONDITION, "etcdserver: role is not granted to the user")


def permission_not_granted() -> V3Error:
    return _err(Code.FAILED_PRECONDITION, "etcdserver: permission is not granted to the role")


def permission_not_given() -> V3Error:
    return _err(Code.INVALID_ARGUMENT, "etcdserver: permission not given")


def root_without_root_role() -> V3Error:
    return _err(Code.FAILED_PRECONDITION, "etcdserver: root user does not have root role")


def member_not_found() -> V3Error:
    return _err(Code.NOT_FOUND, "etcdserver: member not found")


def member_exists() -> V3Error:
    return _err(Code.FAILED_PRECONDITION, "etcdserver: member ID already exist")


def peer_url_exists() -> V3Error:
    return _err(Code.FAILED_PRECONDITION, "etcdserver: Peer URLs already exists")


def member_urls_invalid() -> V3Error:
    return _err(Code.INVALID_ARGUMENT, "etcdserver: given member URLs are invalid")


def bad_leader_transferee() -> V3Error:
    return _err(Code.FAILED_PRECONDITION, "etcdserver: bad leader transferee")


def not_enough_started_members() -> V3Error:
    return _err(Code.FAILED_PRECONDITION, "etcdserver: re-configuration failed due to not enough started members")


def member_not_learner() -> V3Error:
    return _err(Code.FAILED_PRECONDITION, "etcdserver: can only promote a learner member")


def learner_not_ready() -> V3Error:
    return _err(Code.FAILED_PRECONDITION,
                "etcdserver: can only promote a learner member which is in sync with leader")


def permission_denied() -> V3Error:
    return _err(Code.PERMISSION_DENIED, "etcdserver: permission denied")


def auth_old_revision() -> V3Error:
    return _err(Code.INVALID_ARGUMENT, "etcdserver: revision of auth store is old")


def auth_failed() -> V3Error:
    return _err(Code.INVALID_ARGUMENT, "etcdserver: authentication failed, invalid user ID or password")


def request_timed_out() -> V3Error:
    """etcd's ErrGRPCTimeout: what a member without a leader answers (our keyspace owner is away)."""
    return _err(Code.UNAVAILABLE, "etcdserver: request timed out")


def too_many_requests() -> V3Error:
    return _err(Code.UNAVAILABLE, "etcdserver: too many requests")


def unknown_method(path: str, names_service: bool = True) -> V3Error:
    """grpc-go's reply to a path no service registers (service and method split at the last /).
    `names_service`: grpc-go 1.20 and later (etcd 3.3.14+) name the service after an unknown method."""
    sm = path[1:] if path.startswith("/") else path
    if "/" not in sm:
        return _err(Code.RESOURCE_EXHAUSTED, f"malformed method name: {_go_quote(path)}")
    service, _, method = sm.rpartition("/")
    if service in KNOWN_SERVICES:
        return _err(Code.UNIMPLEMENTED, f"unknown method {method} for service {service}" if names_service
                    else f"unknown method {method}")
    return _err(Code.UNIMPLEMENTED, f"unknown service {service}")


def _go_quote(s: str) -> str:
    """Go's %q for the ASCII-printable strings a :path can hold."""
    out = s.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + "".join(ch if 0x20 <= ord(ch) < 0x7F else f"\\x{ord(ch):02x}" for ch in out) + '"'


KNOWN_SERVICES = frozenset({
    "etcdserverpb.KV", "etcdserverpb.Watch", "etcdserverpb.Lease", "etcdserverpb.Cluster",
    "etcdserverpb.Maintenance", "etcdserverpb.Auth", "grpc.health.v1.Health",
    "v3electionpb.Election", "v3lockpb.Lock",
})


def grpc_gateway_http_status(code: int, v34: bool) -> int:
    """The HTTP status grpc-gateway gives a gRPC code (v1.9 in etcd 3.4, v1.16 in etcd 3.5)."""
    if code == Code.FAILED_PRECONDITION:
        return 412 if v34 else 400
    return {
        Code.OK: 200, Code.CANCELLED: 408, Code.UNKNOWN: 500, Code.INVALID_ARGUMENT: 400,
        Code.DEADLINE_EXCEEDED: 504, Code.NOT_FOUND: 404, Code.ALREADY_EXISTS: 409,
        Code.PERMISSION_DENIED: 403, Code.RESOURCE_EXHAUSTED: 429, Code.ABORTED: 409,
        Code.OUT_OF_RANGE: 400, Code.UNIMPLEMENTED: 501, Code.INTERNAL: 500, Code.UNAVAILABLE: 503,
        Code.DATA_LOSS: 500, Code.UNAUTHENTICATED: 401,
    }.get(Code(code) if code in Code._value2member_map_ else Code.UNKNOWN, 500)
