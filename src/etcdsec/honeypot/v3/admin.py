"""Auth and cluster administration as an open etcd answers it (sans-IO).

Auth starts disabled with no users or roles. What an attacker adds (users, roles, permissions,
members) is kept per namespace and read back. An `auth enable` is honoured in that namespace
(tokens, permissions, as etcd) so a ransom-style lockout looks real to its author; with shared
writes it locks the shared namespace until the sensor restarts. A `member add` never costs quorum.
"""

from __future__ import annotations

import bisect
import hashlib
import hmac
import secrets
import string
import time
from urllib.parse import urlsplit

from etcdsec.honeypot.v3 import errors
from etcdsec.honeypot.v3.call import Call
from etcdsec.proto import etcd_v3_pb2 as pb

MAX_AUTH_ENTRIES = 64
MAX_MEMBERS = 16
MAX_PERMISSIONS = 64
MAX_TOKENS = 1024  # issued tokens kept per namespace (oldest forgotten first)


# --- auth: reads ------------------------------------------------------------------------------------
def auth_status(call: Call, r: pb.AuthStatusRequest) -> pb.AuthStatusResponse:
    call.require_admin()
    auth = call.ns.auth
    return pb.AuthStatusResponse(header=call.header(), enabled=auth.enabled, authRevision=auth.revision)


def authenticate(call: Call, r: pb.AuthenticateRequest) -> pb.AuthenticateResponse:
    auth = call.ns.auth
    if not auth.enabled:
        raise errors.auth_not_enabled()
    want = auth.passwords.get(r.name)
    if want is None or not hmac.compare_digest(want, _hash(r.password)):
        raise errors.auth_failed()
    # etcd's simple token: 16 random letters, a dot, the raft index of the Authenticate request
    call.ns.raft_index += 1
    token = "".join(secrets.choice(string.ascii_letters) for _ in range(16)) + f".{call.ns.raft_index}"
    auth.tokens[token] = (r.name, auth.revision)
    while len(auth.tokens) > MAX_TOKENS:
        auth.tokens.popitem(last=False)
    return pb.AuthenticateResponse(header=call.header(), token=token)


def _hash(password: str) -> str:
    return hashlib.sha256(password.encode()).hexdigest()


def user_list(call: Call, r: pb.AuthUserListRequest) -> pb.AuthUserListResponse:
    call.require_admin()
    return pb.AuthUserListResponse(header=call.header(), users=sorted(call.ns.auth.users))


def role_list(call: Call, r: pb.AuthRoleListRequest) -> pb.AuthRoleListResponse:
    call.require_admin()
    return pb.AuthRoleListResponse(header=call.header(), roles=sorted(call.ns.auth.roles))


def user_get(call: Call, r: pb.AuthUserGetRequest) -> pb.AuthUserGetResponse:
    call.require_admin()
    roles = call.ns.auth.users.get(r.name)
    if roles is None:
        raise errors.user_not_found()
    return pb.AuthUserGetResponse(header=call.header(), roles=roles)


def role_get(call: Call, r: pb.AuthRoleGetRequest) -> pb.AuthRoleGetResponse:
    call.require_admin()
    perms = call.ns.auth.roles.get(r.role)
    if perms is None:
        raise errors.role_not_found()
    return pb.AuthRoleGetResponse(header=call.header(), perm=perms)


# --- auth: writes (kept, never enforced) ---------------------------------------------------------------
def _changed(call: Call) -> pb.HeaderOnlyResponse:
    call.ns.auth.revision += 1
    return pb.HeaderOnlyResponse(header=call.header())


def user_add(call: Call, r: pb.AuthUserAddRequest) -> pb.HeaderOnlyResponse:
    call.require_admin()
    auth = call.ns.auth
    if not r.name:
        raise errors.user_empty()
    if r.name in auth.users:
        raise errors.user_exists()
    if len(auth.users) >= MAX_AUTH_ENTRIES:
        raise errors.no_space()
    auth.users[r.name[:256]] = []
    if not (r.HasField("options") and r.options.no_password):
        auth.passwords[r.name[:256]] = _hash(r.password)
    return _changed(call)


