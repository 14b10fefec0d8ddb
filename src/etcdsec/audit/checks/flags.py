"""The generic engine for flag-only checks (rules.yaml `settings`/`op` items): a setting must be on,
off, set, or not hold a value. What needs more than a setting's value stays in the other check modules.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from etcdsec.audit.checks.base import AuditContext, Hit, api_quote, client_urls, quote
from etcdsec.audit.etcdflags import DEFAULTS, is_true
from etcdsec.audit.model import ApiServerInstance, EtcdInstance
from etcdsec.audit.ruledata import FlagTest

Subject = EtcdInstance | ApiServerInstance

# Conditions a flag test may name in `when:`: each needs code (URL parsing), so it lives here, once.
CONDITIONS: dict[str, Callable[[EtcdInstance], bool]] = {
    "plain-client-url": lambda inst: any(u.plain for u in client_urls(inst)),
}


def _value(subject: Subject, name: str) -> str:
    """The setting's value; for etcd, etcd's own default when it is not set."""
    setting = subject.get(name)
    if setting is not None:
        return setting.value
    return DEFAULTS.get(name, "") if isinstance(subject, EtcdInstance) else ""


def _quote(subject: Subject, name: str) -> str:
    return quote(subject, name) if isinstance(subject, EtcdInstance) else api_quote(subject, name)


def _matches(test: FlagTest, subject: Subject, name: str) -> bool:
    if test.op == "enabled":
        return is_true(_value(subject, name))
    if test.op == "unset":
        return all(subject.get(n) is None for n in (name, *test.alternatives.get(name, ())))
    if test.op == "one-of":
        return _value(subject, name) in test.values
    # "lists": a comma-separated list (cors, host-whitelist) holding one of the values as an item
    items = [v.strip() for v in _value(subject, name).split(",")]
    return any(v in items for v in test.values)


def run_flag_test(test: FlagTest, subject: Subject, ctx: AuditContext) -> Iterator[Hit]:
    if test.when is not None and not (isinstance(subject, EtcdInstance) and CONDITIONS[test.when](subject)):
        return
    if not all(subject.get(n) is not None for n in test.when_set):
        return
    matched = [n for n in test.settings if _matches(test, subject, n)]
    if test.report == "each":
        for name in matched:
            title = test.title.format(setting=name, value=_value(subject, name))
            yield Hit(test.severity, title, [_quote(subject, name)])
    elif matched:
        title = test.title.format(flags=test.join.join(f"--{n}" for n in matched))
        yield Hit(test.severity, title, [_quote(subject, n) for n in test.evidence or matched])
