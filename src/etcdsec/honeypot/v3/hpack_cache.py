"""hpack's encoder, remembering header blocks: gRPC answers repeat a few header lists for ever.

HPACK output depends on the header list and the dynamic table. An encoding that added nothing to
the table (every field already indexed, or sent literal without indexing) encodes to the same bytes
again as long as the table has not changed since, and encoding it again would not change the table
either. So such blocks are kept, tagged with the table's change count, and reused while it is the
same; anything that changes the table (an insertion, an eviction by insertion, a size change from
SETTINGS) bumps the count. A `tests/honeypot/v3/test_hpack_cache.py` property test checks the bytes
and the decoder's view against hpack's own encoder.
"""

from __future__ import annotations

from typing import Any

import hpack

MAX_BLOCKS = 64


class CachingEncoder(hpack.Encoder):
    def __init__(self) -> None:
        super().__init__()
        self.changes = 0
        self._blocks: dict[tuple[Any, ...], tuple[int, bytes]] = {}
        table = self.header_table
        insert = table.add

        def counted_add(name: bytes, value: bytes) -> None:
            self.changes += 1
            insert(name, value)

        table.add = counted_add  # type: ignore[method-assign]

    @property  # type: ignore[override]
    def header_table_size(self) -> int:
        return int(self.header_table.maxsize)

    @header_table_size.setter
    def header_table_size(self, value: int) -> None:
        self.changes += 1  # shrinking evicts entries without an insertion
        hpack.Encoder.header_table_size.fset(self, value)  # type: ignore[attr-defined]

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
