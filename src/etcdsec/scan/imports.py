"""Read what users already have: masscan (-oJ, -oL, -oX), zmap CSV, nmap XML (-oX), Shodan exports.

Each parser yields what it could read and counts what it could not: a bad line is never fatal.
A file that cannot be opened or decompressed at all, is no known format, holds no readable record,
or is XML declaring entities (a bomb or an external entity: nmap and masscan never write one) is a
UserError saying so. Reading is bounded: MAX_IMPORT_BYTES after decompression.
"""

from __future__ import annotations

import csv
import io
import ipaddress
import json
import zlib
from dataclasses import dataclass, field
from typing import Any
from xml.etree import ElementTree

from defusedxml import DefusedXmlException
from defusedxml import ElementTree as SafeElementTree

from etcdsec.errors import UserError
from etcdsec.files import read_capped

FORMATS = ("auto", "masscan-json", "masscan-list", "masscan-xml", "nmap-xml", "zmap", "shodan")
SHODAN_FIELDS = ("org", "asn", "isp", "location", "hostnames")
MAX_IMPORT_BYTES = 1 << 30  # 1 GiB of text (after gunzip): ~20 million masscan lines
_READ_CHUNK = 1 << 20
# expat errors that mean "the data ended": no element found, unclosed token, partial character, CDATA
_EXPAT_END_OF_INPUT = {3, 5, 6, 20}
_JSON_ERRORS = (json.JSONDecodeError, RecursionError)  # RecursionError: nesting deeper than Python's stack


@dataclass
class ImportResult:
    path: str
    format: str
    pairs: list[tuple[str, int]] = field(default_factory=list)  # open (address, port) seen
    hosts: list[str] = field(default_factory=list)  # addresses without a port: scan on --ports
    meta: dict[str, dict[str, Any]] = field(default_factory=dict)
    records: int = 0
    malformed: int = 0
    truncated: bool = False

    def summary(self) -> str:
        text = f"{self.path}: {self.format}, {self.records} records"
        if self.malformed:
            text += f", {self.malformed} malformed skipped"
        if self.truncated:
            text += ", file is truncated (kept what was read)"
        return text


def _address(text: Any) -> str | None:
    try:
        return str(ipaddress.ip_address(str(text).strip()))
    except ValueError:
        return None


def _port(value: Any) -> int | None:
    try:
        port = int(value)
    except (TypeError, ValueError):
        return None
    return port if 1 <= port <= 65535 else None


def _gunzip(path: str, raw: bytes) -> tuple[bytes, bool]:
    """Decompress what can be, up to MAX_IMPORT_BYTES; (data, truncated)."""
    decomp = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        data = decomp.decompress(raw, MAX_IMPORT_BYTES + 1)
    except zlib.error as exc:
        raise UserError(f"cannot read import file {path}: not valid gzip ({exc})") from None
    if len(data) > MAX_IMPORT_BYTES:
        raise UserError(f"cannot read import file {path}: decompresses to more than {MAX_IMPORT_BYTES >> 20} MiB "
                        f"(from {len(raw):,} bytes)")
    return data, not decomp.eof


