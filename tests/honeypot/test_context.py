"""The shared honeypot context: personas load from data, identity persists, tokens are found."""

from __future__ import annotations

import base64
import json

import pytest

from etcdsec.errors import UserError
from etcdsec.honeypot.context import (
    EventSink,
    Honeytokens,
    Identity,
    Session,
    load_persona,
    persona_names,
)
from tests.support.memory_events import MemoryEvents


def test_every_issue_persona_exists() -> None:
    names = persona_names()
    for wanted in ("3.5.1", "3.4.23", "3.2.22"):
        assert wanted in names
    assert any(n.startswith("3.3.") for n in names) and any(n.startswith("2.3.") for n in names)


def test_persona_prefix_rewrites_follow_the_version() -> None:
    assert load_persona("3.5").v3_path("/v3beta/kv/range") == "/v3/kv/range"
    assert load_persona("3.5.1").v3_path("/v3alpha/kv/range") is None
    assert load_persona("3.4.23").v3_path("/v3alpha/kv/range") is None  # measured: 404 on 3.4.23
    assert load_persona("3.3.27").v3_path("/v3alpha/kv/range") == "/v3/kv/range"
    assert load_persona("3.2.22").v3_path("/v3/kv/range") is None
    with pytest.raises(UserError, match="unknown persona"):
        load_persona("9.9")


def test_identity_is_random_per_deployment_and_stable_across_restarts(tmp_path) -> None:
    state = tmp_path / "state.json"
    first = Identity.load_or_create(state, "kube-master-1", ["http://127.0.0.1:2379"], [])
    again = Identity.load_or_create(state, "kube-master-2", ["http://127.0.0.1:2379"], [])
    other = Identity.load_or_create(tmp_path / "other.json", "kube-master-1", [], [])
    assert (again.cluster_id, again.member_id, again.start_time) == (first.cluster_id, first.member_id,
                                                                      first.start_time)
    assert again.member_name == "kube-master-2"
    assert other.cluster_id != first.cluster_id and other.secret_seed != first.secret_seed
    assert json.loads(state.read_text())["member_id"] == first.member_id
    state.write_text("{broken")
    with pytest.raises(UserError, match="state file"):
        Identity.load_or_create(state, "x", [], [])


def test_events_carry_cowrie_fields_and_the_prefix() -> None:
    mem = MemoryEvents()
    sink = EventSink("sensor-a", [mem])
    sess = Session.new("::ffff:127.0.0.9", 5555, "127.0.0.1", 2379)
    sink.emit("http.request", sess, method="GET", path="/version", missing=None)
    sink.emit("etcdsec.session.closed", sess)
    first, second = mem.events
    assert first["eventid"] == "etcdsec.http.request" and second["eventid"] == "etcdsec.session.closed"
    assert first["src_ip"] == "127.0.0.9" and first["src_port"] == 5555 and first["dst_port"] == 2379
    assert first["sensor"] == "sensor-a" and first["session"] == sess.id and "missing" not in first
    assert first["timestamp"].endswith("Z")


def test_a_failing_output_does_not_stop_the_others() -> None:
    mem = MemoryEvents()

    def broken(_event: dict) -> None:
        raise OSError("disk full")

    sink = EventSink("s", [broken, mem])
    sink.emit("session.connect", None)
    assert len(mem.events) == 1 and sink.output_errors == 1


def test_honeytokens_match_raw_and_base64_forms_and_never_log_the_value() -> None:
    mem = MemoryEvents()
    tokens = Honeytokens(EventSink("s", [mem]), {"AKIAHONEYTOKEN0001": "aws-access-key"})
    tokens.check(None, b"GET /?k=AKIAHONEYTOKEN0001")
    for shift in (b"", b"a", b"ab"):
        tokens.check(None, base64.b64encode(shift + b"AKIAHONEYTOKEN0001 tail"))
    tokens.check(None, b"AKIAHONEYTOKEN0002")
    used = mem.of("honeytoken.used")
    assert len(used) == 4 and {e["token"] for e in used} == {"aws-access-key"}
    assert "AKIAHONEYTOKEN0001" not in json.dumps(mem.events)
