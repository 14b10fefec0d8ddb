"""One v3 call in progress: the state, the caller's namespace, and the auth token it carried.

Auth follows etcd's order of checks: a token that came with the call is looked up first (even with
auth off, where none is valid); once an attacker has enabled auth, calls need a token from
Authenticate, tokens die when the auth store changes, and keys need a role permission (or root).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from etcdsec.honeypot.core.persona import Persona
from etcdsec.honeypot.core.session import Session
from etcdsec.honeypot.v3 import errors
from etcdsec.honeypot.v3.mvcc import range_end_of
from etcdsec.honeypot.v3.state import Namespace, V3State
from etcdsec.proto import etcd_v3_pb2 as pb

READ, WRITE = pb.Permission.READ, pb.Permission.WRITE


@dataclass
class Call:
    state: V3State
    ns: Namespace
    session: Session | None
    persona: Persona
    token: str | None = None  # `token` / `authorization` metadata

    @property
    def has_token(self) -> bool:
        return self.token is not None

    def header(self, revision: int | None = None) -> pb.ResponseHeader:
        return self.state.header(self.ns.store.revision if revision is None else revision)

    def check_token(self) -> tuple[str, int] | None:
        """etcd's AuthInfoFromCtx: (user, auth revision) for a token we issued; a token we did not
        issue is invalid (always so while auth is off)."""
        if self.token is None:
            return None
        info = self.ns.auth.tokens.get(self.token)
        if info is None:
            raise errors.invalid_token()
        return info

    def _user(self) -> str | None:
        """The user a permission check runs as, or None when auth is off."""
        info = self.check_token()
        auth = self.ns.auth
        if not auth.enabled:
            return None
        if info is None:
            raise errors.user_empty()
        user, rev = info
        if rev < auth.revision:
            raise errors.auth_old_revision()
        if user not in auth.users:
            raise errors.permission_denied()
        return user

    def require_admin(self) -> None:
        user = self._user()
        if user is not None and "root" not in self.ns.auth.users[user]:
            raise errors.permission_denied()

    def require(self, kind: int, key: bytes, range_end: bytes = b"") -> None:
        """READ or WRITE on [key, range_end) as a role grants it (root may do anything)."""
        if self.token is None and not self.ns.auth.enabled:
            return  # what _user() finds then: nobody to check, open etcd (the common call)
        user = self._user()
        if user is None:
            return
        auth = self.ns.auth
        roles = auth.users[user]
        if "root" in roles:
            return
        spans = [(p.key, range_end_of(p.key, p.range_end)) for r in roles for p in auth.roles.get(r, [])
                 if p.permType in (kind, pb.Permission.READWRITE)]
        if not _covered(key, range_end_of(key, range_end), spans):
            raise errors.permission_denied()


def _covered(key: bytes, end: bytes | None, spans: list[tuple[bytes, bytes | None]]) -> bool:
    """Whether the permission spans cover a single key (end None) or the interval [key, end)."""
    if end is None:
        return any(k == key if e is None else (key >= k and (e == b"" or key < e)) for k, e in spans)
    pos = key
    for k, e in sorted((k, e) for k, e in spans if e is not None):  # single-key grants cannot cover a range
        if k > pos:
            break
        if e == b"":
            return True
        if e > pos:
            pos = e
        if end != b"" and pos >= end:
            return True
    return False


def watch_permit(make_call: Callable[[], Call]) -> Callable[[bytes, bytes, int], tuple[str, int] | None]:
    """etcd's isWatchPermitted for one watch stream: (key, range_end, requested id) -> None when the
    caller may read it, else (cancel_reason, watch_id) as the persona's release refuses. A fresh Call
    per watch: auth may have changed since the stream opened."""
    def permit(key: bytes, range_end: bytes, watch_id: int) -> tuple[str, int] | None:
        call = make_call()
        try:
            call.require(READ, key, range_end)
        except errors.V3Error as err:
            return errors.watch_refusal(call.persona.major_minor, err, watch_id)
        return None

    return permit
