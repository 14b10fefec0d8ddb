"""YAML loading that remembers the line of every mapping key and list item (for file:line evidence).

Loading is bounded the way Go's YAML libraries bound it (etcd and the kubelet read these files with
them): a document whose alias expansion outweighs its own nodes is refused as "excessive aliasing"
(yaml.v2/v3 `allowedAliasRatio`), an anchor that contains itself is refused, and so is nesting
deeper than `MAX_DEPTH`. The check walks the composed node graph before any Python object is built,
so a 1 KB "billion laughs" file costs a few thousand steps, not gigabytes.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import yaml


class LineDict(dict[Any, Any]):
    """A mapping whose `lines[key]` is the 1-based line the key was written on."""

    lines: dict[Any, int]


class LineList(list[Any]):
    """A sequence whose `lines[i]` is the 1-based line of item i."""

    lines: list[int]


# libyaml's parser when PyYAML was built with it: same safe constructors, several times faster.
_Base: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_Base):  # type: ignore[valid-type, misc]
    pass


def _mapping(loader: _Loader, node: yaml.MappingNode) -> Iterator[LineDict]:
    data = LineDict()
    data.lines = {}
    yield data
    loader.flatten_mapping(node)
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        data[key] = loader.construct_object(value_node, deep=True)
        data.lines[key] = key_node.start_mark.line + 1


def _sequence(loader: _Loader, node: yaml.SequenceNode) -> Iterator[LineList]:
    data = LineList()
    data.lines = []
    yield data
    for item in node.value:
        data.append(loader.construct_object(item, deep=True))
        data.lines.append(item.start_mark.line + 1)


_Loader.add_constructor("tag:yaml.org,2002:map", _mapping)  # type: ignore[arg-type]
_Loader.add_constructor("tag:yaml.org,2002:seq", _sequence)  # type: ignore[arg-type]


# yaml.v3 decode.go: up to 400,000 decoded nodes 99% may come from aliases, from 4,000,000 on 10%.
ALIAS_RATIO_LOW, ALIAS_RATIO_HIGH = 400_000, 4_000_000
MAX_DEPTH = 200  # Go allows 10,000; no etcd or pod configuration nests past 20, Python's stack would not


class UnsafeYAMLError(yaml.YAMLError):
    """A document etcd's YAML reader would refuse too: alias bomb, self-containing anchor, deep nesting."""

    def __init__(self, problem: str, node: yaml.Node | None = None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.problem_mark = node.start_mark if node is not None else None


def allowed_alias_ratio(decoded: int) -> float:
    if decoded <= ALIAS_RATIO_LOW:
        return 0.99
    if decoded >= ALIAS_RATIO_HIGH:
        return 0.10
    return 0.99 - 0.89 * (decoded - ALIAS_RATIO_LOW) / (ALIAS_RATIO_HIGH - ALIAS_RATIO_LOW)


def check_aliasing(root: yaml.Node) -> int:
    """Walk `root` as a Go decoder would, expanding aliases; UnsafeYAMLError when yaml.v3 would refuse.

    Returns the number of nodes decoded. Aliases are nodes met again after their first visit.
    """
    decoded = aliased = 0
    seen: set[int] = set()
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool, int, bool]] = [(root, False, 1, False)]  # node, in alias, depth, leaving
    while stack:
        node, in_alias, depth, leaving = stack.pop()
        if leaving:
            on_path.discard(id(node))
            continue
        if id(node) in on_path:
            raise UnsafeYAMLError("anchor value contains itself", node)
        if depth > MAX_DEPTH:
            raise UnsafeYAMLError(f"nested deeper than {MAX_DEPTH} levels", node)
        in_alias = in_alias or id(node) in seen
        seen.add(id(node))
        decoded += 1
        aliased += in_alias
        if aliased > 100 and decoded > 1000 and aliased / decoded > allowed_alias_ratio(decoded):
            raise UnsafeYAMLError(f"document contains excessive aliasing: {aliased} of its first {decoded} "
                                  "nodes come from aliases (Go's YAML readers refuse it too)")
        if isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        elif isinstance(node, yaml.MappingNode):
            children = [part for pair in node.value for part in pair]
        else:
            continue
        on_path.add(id(node))
        stack.append((node, in_alias, depth, True))
        stack.extend((child, in_alias, depth + 1, False) for child in reversed(children))
    return decoded


def load_all(text: str) -> list[Any]:
    """Every document in `text` (yaml.YAMLError on bad syntax or an unsafe document)."""
    loader = _Loader(text)
    docs = []
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            check_aliasing(node)
            doc = loader.construct_document(node)
            if doc is not None:
                docs.append(doc)
    finally:
        loader.dispose()
    return docs


def line_of(container: Any, key: Any, default: int | None = None) -> int | None:
    lines = getattr(container, "lines", None)
    if isinstance(lines, dict):
        return lines.get(key, default)
    if isinstance(lines, list) and isinstance(key, int) and 0 <= key < len(lines):
        return lines[key]
    return default


def yaml_problem(exc: yaml.YAMLError) -> str:
    """One line saying what is wrong with a YAML file, and where."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or "invalid YAML"
    return f"{problem} at line {mark.line + 1}" if mark is not None else str(problem)
