"""Go's reader of a chunked request body, sans-IO (net/http/internal `chunkedReader`, `readChunkLine`,
`parseHexUint`, and `body.readTrailer`), for the h11 path: h11 reads chunk framing more strictly than
Go (a chunk-size line or a trailer ended by a bare LF, blanks before the line end), so a body etcd
reads would be refused. Go's rules, each bounded:

- a chunk-size line runs to the first LF (at most 4096 bytes); trailing blanks, CR and LF are trimmed,
  an extension after `;` is dropped unread; what is left is 1-16 hex digits;
- chunk data is followed by exactly CRLF;
- after the last chunk (size 0): CRLF ends the body, else trailer lines up to an empty line (LF or
  CRLF ends each).
"""

from __future__ import annotations

MAX_LINE = 4096  # net/http/internal maxLineLength, and bufio's buffer for the line
_HEX = frozenset(b"0123456789abcdefABCDEF")
_SIZE, _DATA, _DATA_END, _TRAILER, _DONE = range(5)


class GoChunked:
    """Feed the bytes after the request head; `body` grows, `done` once the body ended (`rest`: the
    bytes after it, the next request's), `error` the text Go's read fails with."""

    def __init__(self) -> None:
        self.body = bytearray()
        self.error = ""
        self._buf = bytearray()
        self._state = _SIZE
        self._left = 0

    @property
    def done(self) -> bool:
        return self._state == _DONE

    @property
    def rest(self) -> bytes:
        return bytes(self._buf) if self._state == _DONE else b""

    def feed(self, data: bytes) -> None:
        if self.error or self._state == _DONE:
            return  # the caller stops reading here
        self._buf += data
        while not self.error and self._state != _DONE and self._step():
            pass

    def _step(self) -> bool:
        """One step of the reader; False when it needs more bytes."""
        buf = self._buf
        if self._state == _SIZE:
            end = buf.find(b"\n", 0, MAX_LINE)
            if end < 0:
                if len(buf) >= MAX_LINE:
                    self.error = "header line too long"
                return False
            line = bytes(buf[:end]).rstrip(b" \t\r\n").partition(b";")[0]
            del buf[:end + 1]
            if not line:
                self.error = "empty hex number for chunk length"
            elif len(line) > 16:
                self.error = "http chunk length too large"
            elif any(ch not in _HEX for ch in line):
                self.error = "invalid byte in chunk length"
            else:
                self._left = int(line, 16)
                self._state = _DATA if self._left else _TRAILER
            return True
        if self._state == _DATA:
            if not buf:
                return False
            take = min(self._left, len(buf))
            self.body += buf[:take]
            del buf[:take]
            self._left -= take
            if not self._left:
                self._state = _DATA_END
            return True
        if self._state == _DATA_END:
            if len(buf) < 2:
                return False
            if buf[:2] != b"\r\n":
                self.error = "malformed chunked encoding"
                return False
            del buf[:2]
            self._state = _SIZE
            return True
        # the trailer: CRLF alone, or header lines up to an empty one
        if len(buf) < 2:
            return False
        if buf[:2] == b"\r\n":
            del buf[:2]
            self._state = _DONE
            return True
        end = _blank_line_end(buf)
        if end < 0:
            if len(buf) > MAX_LINE:
                self.error = "header line too long"
            return False
        del buf[:end]
        self._state = _DONE
        return True


def _blank_line_end(buf: bytearray) -> int:
    """The index just past the first empty line (LF or CRLF ended) after a line's LF, or -1."""
    i = buf.find(b"\n")
    while i >= 0:
        if buf[i + 1:i + 2] == b"\n":
            return i + 2
        if buf[i + 1:i + 3] == b"\r\n":
            return i + 3
        i = buf.find(b"\n", i + 1)
    return -1
