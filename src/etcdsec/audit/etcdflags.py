"""How etcd turns flags, ETCD_* variables and a --config-file into the settings it runs with.

Facts from etcd's `pkg/flags` and `server/embed/config.go` (3.4/3.5):
- every flag `--foo-bar` has an environment twin `ETCD_FOO_BAR`; a flag wins, and setting both is fatal;
- Go's flag package accepts `-flag` and `--flag`, `--flag=value` and `--flag value`, except that a
  boolean flag never takes the next word: a bare `--auto-tls` means true;
- when `--config-file` (or `ETCD_CONFIG_FILE`) is set, every other flag and variable is ignored;
- in the config file, TLS keys live under `client-transport-security:` / `peer-transport-security:`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from etcdsec.audit.model import Ignored, Origin, Setting
from etcdsec.audit.urls import parse_urls
from etcdsec.audit.yamllines import LineDict, line_of

# Settings etcd parses as comma-separated URL lists.
URL_SETTINGS = ("listen-client-urls", "listen-client-http-urls", "listen-peer-urls", "advertise-client-urls",
                "initial-advertise-peer-urls", "listen-metrics-urls")

# Flags that are Go booleans in etcd 3.4/3.5: bare means true and they never consume the next word.
BOOL_FLAGS = frozenset({
    "auto-tls", "peer-auto-tls", "client-cert-auth", "peer-client-cert-auth", "enable-pprof", "enable-v2",
    "strict-reconfig-check", "force-new-cluster", "enable-grpc-gateway", "pre-vote", "debug",
    "enable-log-rotation", "experimental-initial-corrupt-check", "experimental-enable-v2v3",
    "experimental-peer-skip-client-san-verification", "peer-skip-client-san-verification",
    "experimental-enable-lease-checkpoint", "experimental-enable-distributed-tracing",
    "experimental-memory-mlock", "experimental-txn-mode-write-with-shared-buffer",
    "experimental-stop-grpc-service-on-defrag", "unsafe-no-fsync", "socket-reuse-port",
    "socket-reuse-address", "version", "help",
})

# Go's strconv.ParseBool, which etcd uses for boolean flags and variables.
_TRUE = {"1", "t", "T", "TRUE", "true", "True"}
_FALSE = {"0", "f", "F", "FALSE", "false", "False"}

# Config-file keys nested under the two transport-security blocks -> the equivalent flag name.
_CLIENT_TLS_KEYS = {
    "cert-file": "cert-file", "key-file": "key-file", "client-cert-auth": "client-cert-auth",
    "trusted-ca-file": "trusted-ca-file", "auto-tls": "auto-tls", "client-cert-file": "client-cert-file",
    "client-key-file": "client-key-file", "allowed-cn": "client-cert-allowed-cn",
    "allowed-hostname": "client-cert-allowed-hostname", "crl-file": "client-crl-file",
}
_PEER_TLS_KEYS = {
    "cert-file": "peer-cert-file", "key-file": "peer-key-file", "client-cert-auth": "peer-client-cert-auth",
    "trusted-ca-file": "peer-trusted-ca-file", "auto-tls": "peer-auto-tls",
    "client-cert-file": "peer-client-cert-file", "client-key-file": "peer-client-key-file",
    "allowed-cn": "peer-cert-allowed-cn", "allowed-hostname": "peer-cert-allowed-hostname",
    "crl-file": "peer-crl-file", "skip-client-san-verification": "peer-skip-client-san-verification",
}
# Flag names that exist only as nested keys in a config file: at the top level etcd ignores them.
TOP_LEVEL_IGNORED = frozenset(set(_CLIENT_TLS_KEYS.values()) | set(_PEER_TLS_KEYS.values())) - {
    "client-crl-file", "peer-crl-file"}

DEFAULTS = {
    "name": "default",
    "listen-client-urls": "http://localhost:2379",
    "listen-peer-urls": "http://localhost:2380",
    "auth-token": "simple",
    "cors": "*",
    "host-whitelist": "*",
}


def flag_to_env(flag: str) -> str:
    """`peer-client-cert-auth` -> `ETCD_PEER_CLIENT_CERT_AUTH` (etcd's flags.FlagToEnv)."""
    return "ETCD_" + flag.upper().replace("-", "_")


def env_to_flag(key: str) -> str | None:
    if not key.startswith("ETCD_") or key.startswith("ETCDCTL_"):
        return None
    return key[len("ETCD_"):].lower().replace("_", "-")


def parse_bool(text: str) -> bool | None:
    """etcd's boolean parsing; None for a value etcd would reject."""
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    return None


def is_true(value: str) -> bool:
    return parse_bool(value) is True


@dataclass
class ParsedArgs:
    settings: list[Setting] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # why etcd would refuse this command line


def parse_argv(args: Iterable[tuple[str, Origin]]) -> ParsedArgs:
    """Parse etcd's arguments (without argv[0]) the way Go's flag package does."""
    out = ParsedArgs()
    located = list(args)
    words = [w for w, _ in located]
    i = 0
    while i < len(words):
        word = words[i]
        origin = located[i][1]
        i += 1
        if word == "--":
            break
        if not word.startswith("-") or word == "-":
            out.errors.append(f"{word!r} is not a valid flag (etcd refuses to start)")
            break
        name = word.lstrip("-")
        if word.startswith("---") or not name:
            out.errors.append(f"bad flag syntax: {word}")
            break
        value: str | None = None
        raw: str | None = None
        if "=" in name:
            name, value = name.split("=", 1)
        if name in BOOL_FLAGS:
            if value is None:
                value = "true"  # bare boolean flag: Go sets it to true
                raw = f"{word} (bare: true)"
            elif parse_bool(value) is None:
                out.errors.append(f"invalid boolean value {value!r} for --{name}")
        elif value is None:
            if i < len(words):
                value = words[i]
                raw = f"{word} {value}"
                i += 1
            else:
                out.errors.append(f"flag needs an argument: --{name}")
                break
        out.settings.append(Setting(name, value, origin, "flag", raw))
    return out


def settings_from_env(env: Iterable[tuple[str, str, Origin]]) -> list[Setting]:
    """ETCD_* variables as settings. Later assignments win; etcd skips variables set to ''."""
    by_name: dict[str, Setting] = {}
    for key, value, origin in env:
        flag = env_to_flag(key)
        if flag is not None:
            by_name[flag] = Setting(flag, value, origin, "env")
    return [s for s in by_name.values() if s.value != ""]


MAX_VALUE_CHARS = 8192  # YAML aliases can make a value exponentially large; etcd values are short


def _text(value: Any, budget: int = MAX_VALUE_CHARS) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        parts: list[str] = []
        used = 0
        for item in value:
            if used > budget:
                parts.append("...")
                break
            part = _text(item, budget - used)
            parts.append(part)
            used += len(part) + 1
        return ",".join(parts)
    return ("" if value is None else str(value))[:budget]


def settings_from_config(doc: Any, path: str) -> tuple[list[Setting], list[Ignored]]:
    """The settings in an etcd YAML config file, with TLS blocks flattened to flag names."""
    settings: list[Setting] = []
    ignored: list[Ignored] = []
    if not isinstance(doc, dict):
        return settings, ignored
    for key, value in doc.items():
        origin = Origin(path, line_of(doc, key))
        key = str(key)
        if key in ("client-transport-security", "peer-transport-security"):
            table = _CLIENT_TLS_KEYS if key.startswith("client") else _PEER_TLS_KEYS
            block = value if isinstance(value, dict) else LineDict()
            for sub, sub_value in block.items():
                sub_origin = Origin(path, line_of(block, sub))
                flag = table.get(str(sub))
                setting = Setting(flag or f"{key}.{sub}", _text(sub_value), sub_origin, "config-file")
                if flag is None:
                    ignored.append(Ignored(setting, f"etcd does not know `{sub}` under `{key}`"))
                else:
                    settings.append(setting)
            continue
        setting = Setting(key, _text(value), origin, "config-file")
        if key in TOP_LEVEL_IGNORED:
            block = "peer-transport-security" if key.startswith("peer-") else "client-transport-security"
            ignored.append(Ignored(setting, f"etcd ignores `{key}` at the top level of a config file; "
                                            f"it belongs under `{block}`"))
        else:
            settings.append(setting)
    return settings, ignored


@dataclass
class Resolution:
    settings: dict[str, Setting]
    config_file: Setting | None
    ignored: list[Ignored]
    errors: list[str]


def config_file_choice(flags: list[Setting], env: list[Setting]) -> Setting | None:
    """The --config-file etcd will load: the flag if given, else ETCD_CONFIG_FILE."""
    chosen = [s for s in flags if s.name == "config-file"] or [s for s in env if s.name == "config-file"]
    chosen = [s for s in chosen if s.value]
    return chosen[-1] if chosen else None


def resolve(flags: list[Setting], env: list[Setting],
            config: tuple[list[Setting], list[Ignored]] | None) -> Resolution:
    """Apply etcd's precedence. `config` is the parsed --config-file when one is in effect."""
    config_setting = config_file_choice(flags, env)
    if config_setting is not None and config is not None:
        file_settings, file_ignored = config
        ignored = list(file_ignored)
        why = f"ignored because {config_setting.describe()} is set ({config_setting.origin})"
        ignored += [Ignored(s, why + ": etcd then reads only that file")
                    for s in [*flags, *env] if s.name != "config-file"]
        from_file = {s.name: s for s in file_settings}
        return Resolution(from_file, config_setting, ignored, url_errors(from_file))
    effective: dict[str, Setting] = {}
    errors: list[str] = []
    ignored_env: list[Ignored] = []
    flag_names = {s.name for s in flags}
    for setting in env:
        if setting.name in flag_names:
            errors.append(f"{flag_to_env(setting.name)} ({setting.origin}) is shadowed by the flag "
                          f"--{setting.name}: etcd exits with 'conflicting environment variable'")
            ignored_env.append(Ignored(setting, f"shadowed by --{setting.name}"))
        else:
            effective[setting.name] = setting
    for setting in flags:  # the last occurrence of a repeated flag wins, as in Go
        effective[setting.name] = setting
    return Resolution(effective, None, ignored_env, errors + url_errors(effective))


def url_errors(settings: dict[str, Setting]) -> list[str]:
    """URL settings etcd cannot parse: it exits at start (`types.NewURLs`)."""
    return [f"{name} ({settings[name].origin}): {url.text} is not a valid URL ({url.problem}): etcd exits at start"
            for name in URL_SETTINGS if name in settings
            for url in parse_urls(settings[name].value) if url.problem]