def user_delete(call: Call, r: pb.AuthUserDeleteRequest) -> pb.HeaderOnlyResponse:
    call.require_admin()
    if call.ns.auth.users.pop(r.name, None) is None:
        raise errors.user_not_found()
    call.ns.auth.passwords.pop(r.name, None)
    return _changed(call)


def user_change_password(call: Call, r: pb.AuthUserChangePasswordRequest) -> pb.HeaderOnlyResponse:
    call.require_admin()
    if r.name not in call.ns.auth.users:
        raise errors.user_not_found()
    call.ns.auth.passwords[r.name] = _hash(r.password)
    return _changed(call)


def user_grant_role(call: Call, r: pb.AuthUserGrantRoleRequest) -> pb.HeaderOnlyResponse:
    call.require_admin()
    auth = call.ns.auth
    roles = auth.users.get(r.user)
    if roles is None:
        raise errors.user_not_found()
    if r.role != "root" and r.role not in auth.roles:
        raise errors.role_not_found()
    if r.role not in roles:
        bisect.insort(roles, r.role)
    return _changed(call)


def user_revoke_role(call: Call, r: pb.AuthUserRevokeRoleRequest) -> pb.HeaderOnlyResponse:
    call.require_admin()
    roles = call.ns.auth.users.get(r.name)
    if roles is None:
        raise errors.user_not_found()
    if r.role not in roles:
        raise errors.role_not_granted()
    roles.remove(r.role)
    return _changed(call)


def role_add(call: Call, r: pb.AuthRoleAddRequest) -> pb.HeaderOnlyResponse:
    call.require_admin()
    auth = call.ns.auth
    if not r.name:
        raise errors.role_empty()
    if r.name in auth.roles:
        raise errors.role_exists()
    if len(auth.roles) >= MAX_AUTH_ENTRIES:
        raise errors.no_space()
    auth.roles[r.name[:256]] = []
    return _changed(call)


def role_delete(call: Call, r: pb.AuthRoleDeleteRequest) -> pb.HeaderOnlyResponse:
    call.require_admin()
    auth = call.ns.auth
    if auth.roles.pop(r.role, None) is None:
        raise errors.role_not_found()
    for roles in auth.users.values():
        if r.role in roles:
            roles.remove(r.role)
    return _changed(call)


def role_grant_permission(call: Call, r: pb.AuthRoleGrantPermissionRequest) -> pb.HeaderOnlyResponse:
    call.require_admin()
    if not r.HasField("perm") and call.persona.major_minor >= (3, 5):
        raise errors.permission_not_given()
    perms = call.ns.auth.roles.get(r.name)
    if perms is None:
        raise errors.role_not_found()
    for p in perms:
        if p.key == r.perm.key and p.range_end == r.perm.range_end:
            p.permType = r.perm.permType
            return _changed(call)
    if len(perms) >= MAX_PERMISSIONS:
        raise errors.no_space()
    perms.append(pb.Permission(permType=r.perm.permType, key=r.perm.key, range_end=r.perm.range_end))
    perms.sort(key=lambda p: (p.key, p.range_end))
    return _changed(call)


def role_revoke_permission(call: Call, r: pb.AuthRoleRevokePermissionRequest) -> pb.HeaderOnlyResponse:
    call.require_admin()
    perms = call.ns.auth.roles.get(r.role)
    if perms is None:
        raise errors.role_not_found()
    for i, p in enumerate(perms):
        if p.key == r.key and p.range_end == r.range_end:
            del perms[i]
            return _changed(call)
    raise errors.permission_not_granted()


def auth_enable(call: Call, r: pb.AuthEnableRequest) -> pb.HeaderOnlyResponse:
    call.require_admin()
    auth = call.ns.auth
    if "root" not in auth.users:
        raise errors.root_user_missing()
    if "root" not in auth.users["root"]:
        raise errors.root_without_root_role()
    auth.enabled = True  # etcd does not bump the auth revision here (disable does)
    call.state.auth_switched(True)
    return pb.HeaderOnlyResponse(header=call.header())


