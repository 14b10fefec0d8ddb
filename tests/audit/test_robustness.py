"""Whatever a config file or command line holds, the audit reads it without crashing."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from etcdsec.audit.engine import audit
from etcdsec.audit.envfile import parse_env_file
from etcdsec.audit.etcdflags import env_to_flag, flag_to_env, parse_argv
from etcdsec.audit.model import Origin
from etcdsec.audit.shellcmd import find_invocation
from etcdsec.audit.systemd import Unit, apply_unit_file, exec_words

words = st.lists(st.text(max_size=30), max_size=12)


@settings(max_examples=200, deadline=None)
@given(words)
def test_any_argv_parses_to_named_settings(argv: list[str]) -> None:
    parsed = parse_argv([(w, Origin(process="p")) for w in argv])
    assert all(s.name and "=" not in s.name for s in parsed.settings)


@settings(max_examples=200, deadline=None)
@given(st.from_regex(r"[a-z][a-z0-9]*(-[a-z0-9]+){0,4}", fullmatch=True))
def test_flag_env_names_round_trip(flag: str) -> None:
    assert env_to_flag(flag_to_env(flag)) == flag


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_any_text_as_env_file_unit_or_script(text: str) -> None:
    for entry in parse_env_file(text):
        assert entry.key and entry.line >= 1
    unit = Unit("etcd.service")
    apply_unit_file(unit, Path("u"), "[Service]\n" + text)
    if unit.exec_start is not None:
        exec_words(unit.exec_start.value, {"A": "x y"})
    find_invocation(text, "etcd")


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(["etc/etcd/etcd.conf.yml", "etc/kubernetes/manifests/etcd.yaml", "etc/default/etcd",
                        "etc/systemd/system/etcd.service"]),
       st.one_of(st.text(max_size=200), st.binary(max_size=200).map(lambda b: b.decode("latin-1"))))
def test_any_content_at_a_known_place_is_audited_or_reported(rel: str, content: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / rel
        path.parent.mkdir(parents=True)
        path.write_text(content, encoding="utf-8", errors="surrogateescape")
        report = audit([Path(tmp)])
    assert all(f.id and f.severity for f in report.findings)


def test_yaml_alias_bombs_stay_small(tmp_path: Path) -> None:
    config = tmp_path / "etc/etcd/etcd.conf.yml"
    config.parent.mkdir(parents=True)
    lines = ["a: &a [x, x, x, x, x, x, x, x, x]"]
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 9) + "]")
    config.write_text("\n".join(lines) + "\nname: *i\n")  # 9**9 leaves if expanded
    report = audit([tmp_path])
    (etcd,) = report.instances
    assert "excessive aliasing" in etcd["incomplete"] and "name" not in etcd["settings"]  # as Go refuses it
    (source,) = [s for s in report.sources if s.path.endswith("etcd.conf.yml")]
    assert source.status == "unparsable" and "excessive aliasing" in source.detail
