"""The triage card of an anomalous source: who, what, when, baseline context, severity with reasons, actions.

Pure data: built from an observed connection, the watched endpoint, its latest probe verdict and the
baseline. The severity rules are a table, each with the reason it adds to the card.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from etcdsec.model import Severity
from etcdsec.monitor.connections.baseline import process_label
from etcdsec.monitor.connections.model import Connection, Endpoint, address_class
from etcdsec.output import printable

MAX_TEXT = 200  # bytes of any outside string (reverse DNS, organisation, process name) kept on a card


def iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def clip(text: str | None) -> str | None:
    return None if text is None else text[:MAX_TEXT]


@dataclass(frozen=True)
class Rule:
    applies: Callable[[dict[str, Any]], bool]
    change: int  # severity steps up (+) or down (-)
    reason: Callable[[dict[str, Any]], str]


def _exposed(card: dict[str, Any]) -> bool:
    return bool(card["exposure"].get("exposed"))


def _needs_cert(card: dict[str, Any]) -> bool:
    return bool(card["exposure"].get("client_cert_required")) and not _exposed(card)


# Applied in order after the starting point (medium on a client port, high on a peer port).
RULES: tuple[Rule, ...] = (
    Rule(_exposed, +1, lambda c: f"the endpoint is exposed (probe verdict {c['exposure'].get('severity')}: "
                                 f"{', '.join((c['exposure'].get('findings') or [])[:3]) or 'open'}): "
                                 "this source can read keys without credentials"),
    Rule(_needs_cert, -1, lambda c: "the endpoint requires a client certificate its CA signed"),
    Rule(lambda c: c["src_class"] == "public", +1,
         lambda c: "public source address: the connection comes from outside your networks"),
)


def base_severity(role: str) -> tuple[Severity, str]:
    if role == "peer":
        return Severity.high, ("unknown source on the peer port: only cluster members belong there, and etcd "
                               "also serves its whole v3 API on it")
    return Severity.medium, "unknown source on the client port: it can use the etcd API as far as auth lets it"


def judge(card: dict[str, Any]) -> tuple[str, list[str]]:
    severity, first = base_severity(card["role"])
    reasons = [first]
    if card["exposure"].get("severity") is None:
        reasons.append("the endpoint's exposure is unknown (not probed yet)")
    elif card["exposure"].get("reachable") is False:
        reasons.append("the endpoint did not answer its last probe: its exposure is unknown")
    for rule in RULES:
        if rule.applies(card):
            severity = Severity(min(Severity.critical, max(Severity.low, severity + rule.change)))
            reasons.append(rule.reason(card))
    return severity.name, reasons


def actions(card: dict[str, Any]) -> list[str]:
    src, port, v6 = card["src_ip"], card["dst_port"], ":" in card["src_ip"]
    out: list[str] = []
    if card["src_class"] == "loopback":
        out.append(f"the source is this host: find the process with `ss -tnp 'sport = :{card['src_port']}'` "
                   "(or in the card's process field) and why it talks to etcd")
    else:
        tables, family = ("ip6tables", "ip6") if v6 else ("iptables", "ip")
        out.append(f"block it: `{tables} -I INPUT -p tcp -s {src} --dport {port} -j DROP` "
                   f"(nftables: `nft insert rule inet filter input {family} saddr {src} tcp dport {port} drop`)")
    if card["role"] == "peer":
        out.append("compare with `etcdctl member list`: a peer-port connection from an address that is no member's "
                   "peer URL is not cluster traffic; require peer TLS with --peer-client-cert-auth")
    out.append(f"search etcd's log for {src} from {card['first_seen']} on (etcd names the remote address of "
               "rejected requests and TLS failures, and of every request at --log-level=debug)")
    out.append(f"check the kube-apiserver audit log from {card['first_seen']} on for changes you cannot explain: "
               "what a client does in etcd directly bypasses the API server and leaves no audit entry there")
    if _exposed(card):
        out.append("the endpoint was readable without credentials: rotate what it stores (Kubernetes Secrets, "
                   "service-account and bootstrap tokens, TLS keys) and turn on --client-cert-auth or v3 auth")
    elif _needs_cert(card):
        out.append("find which client certificate it presented (etcd logs the certificate's CN on "
                   "rejections); revoke and reissue it if no known client should hold it")
    return out


def build_card(conn: Connection, endpoint: Endpoint, exposure: dict[str, Any], context: dict[str, Any],
               org: tuple[str, str] | None = None, rdns: str | None = None) -> dict[str, Any]:
    card: dict[str, Any] = {
        "src_ip": conn.src_ip, "src_port": conn.src_port, "src_class": address_class(conn.src_ip),
        "org": clip(org[1]) if org else None, "asn": org[0] if org else None, "rdns": clip(rdns),
        "process": clip(process_label(conn)), "pid": conn.process.pid if conn.process else None,
        "dst_ip": conn.dst_ip, "dst_port": conn.dst_port, "role": endpoint.role, "endpoint": endpoint.text,
        "exposure": exposure,
        "first_seen": iso(conn.time), "last_seen": iso(conn.time), "count": 1,
        "baseline": context,
    }
    card["severity"], card["reasons"] = judge(card)
    card["actions"] = actions(card)
    return card


def count_again(card: dict[str, Any], conn: Connection) -> None:
    card["count"] += 1
    card["last_seen"] = iso(conn.time)


def render_text(card: dict[str, Any]) -> str:
    """The card as a few terminal lines; outside strings (a process name, a PTR record) shown inert."""

    def s(text: object) -> str:
        return printable(str(text), limit=2000)

    who = f"{card['src_ip']}:{card['src_port']} ({card['src_class']}"
    who += f", {card['asn']} {card['org']}" if card.get("org") else ""
    who += f", {card['rdns']}" if card.get("rdns") else ""
    who += f", process {card['process']}" if card.get("process") else ""
    exp = card["exposure"]
    verdict = "unknown" if exp.get("severity") is None or exp.get("reachable") is False else (
        f"{'exposed' if exp.get('exposed') else 'not exposed'}, {exp.get('severity')}")
    base = card["baseline"]
    lines = [
        f"[{card['severity']}] unexpected connection to {card['endpoint']} ({card['role']} port)",
        f"  who:      {s(who)})",
        f"  what:     {card['dst_ip']}:{card['dst_port']}, endpoint verdict: {s(verdict)}",
        f"  when:     first {card['first_seen']}, last {card['last_seen']}, {card['count']} connection(s)",
        f"  baseline: {base['known_sources']} known source(s) on this port; nearest "
        f"{', '.join(base['nearest_known']) or '-'}; new: {s(', '.join(base['new']))}",
    ]
    lines += [f"  why:      {s(r)}" for r in card["reasons"]]
    lines += [f"  do:       {s(a)}" for a in card["actions"]]
    return "\n".join(lines)
