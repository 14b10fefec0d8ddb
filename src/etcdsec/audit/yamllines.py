"""YAML loading that remembers the line of every mapping key and list item (for file:line evidence)."""

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


def load_all(text: str) -> list[Any]:
    """Every document in `text` (yaml.YAMLError on bad syntax)."""
    return [doc for doc in yaml.load_all(text, Loader=_Loader) if doc is not None]


def line_of(container: Any, key: Any, default: int | None = None) -> int | None:
    lines = getattr(container, "lines", None)
    if isinstance(lines, dict):
        return lines.get(key, default)
    if isinstance(lines, list) and isinstance(key, int) and 0 <= key < len(lines):
        return lines[key]
    return default