def detect_format(head: bytes) -> str | None:
    """The format `head` (the file's start) is written in; None when it is none of them."""
    if b"\0" in head[:4096]:
        return None  # binary: none of the formats holds a NUL byte
    text = head.lstrip()[:4096].decode("utf-8", errors="replace")
    if text.startswith("<?xml") or text.startswith("<nmaprun") or text.startswith("<!DOCTYPE"):
        return "masscan-xml" if "masscan" in text[:600] else "nmap-xml"
    if text.startswith("#masscan") or text.startswith("open tcp") or text.startswith("open "):
        return "masscan-list"
    if text.startswith("[") or text.startswith("{"):
        return "shodan" if '"ip_str"' in text else "masscan-json"
    first = next((line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")), "")
    if "saddr" in first.split(",") or _address(first.split(",")[0]) is not None:
        return "zmap"
    return None


def _head(raw: bytes) -> str:
    return repr(raw[:16])[1:]


def read_import(path: str, fmt: str = "auto") -> ImportResult:
    raw = read_capped(path, MAX_IMPORT_BYTES, "import file")
    truncated = False
    if raw[:2] == b"\x1f\x8b":
        raw, truncated = _gunzip(path, raw)
    if fmt == "auto":
        found = detect_format(raw)
        if found is None:
            raise UserError(f"cannot import {path}: not a masscan, zmap, nmap or Shodan file "
                            f"(it starts with {_head(raw)}); name the format with --import-format")
        fmt = found
    if fmt not in FORMATS:
        raise UserError(f"unknown import format {fmt!r} (expected one of: {', '.join(FORMATS[1:])})")
    result = ImportResult(path, fmt, truncated=truncated)
    text = raw.decode("utf-8", errors="replace")
    if fmt == "masscan-json":
        _parse_masscan_json(text, result)
    elif fmt == "masscan-list":
        _parse_masscan_list(text, result)
    elif fmt in ("masscan-xml", "nmap-xml"):
        _parse_xml(raw, result)
    elif fmt == "zmap":
        _parse_zmap(text, result)
    else:
        _parse_shodan(text, result)
    if result.malformed and not result.records:
        raise UserError(f"cannot import {path}: not a {fmt} file: none of its {result.malformed} records "
                        f"could be read (it starts with {_head(raw)})")
    return result


def _parse_masscan_json(text: str, result: ImportResult) -> None:
    # masscan -oJ writes one object per line between `[` and `]`, each followed by a comma.
    stripped = text.strip()
    if stripped.startswith("[") and stripped.endswith("]"):
        try:
            objects = json.loads(stripped)
        except _JSON_ERRORS:
            objects = None
        if isinstance(objects, list):
            for obj in objects:
                _masscan_object(obj, result)
            return
    for line in text.splitlines():
        line = line.strip().rstrip(",")
        if line in ("", "[", "]") or line.startswith("{finished"):
            continue
        try:
            obj = json.loads(line)
        except _JSON_ERRORS:
            result.malformed += 1
            continue
        _masscan_object(obj, result)


def _masscan_object(obj: Any, result: ImportResult) -> None:
    ip = _address(obj.get("ip")) if isinstance(obj, dict) else None
    ports = obj.get("ports") if isinstance(obj, dict) else None
    if ip is None or not isinstance(ports, list):
        result.malformed += 1
        return
    result.records += 1
    for entry in ports:
        port = _port(entry.get("port")) if isinstance(entry, dict) else None
        if port is None:
            result.malformed += 1
        elif entry.get("status", "open") == "open" and entry.get("proto", "tcp") == "tcp":
            result.pairs.append((ip, port))


def _parse_masscan_list(text: str, result: ImportResult) -> None:
    # `open tcp 2379 10.0.0.1 1390853553`
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        if len(parts) < 4:
            result.malformed += 1
            continue
        state, proto, port_text, ip_text = parts[:4]
        ip, port = _address(ip_text), _port(port_text)
        if ip is None or port is None:
            result.malformed += 1
            continue
        result.records += 1
        if state == "open" and proto == "tcp":
            result.pairs.append((ip, port))


def _parse_xml(raw: bytes, result: ImportResult) -> None:
    """nmap -oX and masscan -oX share the <host><address/><ports><port><state/> shape.

    defusedxml refuses entity declarations (billion laughs, XXE) and external references before any
    is expanded or fetched. Input that stops inside the document is a cut file: what came before is kept.
    """
    parser = SafeElementTree.iterparse(io.BytesIO(raw), events=("end",), forbid_dtd=False,
                                       forbid_entities=True, forbid_external=True)
    try:
        for _event, elem in parser:
            if elem.tag != "host":
                continue
            _xml_host(elem, result)
            elem.clear()
    except DefusedXmlException as exc:
        raise UserError(f"cannot import {result.path}: refused, the XML {_xml_threat(exc)}; nmap and masscan "
                        "never write one, and nothing was read") from None
    except ElementTree.ParseError as exc:
        line, column = exc.position
        if exc.code not in _EXPAT_END_OF_INPUT:
            raise UserError(f"cannot import {result.path}: not well-formed XML at line {line}, column {column} "
                            f"({str(exc).split(':')[0]})") from None
        result.truncated = True


def _xml_threat(exc: DefusedXmlException) -> str:
    name, sysid = getattr(exc, "name", None), getattr(exc, "sysid", None)
    if sysid:
        return f"declares an external entity {name!r} ({sysid!r}): an external-entity (XXE) read"
    if type(exc).__name__ == "EntitiesForbidden":
        return f"declares an entity {name!r}: entity expansion (a 'billion laughs' bomb)"
    return f"names an external resource ({type(exc).__name__})"


def _xml_host(host: ElementTree.Element, result: ImportResult) -> None:
    ip = None
    for addr in host.findall("address"):
        if addr.get("addrtype") in ("ipv4", "ipv6"):
            ip = _address(addr.get("addr"))
    if ip is None:
        result.malformed += 1
        return
    result.records += 1
    names = [h.get("name") for h in host.findall("hostnames/hostname") if h.get("name")]
    if names:
        result.meta.setdefault(ip, {})["hostnames"] = names
    for port_elem in host.findall("ports/port"):
        port = _port(port_elem.get("portid"))
        state = port_elem.find("state")
        if port is None or state is None:
            result.malformed += 1
            continue
        if state.get("state") == "open" and port_elem.get("protocol", "tcp") == "tcp":
            result.pairs.append((ip, port))


def _parse_zmap(text: str, result: ImportResult) -> None:
    """Plain `saddr` per line (zmap's default), or CSV with a header (`-O csv -f saddr,sport,...`)."""
    lines = text.splitlines()
    first = lines[0].strip() if lines else ""
    if "saddr" in first.split(","):
        reader = csv.DictReader(io.StringIO(text))
        for row in reader:
            ip = _address(row.get("saddr"))
            if ip is None:
                result.malformed += 1
                continue
            if row.get("success") not in (None, "", "1", "true") or row.get("classification") == "rst":
                result.records += 1
                continue
            result.records += 1
            port = _port(row.get("sport"))
            if port is None:
                result.hosts.append(ip)
            else:
                result.pairs.append((ip, port))
        return
    for line in lines:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        ip = _address(line.split(",")[0])
        if ip is None:
            result.malformed += 1
            continue
        result.records += 1
        result.hosts.append(ip)


def _parse_shodan(text: str, result: ImportResult) -> None:
    """`shodan download` banners, one JSON object per line; keeps org/asn/isp/location per address."""
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            banner = json.loads(line)
        except _JSON_ERRORS:
            result.malformed += 1
            continue
        ip = _address(banner.get("ip_str")) if isinstance(banner, dict) else None
        port = _port(banner.get("port")) if isinstance(banner, dict) else None
        if ip is None or port is None:
            result.malformed += 1
            continue
        result.records += 1
        result.pairs.append((ip, port))
        fields = {k: banner[k] for k in SHODAN_FIELDS if banner.get(k) not in (None, "", [], {})}
        if fields:
            result.meta.setdefault(ip, {}).update(fields)

