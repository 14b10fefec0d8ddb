"""The field corpus: what the field's own checks and attack tools send, replayed against real etcd
3.4.23 / 3.5.1 and the honeypot side by side (tests/support/corpus/field.yaml, run by
tests/support/fidelity_field.py on one fresh pair of servers per persona)."""

from __future__ import annotations

import pytest

from tests.support import fidelity_field
from tests.support.fidelity_field import CtlCase


def test_field_corpus_names_its_tools_and_sources() -> None:
    cases = fidelity_field.load_field()
    assert len(cases) >= 120
    assert all(c.tool.strip() and c.source.strip() for c in cases)
    tools = " ".join(c.tool for c in cases).lower()
    for tool in ("metasploit", "kube-hunter", "nuclei", "cdk", "nmap", "etcdctl", "etcd3gw", "python-etcd",
                 "zgrab2", "etcdhelper", "pipelining", "http/1.0", "curl"):
        assert tool in tools, tool
    kinds = {type(c.case).__name__ for c in cases}
    assert kinds == {"Case", "GrpcCase", "CtlCase"}


def test_etcdctl_output_masking_keeps_what_is_not_per_deployment() -> None:
    case = CtlCase(id="t", etcdctl=["member", "list", "-w", "table"])
    table = ("+------------------+---------+------+--------------------------+\n"
             "| 8e9e05c52164694d | started | a    | http://{ip}:2380 |\n")
    short = fidelity_field._ctl_text(table.replace("{ip}", "127.0.0.2"), "127.0.0.2", case)
    long = fidelity_field._ctl_text(table.replace("{ip}", "127.100.200.250").replace("-+\n", "----+\n", 1),
                                    "127.100.200.250", case)
    assert short == long  # padding and ids are per deployment
    renamed = fidelity_field._ctl_text(table.replace("{ip}", "127.0.0.2").replace("| a ", "| b "), "127.0.0.2", case)
    assert renamed != short  # the member name is not


@pytest.mark.parametrize("version", ["3.3", "3.4", "3.5"])
def test_field_corpus_matches_real_etcd(version: str) -> None:
    """Every case matches, but the known ones (named in the corpus and the docs), which still differ:
    once one is closed, its `known` note goes."""
    outcomes = fidelity_field.run([version])
    assert len(outcomes) >= 150
    known = fidelity_field.known_differences(version=version)
    assert [(o.id, o.diffs) for o in outcomes if not o.match and o.id.split("@")[0] not in known] == []
    assert {o.id.split("@")[0] for o in outcomes if not o.match} == set(known)
