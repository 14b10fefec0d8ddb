"""The caching HPACK encoder writes exactly the bytes hpack's own encoder writes, step by step."""

from __future__ import annotations

import hpack
from hypothesis import given, settings
from hypothesis import strategies as st

from etcdsec.honeypot.v3.grpc.hpack_cache import CachingEncoder

FIELDS = [(b":status", b"200"), (b"content-type", b"application/grpc"), (b"grpc-status", b"0"),
          (b"grpc-message", b""), (b"grpc-status", b"5"), (b"grpc-message", b"etcdserver: key not found"),
          (b"grpc-encoding", b"gzip"), (b"x-big", b"v" * 3000)]  # the big one forces evictions
header_lists = st.lists(st.sampled_from(FIELDS), min_size=1, max_size=4)
steps = st.lists(st.one_of(header_lists, st.integers(0, 8192)), min_size=1, max_size=60)


@settings(max_examples=300, deadline=None)
@given(steps)
def test_same_bytes_as_hpack_and_decodable(script) -> None:
    plain, cached, decoder = hpack.Encoder(), CachingEncoder(), hpack.Decoder()
    decoder.max_allowed_table_size = 8192  # as our SETTINGS would allow
    for step in script:
        if isinstance(step, int):  # the peer's SETTINGS_HEADER_TABLE_SIZE
            if step != plain.header_table_size:  # hpack's encoder forgets a change set twice
                plain.header_table_size = cached.header_table_size = step
            continue
        expected = plain.encode(list(step))
        block = cached.encode(list(step))
        assert block == expected
        assert [(bytes(k, "utf-8") if isinstance(k, str) else k, bytes(v, "utf-8") if isinstance(v, str) else v)
                for k, v in decoder.decode(block, raw=True)] == list(step)


def test_a_repeated_answer_is_served_from_memory() -> None:
    enc = CachingEncoder()
    answer = [(b":status", b"200"), (b"content-type", b"application/grpc")]
    first = enc.encode(list(answer))  # literal with indexing: the table changes, nothing kept
    second = enc.encode(list(answer))  # indexed now: kept
    changes = enc.changes
    assert enc.encode(list(answer)) is enc.encode(list(answer))  # the same bytes object: from memory
    assert first != second and enc.changes == changes


@settings(max_examples=300, deadline=None)
@given(steps, st.booleans())
def test_decoder_reads_every_block_as_hpack_does(script, raw) -> None:
    from etcdsec.honeypot.v3.grpc.hpack_cache import CachingDecoder

    encoder, plain, cached = hpack.Encoder(), hpack.Decoder(), CachingDecoder()
    plain.max_allowed_table_size = cached.max_allowed_table_size = 8192
    for step in script:
        if isinstance(step, int):  # the client's encoder resizes: the next block carries the update
            if step != encoder.header_table_size:  # hpack's encoder forgets a change set twice
                encoder.header_table_size = step
            continue
        block = encoder.encode(list(step))
        for _ in range(2):  # the same bytes twice: the second may come from memory
            assert cached.decode(block, raw=raw) == plain.decode(block, raw=raw)
            block = encoder.encode(list(step))
