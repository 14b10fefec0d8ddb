"""A deployment's identity (cluster and member ids, start time, honeytoken seed): random once, then kept
in the state file so a restart looks like the same etcd member."""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from etcdsec.errors import UserError


def _random_id() -> int:
    return secrets.randbits(64) | (1 << 60)  # etcd ids are full-width uint64; avoid tiny ones


@dataclass
class Identity:
    """Per-deployment ids: random once, then persisted so a restart does not change them."""

    cluster_id: int
    member_id: int
    member_name: str
    start_time: datetime
    peer_urls: list[str]
    client_urls: list[str]
    revision_base: int
    raft_term: int
    raft_index_base: int = 0
    secret_seed: str = ""  # seeds the honeytokens of this deployment

    @classmethod
    def create(cls, member_name: str, client_urls: list[str], peer_urls: list[str]) -> Identity:
        rng = secrets.SystemRandom()
        return cls(
            cluster_id=_random_id(),
            member_id=_random_id(),
            member_name=member_name,
            start_time=datetime.now(UTC).replace(microsecond=0),
            peer_urls=peer_urls,
            client_urls=client_urls,
            revision_base=rng.randint(20_000, 4_000_000),
            raft_term=rng.randint(2, 40),
            raft_index_base=rng.randint(30_000, 6_000_000),
            secret_seed=secrets.token_hex(16),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "cluster_id": self.cluster_id, "member_id": self.member_id, "member_name": self.member_name,
            "start_time": self.start_time.isoformat(), "peer_urls": self.peer_urls,
            "client_urls": self.client_urls, "revision_base": self.revision_base,
            "raft_term": self.raft_term, "raft_index_base": self.raft_index_base,
            "secret_seed": self.secret_seed,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Identity:
        data = dict(data)
        data["start_time"] = datetime.fromisoformat(data["start_time"])
        return cls(**data)

    @classmethod
    def load_or_create(cls, state_file: Path | None, member_name: str, client_urls: list[str],
                       peer_urls: list[str]) -> Identity:
        """Read the state file when present (keeping ids), else create and write it.

        The member name and URLs follow the current command line; ids, start time and seed persist.
        """
        if state_file is not None and state_file.exists():
            try:
                ident = cls.from_dict(json.loads(state_file.read_text()))
            except (ValueError, KeyError, TypeError) as exc:
                raise UserError(f"cannot read honeypot state file {state_file}: {exc}") from None
            ident.member_name, ident.client_urls, ident.peer_urls = member_name, client_urls, peer_urls
        else:
            ident = cls.create(member_name, client_urls, peer_urls)
        if state_file is not None:
            try:
                tmp = state_file.with_suffix(state_file.suffix + ".tmp")
                tmp.write_text(json.dumps(ident.to_dict(), indent=1))
                os.replace(tmp, state_file)
            except OSError as exc:
                raise UserError(f"cannot write honeypot state file {state_file}: {exc}") from None
        return ident