def auth_disable(call: Call, r: pb.AuthDisableRequest) -> pb.HeaderOnlyResponse:
    call.require_admin()
    call.ns.auth.enabled = False
    call.state.auth_switched(False)
    return _changed(call)


# --- cluster ----------------------------------------------------------------------------------------
def member_list(call: Call, r: pb.MemberListRequest) -> pb.MemberListResponse:
    return pb.MemberListResponse(header=call.header(0), members=call.ns.members)


def _valid_urls(urls: list[str]) -> bool:
    if not urls:
        return False
    for url in urls:
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            return False
        if parts.scheme not in ("http", "https") or not parts.hostname or port is None or parts.path not in ("", "/"):
            return False
    return True


def _member(call: Call, member_id: int) -> pb.Member:
    for m in call.ns.members:
        if member_id == m.ID:
            return m
    raise errors.member_not_found()


def member_add(call: Call, r: pb.MemberAddRequest) -> pb.MemberAddResponse:
    urls = list(r.peerURLs)
    if not _valid_urls(urls):
        raise errors.member_urls_invalid()
    member_id = _member_id(call, urls)
    if any(member_id == m.ID for m in call.ns.members):
        raise errors.member_exists()
    if any(u in m.peerURLs for m in call.ns.members for u in urls):
        raise errors.peer_url_exists()
    if len(call.ns.members) >= MAX_MEMBERS:
        raise errors.too_many_requests()
    # Learners came with 3.4: before, isLearner is an unknown field and the member is a voter.
    learner = r.isLearner and call.persona.major_minor >= (3, 4)
    member = pb.Member(ID=member_id, peerURLs=urls, isLearner=learner)
    call.ns.members.append(member)
    call.ns.members.sort(key=lambda m: m.ID)  # etcd lists members by ID
    return pb.MemberAddResponse(header=call.header(0), member=member, members=call.ns.members)


def _member_id(call: Call, urls: list[str]) -> int:
    """etcd's computeMemberId: sha1 of the sorted peer URLs, the cluster token and the Unix second."""
    token = f"etcd-cluster-{call.state.ctx.identity.cluster_id:x}"
    digest = hashlib.sha1(("".join(sorted(urls)) + token + str(int(time.time()))).encode()).digest()
    return int.from_bytes(digest[:8], "big")


def member_remove(call: Call, r: pb.MemberRemoveRequest) -> pb.MembersResponse:
    member = _member(call, r.ID)
    if call.state.ctx.identity.member_id == member.ID:
        raise errors.not_enough_started_members()
    call.ns.members.remove(member)
    return pb.MembersResponse(header=call.header(0), members=call.ns.members)


def member_update(call: Call, r: pb.MemberUpdateRequest) -> pb.MembersResponse:
    member = _member(call, r.ID)
    if not _valid_urls(list(r.peerURLs)):
        raise errors.member_urls_invalid()
    del member.peerURLs[:]
    member.peerURLs.extend(r.peerURLs)
    return pb.MembersResponse(header=call.header(0), members=call.ns.members)


def member_promote(call: Call, r: pb.MemberPromoteRequest) -> pb.MembersResponse:
    member = _member(call, r.ID)
    if not member.isLearner:
        raise errors.member_not_learner()
    raise errors.learner_not_ready()  # an added learner never starts, so it never catches up


def move_leader(call: Call, r: pb.MoveLeaderRequest) -> pb.HeaderOnlyResponse:
    member = _member_or_none(call, r.targetID)
    if member is None or not member.clientURLs:
        if call.persona.major_minor < (3, 4):  # no ErrBadLeaderTransferee before 3.4: it waits forever
            raise errors.NoReply()
        raise errors.bad_leader_transferee()
    return pb.HeaderOnlyResponse(header=call.header())


def _member_or_none(call: Call, member_id: int) -> pb.Member | None:
    try:
        return _member(call, member_id)
    except errors.V3Error:
        return None
