"""hpack's encoder and decoder, remembering header blocks: a gRPC client repeats a few header
lists for ever (every call of a method), and so do our answers.

HPACK's output depends on the input and the dynamic table. A block whose coding added nothing to
the table (every field indexed, or literal without indexing) codes the same way again as long as
the table has not changed since, and coding it again would not change the table either. So such
blocks are kept, tagged with the table's change count, and reused while it is the same; anything
that changes the table (an insertion, an eviction by insertion, a size change) bumps the count.
`tests/honeypot/v3/test_hpack_cache.py` checks both against hpack's own coder, step by step.
"""

from __future__ import annotations

from typing import Any

import hpack

MAX_BLOCKS = 64


class _ChangeCounting:
    """What both coders share: `changes` moves with every insertion into the dynamic table (and so
    every eviction it causes) and every size change (which may evict without an insertion)."""

    header_table: Any
    _base: Any  # the hpack class whose size setter does the work

    def _count_changes(self) -> None:
        self.changes = 0
        insert = self.header_table.add

        def counted_add(name: bytes, value: bytes) -> None:
            self.changes += 1
            insert(name, value)

        self.header_table.add = counted_add

    @property
    def header_table_size(self) -> int:
        return int(self.header_table.maxsize)

    @header_table_size.setter
    def header_table_size(self, value: int) -> None:
        self.changes += 1
        self._base.header_table_size.fset(self, value)


class CachingEncoder(_ChangeCounting, hpack.Encoder):
    _base = hpack.Encoder

    def __init__(self) -> None:
        super().__init__()
        self._blocks: dict[tuple[Any, ...], tuple[int, bytes]] = {}
        self._count_changes()

    def encode(self, headers: Any, huffman: bool = True) -> bytes:
        if self.header_table.resized or not isinstance(headers, list) or not huffman:
            return super().encode(headers, huffman)
        key = tuple(headers)
        if any(type(field) is not tuple or len(field) != 2 for field in key):  # HeaderTuple, sensitive flags
            return super().encode(headers, huffman)
        known = self._blocks.get(key)
        if known is not None and known[0] == self.changes:
            return known[1]
        before = self.changes
        block = super().encode(headers, huffman)
        if self.changes == before:
            if len(self._blocks) >= MAX_BLOCKS:
                self._blocks.clear()
            self._blocks[key] = (before, block)
        return block


    def encode_known(self, headers: tuple[tuple[bytes, bytes], ...]) -> bytes:
        """encode() for the caller's constant fields (plain pairs of bytes): no check on a known block."""
        known = self._blocks.get(headers)
        if known is not None and known[0] == self.changes and not self.header_table.resized:
            return known[1]
        return self.encode(list(headers))


class CachingDecoder(_ChangeCounting, hpack.Decoder):
    _base = hpack.Decoder

    def __init__(self, max_header_list_size: int = hpack.hpack.DEFAULT_MAX_HEADER_LIST_SIZE) -> None:
        super().__init__(max_header_list_size)
        self._blocks: dict[tuple[bytes, bool, int, int], tuple[int, list[Any]]] = {}
        self._count_changes()

    def decode(self, data: bytes, raw: bool = False) -> Any:
        if len(data) > 1024:  # ordinary request headers are far smaller; big blocks are not worth it
            return super().decode(data, raw)
        key = (bytes(data), raw, self.max_header_list_size, self.max_allowed_table_size)
        known = self._blocks.get(key)
        if known is not None and known[0] == self.changes:
            return list(known[1])
        before = self.changes
        headers = super().decode(data, raw)
        if self.changes == before:
            if len(self._blocks) >= MAX_BLOCKS:
                self._blocks.clear()
            self._blocks[key] = (before, list(headers))
        return headers
