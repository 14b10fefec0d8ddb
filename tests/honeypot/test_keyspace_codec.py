"""The frames between workers and the keyspace owner: whole frames out of any split, hostile bytes refused."""

from __future__ import annotations

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from etcdsec.honeypot.v3 import keyspace_codec as codec

FRAMES = st.one_of(
    st.tuples(st.just(codec.CALL), st.integers(0, 2**32 - 1), st.text(max_size=40), st.text(max_size=40),
              st.text(max_size=20), st.binary(max_size=300)),
    st.tuples(st.just(codec.REPLY), st.integers(0, 2**32 - 1), st.integers(0, 16),
              st.one_of(st.binary(max_size=300), st.lists(st.binary(max_size=50), max_size=4), st.text(max_size=80))),
    st.tuples(st.just(codec.WATCH_OPEN), st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1), st.text(max_size=40)),
    st.tuples(st.just(codec.WATCH_REQ), st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1), st.binary(max_size=200)),
    st.tuples(st.just(codec.WATCH_CLOSE), st.integers(0, 2**32 - 1)),
    st.tuples(st.just(codec.WATCH_PUSH), st.integers(0, 2**32 - 1), st.binary(max_size=300)),
    st.tuples(st.just(codec.V2_HOLD), st.integers(0, 2**32 - 1), st.text(max_size=40), st.binary(max_size=300)),
    st.tuples(st.just(codec.V2_CHUNK), st.integers(0, 2**32 - 1), st.binary(max_size=300)),
    st.tuples(st.just(codec.V2_END), st.integers(0, 2**32 - 1)),
    st.tuples(st.just(codec.REPL_SNAP), st.integers(0, 2**62), st.binary(max_size=300)),
    st.tuples(st.just(codec.REPL), st.integers(0, 2**62), st.binary(max_size=300)),
    st.tuples(st.just(codec.REPL_ASK), st.integers(0, 2**32 - 1)),
    st.tuples(st.just(codec.REPL_PAUSE), st.integers(0, 2**32 - 1)),
)


@given(st.lists(FRAMES, max_size=12), st.lists(st.integers(1, 64), min_size=1, max_size=8))
def test_frames_come_out_whole_and_in_order_however_the_bytes_are_split(frames, cuts) -> None:
    wire = b"".join(codec.encode(*f) for f in frames)
    decoder = codec.FrameDecoder()
    out, pos, i = [], 0, 0
    while pos < len(wire):
        step = cuts[i % len(cuts)]
        out += decoder.feed(wire[pos:pos + step])
        pos, i = pos + step, i + 1
    assert [tuple(f) for f in frames] == out
    assert decoder.buffered == 0


@given(st.binary(max_size=200))
def test_any_bytes_give_frames_or_a_codec_error_never_another_exception(data) -> None:
    decoder = codec.FrameDecoder(max_frame=1 << 16)
    try:
        frames = decoder.feed(data)
    except codec.CodecError:
        return
    for frame in frames:
        assert frame[0] in (codec.CALL, codec.REPLY, codec.WATCH_OPEN, codec.WATCH_REQ, codec.WATCH_CLOSE,
                            codec.WATCH_PUSH, codec.V2_HOLD, codec.V2_CHUNK, codec.V2_END, codec.REPL_SNAP, codec.REPL,
                            codec.REPL_ASK, codec.REPL_PAUSE)


def _framed(obj: object) -> bytes:
    body = msgpack.packb(obj, use_bin_type=True)
    return len(body).to_bytes(4, "big") + body


@pytest.mark.parametrize("wire", [
    (1 << 31).to_bytes(4, "big"),  # a length past the cap: refused before any byte of it is awaited
    _framed({"kind": 1}),  # not an array
    _framed([99, 1]),  # unknown kind
    _framed([codec.CALL, 1, "/p", "1.2.3.4", "", "not bytes"]),  # wrong field type
    _framed([codec.CALL, 1, "/p"]),  # too few fields
    _framed([codec.REPLY, 1, 0, [b"ok", 3]]),  # a stream reply with a part that is not bytes
    (3).to_bytes(4, "big") + b"\xc1\xc1\xc1",  # not msgpack
    _framed([codec.WATCH_CLOSE, "id"]),  # id not an int
])
def test_malformed_frames_are_refused(wire: bytes) -> None:
    with pytest.raises(codec.CodecError):
        codec.FrameDecoder().feed(wire)


def test_a_partial_frame_waits_and_the_cap_bounds_what_it_may_claim() -> None:
    frame = codec.encode(codec.WATCH_PUSH, 7, b"x" * 1000)
    decoder = codec.FrameDecoder(max_frame=2000)
    assert decoder.feed(frame[:500]) == [] and decoder.buffered == 500
    assert decoder.feed(frame[500:]) == [(codec.WATCH_PUSH, 7, b"x" * 1000)]
    with pytest.raises(codec.CodecError):
        codec.FrameDecoder(max_frame=100).feed(frame[:4])
