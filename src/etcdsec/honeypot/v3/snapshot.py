"""Maintenance.Snapshot: a stream of 32 KiB blobs and a SHA-256 trailer, shaped like etcd's.

The file has bbolt's two meta pages (magic, version, page size, checksums) and the size the
Status call reports, so `etcdctl snapshot save` completes and the file looks like a bolt database
at a glance; it holds no data. Attackers who dump the database this way are recorded doing so.
"""

from __future__ import annotations

import hashlib
import struct

from etcdsec.proto import etcd_v3_pb2 as pb

PAGE = 4096
CHUNK = 32 * 1024  # etcd's snapshotSendBufferSize
BOLT_MAGIC = 0xED0CDAED
META_PAGE_FLAG = 0x04
MAX_SNAPSHOT = 64 * 1024 * 1024


def _fnv64a(data: bytes) -> int:
    h = 0xCBF29CE484222325
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def _meta_page(pgid: int, txid: int, pages: int) -> bytes:
    # page header: id, flags, count, overflow; then bbolt's meta: magic, version, pageSize, flags,
    # root bucket {root pgid, sequence}, freelist pgid, high-water pgid, txid, checksum (FNV-64a).
    meta = struct.pack("<IIII", BOLT_MAGIC, 2, PAGE, 0) + struct.pack("<QQ", 3, 0) + struct.pack("<QQQ", 2, pages, txid)
    return (struct.pack("<QHHI", pgid, META_PAGE_FLAG, 0, 0) + meta + struct.pack("<Q", _fnv64a(meta))).ljust(PAGE,
                                                                                                             b"\0")


def snapshot_blob(size: int, txid: int) -> bytes:
    size = max(4 * PAGE, min(MAX_SNAPSHOT, size - size % PAGE))
    pages = size // PAGE
    return _meta_page(0, txid - 1, pages) + _meta_page(1, txid, pages) + bytes(size - 2 * PAGE)


def snapshot_responses(size: int, txid: int) -> list[pb.SnapshotResponse]:
    blob = snapshot_blob(size, txid)
    # remaining_bytes counts what is left after this chunk (0 on the last data chunk), as etcd does
    out = [pb.SnapshotResponse(remaining_bytes=max(0, len(blob) - i - CHUNK), blob=blob[i:i + CHUNK])
           for i in range(0, len(blob), CHUNK)]
    out.append(pb.SnapshotResponse(remaining_bytes=0, blob=hashlib.sha256(blob).digest()))
    return out
