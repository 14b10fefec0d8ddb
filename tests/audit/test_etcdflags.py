"""etcd's own rules for flags, ETCD_* variables and --config-file, as the audit applies them."""

from __future__ import annotations

from etcdsec.audit.etcdflags import (
    env_to_flag,
    flag_to_env,
    parse_argv,
    resolve,
    settings_from_config,
    settings_from_env,
)
from etcdsec.audit.model import Origin
from etcdsec.audit.yamllines import load_all

HERE = Origin("unit", 1)


def _argv(*words: str):
    return parse_argv([(w, HERE) for w in words])


def _effective(flags=(), env=(), config_text: str | None = None) -> dict[str, str]:
    parsed = _argv(*flags)
    env_settings = settings_from_env([(k, v, Origin("env", 1)) for k, v in env])
    config = settings_from_config(load_all(config_text)[0], "cfg") if config_text is not None else None
    return {k: s.value for k, s in resolve(parsed.settings, env_settings, config).settings.items()}


def test_flag_and_env_names_map_both_ways() -> None:
    assert flag_to_env("peer-client-cert-auth") == "ETCD_PEER_CLIENT_CERT_AUTH"
    assert env_to_flag("ETCD_PEER_CLIENT_CERT_AUTH") == "peer-client-cert-auth"
    assert env_to_flag("ETCDCTL_ENDPOINTS") is None
    assert env_to_flag("PATH") is None


def test_bare_boolean_flag_is_true_and_does_not_take_the_next_word() -> None:
    assert _effective(["--auto-tls", "--name", "n1"]) == {"auto-tls": "true", "name": "n1"}
    parsed = _argv("--auto-tls", "false")  # Go: `false` is a stray argument, etcd refuses to start
    assert parsed.settings[0].value == "true"
    assert "not a valid flag" in parsed.errors[0]


def test_single_dash_and_space_separated_values_are_flags_too() -> None:
    assert _effective(["-listen-client-urls", "http://0.0.0.0:2379", "-client-cert-auth=false"]) == {
        "listen-client-urls": "http://0.0.0.0:2379", "client-cert-auth": "false"}


def test_the_last_of_a_repeated_flag_wins() -> None:
    assert _effective(["--client-cert-auth=true", "--client-cert-auth=false"])["client-cert-auth"] == "false"


def test_invalid_boolean_is_reported() -> None:
    assert "invalid boolean" in _argv("--client-cert-auth=yes").errors[0]


def test_env_applies_when_no_flag_and_empty_env_is_skipped() -> None:
    got = _effective(env=[("ETCD_CLIENT_CERT_AUTH", "true"), ("ETCD_CORS", ""), ("HOME", "/root")])
    assert got == {"client-cert-auth": "true"}


def test_flag_shadowing_env_is_a_start_failure() -> None:
    parsed = _argv("--enable-pprof=false")
    env = settings_from_env([("ETCD_ENABLE_PPROF", "true", HERE)])
    res = resolve(parsed.settings, env, None)
    assert res.settings["enable-pprof"].value == "false"
    assert "conflicting environment variable" in res.errors[0]


def test_config_file_replaces_every_flag_and_variable() -> None:
    got = _effective(
        flags=["--config-file=/etc/etcd/etcd.conf.yml", "--listen-client-urls=http://0.0.0.0:2379"],
        env=[("ETCD_ENABLE_PPROF", "true")],
        config_text="listen-client-urls: https://10.0.0.1:2379\n")
    assert got == {"listen-client-urls": "https://10.0.0.1:2379"}


def test_config_file_from_env_also_replaces_flags() -> None:
    parsed = _argv("--enable-pprof")
    env = settings_from_env([("ETCD_CONFIG_FILE", "/c.yml", HERE)])
    config = settings_from_config(load_all("name: x\n")[0], "cfg")
    res = resolve(parsed.settings, env, config)
    assert res.config_file is not None and res.config_file.via == "env"
    assert set(res.settings) == {"name"}
    assert [i.setting.name for i in res.ignored] == ["enable-pprof"]


def test_yaml_transport_blocks_flatten_to_flag_names_with_lines() -> None:
    text = ("name: a\n"
            "client-transport-security:\n"
            "  cert-file: /s.crt\n"
            "  client-cert-auth: true\n"
            "peer-transport-security:\n"
            "  trusted-ca-file: /ca.crt\n"
            "  auto-tls: false\n"
            "cipher-suites: [TLS_A, TLS_B]\n")
    settings, ignored = settings_from_config(load_all(text)[0], "cfg.yml")
    got = {s.name: (s.value, s.origin.line) for s in settings}
    assert got == {"name": ("a", 1), "cert-file": ("/s.crt", 3), "client-cert-auth": ("true", 4),
                   "peer-trusted-ca-file": ("/ca.crt", 6), "peer-auto-tls": ("false", 7),
                   "cipher-suites": ("TLS_A,TLS_B", 8)}
    assert ignored == []


def test_tls_keys_at_the_top_level_of_a_config_file_are_ignored() -> None:
    settings, ignored = settings_from_config(load_all("client-cert-auth: true\ntrusted-ca-file: /ca\n")[0], "c")
    assert settings == []
    assert [i.setting.name for i in ignored] == ["client-cert-auth", "trusted-ca-file"]
    assert "client-transport-security" in ignored[0].reason
