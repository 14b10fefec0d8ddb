"""Address -> (ASN, organisation) from a database the user supplies:
the ip2asn TSV (`range_start  range_end  AS_number  country_code  AS_description`, v4, v6 or combined)
or a MaxMind / GeoLite2 ASN `.mmdb`."""

from __future__ import annotations

import bisect
import gzip
import ipaddress
from pathlib import Path
from typing import Protocol

from etcdsec.errors import UserError


class AsnLookup(Protocol):
    def lookup(self, ip: str) -> tuple[str, str] | None: ...


class Ip2AsnTsv:
    def __init__(self, path: str) -> None:
        self.malformed = 0
        tables: dict[int, list[tuple[int, int, str, str]]] = {4: [], 6: []}
        try:
            opener = gzip.open if Path(path).read_bytes()[:2] == b"\x1f\x8b" else open
            with opener(path, "rt", encoding="utf-8", errors="replace") as fh:  # type: ignore[operator]
                for line in fh:
                    row = self._row(line)
                    if row is None:
                        self.malformed += 1
                    elif row[2] != "0":  # AS 0: "not routed"
                        tables[row[0]].append(row[1:])  # type: ignore[arg-type]
        except (OSError, EOFError) as exc:
            raise UserError(f"cannot read ASN database {path}: {getattr(exc, 'strerror', None) or exc}") from None
        if not tables[4] and not tables[6]:
            raise UserError(f"{path}: no ip2asn rows (expected: start<TAB>end<TAB>ASN<TAB>country<TAB>name)")
        self._tables = {v: sorted(rows) for v, rows in tables.items()}
        self._starts = {v: [r[0] for r in rows] for v, rows in self._tables.items()}

    @staticmethod
    def _row(line: str) -> tuple[int, int, int, str, str] | None:
        parts = line.rstrip("\r\n").split("\t")
        if len(parts) < 5:
            return None
        try:
            start, end = ipaddress.ip_address(parts[0]), ipaddress.ip_address(parts[1])
            asn = int(parts[2])
        except ValueError:
            return None
        if start.version != end.version:
            return None
        return start.version, int(start), int(end), str(asn), parts[4].strip()

    def lookup(self, ip: str) -> tuple[str, str] | None:
        addr = ipaddress.ip_address(ip)
        starts = self._starts[addr.version]
        i = bisect.bisect_right(starts, int(addr)) - 1
        if i >= 0:
            start, end, asn, name = self._tables[addr.version][i]
            if start <= int(addr) <= end:
                return f"AS{asn}", name
        return None


class MaxMindAsn:
    def __init__(self, path: str) -> None:
        import maxminddb

        try:
            self._reader = maxminddb.open_database(path)
        except (OSError, ValueError, maxminddb.InvalidDatabaseError) as exc:
            raise UserError(f"cannot read ASN database {path}: {exc}") from None

    def lookup(self, ip: str) -> tuple[str, str] | None:
        try:
            record = self._reader.get(ip)
        except ValueError:
            return None
        if not isinstance(record, dict) or "autonomous_system_number" not in record:
            return None
        return f"AS{record['autonomous_system_number']}", str(record.get("autonomous_system_organization", ""))


def open_asn_database(path: str) -> AsnLookup:
    """By content: the MaxMind metadata marker means .mmdb, anything else is read as ip2asn TSV."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, 2)
            size = fh.tell()
            fh.seek(max(0, size - 128 * 1024))
            tail = fh.read()
    except OSError as exc:
        raise UserError(f"cannot read ASN database {path}: {exc.strerror or exc}") from None
    if b"\xab\xcd\xefMaxMind.com" in tail:
        return MaxMindAsn(path)
    return Ip2AsnTsv(path)
