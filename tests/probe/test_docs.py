from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_findings_doc_matches_the_catalogue() -> None:
    spec = importlib.util.spec_from_file_location("gen", ROOT / "scripts" / "gen_findings_doc.py")
    assert spec and spec.loader
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    assert (ROOT / "docs" / "findings.md").read_text() == gen.render(), "run scripts/gen_findings_doc.py"


def test_every_rule_has_a_catalogue_entry() -> None:
    from etcdsec.probe.catalogue import BY_ID
    from etcdsec.probe.verdict import RULES

    assert all(fid in BY_ID for fid, _a, _e in RULES)


def test_probe_output_follows_the_published_schema(etcd_factory) -> None:
    import json

    import jsonschema

    from etcdsec.probe.api import probe_sync
    from etcdsec.testbed.etcd import EtcdConfig

    schema = json.loads((ROOT / "docs" / "schemas" / "probe-result.schema.json").read_text())
    s = etcd_factory("schema-open", EtcdConfig(version="3.5", enable_v2=True, tls=True))
    for target in (s.client_addr, f"{s.ip}:2380", "127.0.0.1:1"):
        jsonschema.validate(probe_sync(target).to_dict(), schema)
