"""Prometheus text exposition (format 0.0.4) parsed into families, as the differential tests and
`scripts/capture_etcd_metrics.py` read it: name, TYPE, HELP (escaped as on the wire), samples in order."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


@dataclass
class Family:
    name: str
    type: str = "untyped"
    help: str = ""
    samples: list[tuple[str, str, str]] = field(default_factory=list)  # (sample name, "{labels}", value)

    def label_names(self) -> set[str]:
        """Label names of the family's samples, without histogram `le` and summary `quantile`."""
        return {name for _, labels, _ in self.samples for name in label_dict(labels)} - {"le", "quantile"}

    def value(self, labels: str = "", suffix: str = "") -> float:
        for name, got, value in self.samples:
            if name == self.name + suffix and got == labels:
                return float(value)
        raise KeyError(f"{self.name}{suffix}{labels}")


def label_dict(labels: str) -> dict[str, str]:
    return dict(_LABEL.findall(labels))


def parse(text: str) -> list[Family]:
    """Families in exposition order; a sample belongs to the family whose TYPE line came last."""
    families: list[Family] = []
    by_name: dict[str, Family] = {}
    for line in text.splitlines():
        if not line:
            continue
        if line.startswith("# HELP ") or line.startswith("# TYPE "):
            _, kind, rest = line.split(" ", 2)
            name, _, tail = rest.partition(" ")
            fam = by_name.get(name)
            if fam is None:
                fam = by_name[name] = Family(name)
                families.append(fam)
            if kind == "HELP":
                fam.help = tail
            else:
                fam.type = tail
            continue
        if line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        if m is None:
            raise ValueError(f"not a sample line: {line[:120]!r}")
        if not families:
            raise ValueError("sample before any family")
        families[-1].samples.append((m.group(1), m.group(2) or "", m.group(3)))
    return families
