"""Reading a file the user named, bounded: the one rule for every list, import and baseline file.

A pipe (`<(zcat x)`) reads like a file; `/dev/zero` or a huge file is refused by size, not read to
the end first. Errors are one line naming the file, never a traceback.
"""

from __future__ import annotations

from etcdsec.errors import UserError


def read_capped(path: str, limit: int, what: str) -> bytes:
    """The whole of `path`, at most `limit` bytes (UserError past it, or when it cannot be read)."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(limit + 1)
    except OSError as exc:
        raise UserError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    if len(data) > limit:
        raise UserError(f"cannot read {what} {path}: larger than {_size(limit)}")
    return data


def _size(limit: int) -> str:
    return f"{limit >> 20} MiB" if limit >= 1 << 20 else f"{limit} bytes"
