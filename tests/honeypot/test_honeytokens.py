"""Planted credentials are unique per deployment and their reuse raises `honeytoken.used`."""

from __future__ import annotations

import base64
import json
import re
import urllib.request
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from etcdsec.honeypot.context import EventSink, Honeytokens
from etcdsec.honeypot.core.bait import kubernetes_bait, load_seed_file


def test_bait_is_stable_per_seed_and_unique_across_deployments() -> None:
    now = datetime.now(UTC)
    a, again, other = kubernetes_bait("seed-a", now), kubernetes_bait("seed-a", now), kubernetes_bait("seed-b", now)
    assert a.tokens == again.tokens and a.keys == again.keys
    assert not set(a.tokens) & set(other.tokens)
    labels = " ".join(a.tokens.values())
    for kind in ("serviceaccount-token", "registry-password", "cloud-access-key-id", "cloud-secret-key"):
        assert kind in labels
    keys = [k.decode() for k, _ in a.keys]
    assert any(k.startswith("/registry/secrets/kube-system/") for k in keys)
    assert any(k.startswith("/registry/namespaces/") for k in keys) and any("/pods/" in k for k in keys)
    # every token is really in the served data (base64 inside the Secret, as Kubernetes stores it)
    blob = b"\n".join(v for _, v in a.keys)
    finder = Honeytokens(EventSink("s"), a.tokens)
    assert set(finder.find(blob)) == set(a.tokens.values())


def test_seed_file_replaces_the_bait(tmp_path) -> None:
    seed = tmp_path / "seed.yaml"
    seed.write_text("keys:\n  /config/db: {password: hunter2hunter2}\n  /plain: text\n"
                    "honeytokens:\n  hunter2hunter2: db-password\n")
    bait = load_seed_file(seed)
    assert dict(bait.keys)[b"/plain"] == b"text" and bait.tokens == {"hunter2hunter2": "db-password"}


def test_stolen_key_reused_against_the_sensor_raises_an_event(hp33) -> None:
    """Read the fake AWS key over v2, then send it back in a header: one honeytoken.used event."""
    raw = urllib.request.urlopen(f"{hp33.url}/v2/keys/registry/secrets/prod/backup-s3", timeout=5).read()
    secret = json.loads(json.loads(raw)["node"]["value"])
    key_id = base64.b64decode(secret["data"]["AWS_ACCESS_KEY_ID"]).decode()
    assert not hp33.memory.of("honeytoken.used")  # reading the bait is not a use
    auth = {"Authorization": f"AWS4-HMAC-SHA256 Credential={key_id}/x"}
    req = urllib.request.Request(f"{hp33.url}/v2/keys/x", headers=auth)
    try:
        urllib.request.urlopen(req, timeout=5)
    except urllib.error.HTTPError:
        pass
    used = hp33.memory.of("honeytoken.used")
    assert len(used) == 1 and used[0]["token"] == "cloud-access-key-id:prod/backup-s3"
    assert used[0]["src_ip"] == "127.0.0.1" and key_id not in json.dumps(used)


@settings(max_examples=300, deadline=None)
@given(tokens=st.lists(st.text("abc123", min_size=8, max_size=14), min_size=1, max_size=8, unique=True),
       data=st.text("abc123xyz", max_size=80))
def test_trie_matcher_finds_what_a_flat_longest_first_alternation_finds(tokens: list[str], data: str) -> None:
    finder = Honeytokens(EventSink("s"), {t: f"label-{t}" for t in tokens})
    flat = re.compile(b"|".join(re.escape(f) for f in sorted(finder._forms, key=len, reverse=True)))
    expected: list[str] = []
    for m in flat.finditer(data.encode()):
        if finder._forms[m.group(0)] not in expected:
            expected.append(finder._forms[m.group(0)])
    assert finder.find(data.encode()) == expected
    for token in tokens:  # and each token alone is found wherever it sits
        assert f"label-{token}" in finder.find(f"xx{token}yy".encode())
