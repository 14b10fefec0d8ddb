"""`--seed FILE`: the user's own keyspace and honeytokens instead of the Kubernetes bait."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from etcdsec.errors import UserError
from etcdsec.honeypot.core.bait.plant import Bait
from etcdsec.honeypot.core.honeytokens import token_problem


def load_seed_file(path: Path) -> Bait:
    """A user seed: YAML/JSON `{keys: {key: value}, honeytokens: {value: label}}`."""
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise UserError(f"cannot read seed file {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        what = getattr(exc, "problem", None) or " ".join(str(exc).split())  # YAML's own text spans lines
        raise UserError(f"cannot read seed file {path}: {where}{what}") from None
    if not isinstance(data, dict) or not isinstance(data.get("keys", {}), dict):
        raise UserError(f"seed file {path}: expected a mapping with a 'keys' mapping")
    bait = Bait()
    for key, value in data.get("keys", {}).items():
        text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
        bait.keys.append((str(key).encode(), text.encode()))
    for value, label in (data.get("honeytokens") or {}).items():
        problem = token_problem(str(value))
        if problem:
            raise UserError(f"seed file {path}: honeytoken {label!r} {problem}")
        bait.tokens[str(value)] = str(label)
    bait.keys.sort()
    return bait
