"""The decision, as a state machine fed one observed connection at a time (no I/O).

Learning: every source seen is added to the baseline. Afterwards a connection from a source outside it
opens one triage card (the one event); later connections of that source to that endpoint only count on it.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from etcdsec.monitor.connections.baseline import Baseline, BaselineError
from etcdsec.monitor.connections.card import build_card, count_again
from etcdsec.monitor.connections.model import Connection, Endpoint, Process

MAX_CARDS = 10_000  # past this many open cards new sources are only counted (a spoofed SYN flood is not 1e6 events)


@dataclass
class Decision:
    kind: str  # ignored | ours | learned | known | anomalous | counted | overflow
    endpoint: Endpoint | None = None
    card: dict[str, Any] | None = None


class Tracker:
    def __init__(self, baseline: Baseline, endpoints: Sequence[Endpoint], learn_until: float,
                 exposure_of: Callable[[Endpoint], dict[str, Any]],
                 org_of: Callable[[str], tuple[str, str] | None] = lambda ip: None,
                 process_of: Callable[[Connection], Process | None] = lambda conn: None,
                 own_pid: int | None = None) -> None:
        self.baseline = baseline
        self.endpoints = list(endpoints)
        self.learn_until = learn_until
        self.exposure_of = exposure_of
        self.org_of = org_of
        self.process_of = process_of  # looked up only for a connection that would add a source or a card
        self.own_pid = os.getpid() if own_pid is None else own_pid  # our own probes are not visitors
        # (source address, port) -> (start, end) of our own probes of that endpoint: a connection in that
        # window whose process cannot be seen (closed before a poll found it) is taken for ours
        self.probing: dict[tuple[str, int], tuple[float, float]] = {}
        self.cards: dict[tuple[str, str], dict[str, Any]] = {}
        self.counts = {"connections": 0, "learned": 0, "known": 0, "anomalous": 0, "counted": 0, "overflow": 0,
                       "ours": 0}

    def endpoint_for(self, ip: str, port: int) -> Endpoint | None:
        # an exact address before a wildcard listener on the same port
        exact = [e for e in self.endpoints if e.matches(ip, port) and not e.wildcard]
        return exact[0] if exact else next((e for e in self.endpoints if e.matches(ip, port)), None)

    def learning(self, now: float) -> bool:
        return now < self.learn_until

    def observe(self, conn: Connection) -> Decision:
        endpoint = self.endpoint_for(conn.dst_ip, conn.dst_port)
        if endpoint is None:
            return Decision("ignored")
        self.counts["connections"] += 1
        if self.learning(conn.time):
            if (conn.src_ip, endpoint.port) not in self.baseline.entries or conn.process is not None:
                conn = self._with_process(conn)
                if self._ours(conn):
                    return self._count(Decision("ours", endpoint))
            try:
                self.baseline.learn(conn, endpoint)
            except BaselineError:  # full: the source is neither learnt nor reported
                return self._count(Decision("overflow", endpoint))
            return self._count(Decision("learned", endpoint))
        if self.baseline.known(conn.src_ip, endpoint.port):
            return self._count(Decision("known", endpoint))
        key = (conn.src_ip, endpoint.text)
        card = self.cards.get(key)
        if card is not None:
            count_again(card, conn)
            return self._count(Decision("counted", endpoint, card))
        if len(self.cards) >= MAX_CARDS:
            return self._count(Decision("overflow", endpoint))
        conn = self._with_process(conn)
        if self._ours(conn):
            return self._count(Decision("ours", endpoint))
        context = self.baseline.context(conn, endpoint)
        card = self.cards[key] = build_card(conn, endpoint, self.exposure_of(endpoint), context,
                                            org=self.org_of(conn.src_ip))
        return self._count(Decision("anomalous", endpoint, card))

    def _with_process(self, conn: Connection) -> Connection:
        if conn.process is not None:
            return conn
        process = self.process_of(conn)
        return conn if process is None else dataclasses.replace(conn, process=process)

    def _ours(self, conn: Connection) -> bool:
        if conn.process is not None:
            return conn.process.pid == self.own_pid
        start, end = self.probing.get((conn.src_ip, conn.dst_port), (0.0, 0.0))
        return start <= conn.time <= end

    def _count(self, decision: Decision) -> Decision:
        self.counts[decision.kind] += 1
        return decision
