"""One v3 call in progress: the state, the caller's namespace, and what came with the request."""

from __future__ import annotations

from dataclasses import dataclass

from etcdsec.honeypot.context import Persona, Session
from etcdsec.honeypot.v3 import errors
from etcdsec.honeypot.v3.proto import etcd_v3_pb2 as pb
from etcdsec.honeypot.v3.state import Namespace, V3State


@dataclass
class Call:
    state: V3State
    ns: Namespace
    session: Session | None
    persona: Persona
    has_token: bool = False  # a `token`/`authorization` metadata value came with the call

    def header(self, revision: int | None = None) -> pb.ResponseHeader:
        return self.state.header(self.ns.store.revision if revision is None else revision)

    def check_token(self) -> None:
        """etcd looks a token up even with auth off; no token is valid here, as none was issued."""
        if self.has_token:
            raise errors.invalid_token()


