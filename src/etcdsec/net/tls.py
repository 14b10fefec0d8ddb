"""TLS for probing: contexts that see any server certificate, and what that certificate says."""

from __future__ import annotations

import datetime as dt
import ssl
import warnings

from cryptography import x509
from cryptography.x509.oid import NameOID

from etcdsec.model import TLSInfo

# OpenSSL alert reasons a Go TLS server sends when it requires a client certificate and got none:
# TLS 1.3 "certificate required" (116), TLS 1.2 "bad certificate" (42).
_CLIENT_CERT_ALERTS = ("CERTIFICATE_REQUIRED", "BAD_CERTIFICATE")


def client_context(cacert: str | None = None, cert: str | None = None, key: str | None = None,
                   alpn: tuple[str, ...] = ("http/1.1",)) -> ssl.SSLContext:
    """Unverified by default (a prober must see every server); verified when the owner gives a CA."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    if cacert:
        ctx.load_verify_locations(cacert)
        ctx.verify_mode = ssl.CERT_REQUIRED
    else:
        ctx.verify_mode = ssl.CERT_NONE
    if cert:
        ctx.load_cert_chain(cert, key)
    # See old servers too: allow legacy protocol versions and ciphers, and report them as findings.
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            ctx.minimum_version = ssl.TLSVersion.TLSv1
        ctx.set_ciphers("ALL:@SECLEVEL=0")
    except (ssl.SSLError, ValueError):
        pass
    ctx.set_alpn_protocols(list(alpn))
    return ctx


def is_client_cert_alert(exc: BaseException) -> bool:
    text = f"{getattr(exc, 'reason', '')} {exc}".upper()
    return any(a in text for a in _CLIENT_CERT_ALERTS)


def _name(name: x509.Name) -> str:
    cn = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(cn[0].value) if cn else name.rfc4514_string()


def describe(ssl_object: ssl.SSLObject | None, now: dt.datetime | None = None) -> TLSInfo | None:
    if ssl_object is None:
        return None
    info = TLSInfo(version=ssl_object.version(), cipher=(ssl_object.cipher() or (None,))[0])
    der = ssl_object.getpeercert(binary_form=True)
    if der:
        info_from_der(der, info, now)
    return info


def info_from_der(der: bytes, info: TLSInfo, now: dt.datetime | None = None) -> TLSInfo:
    now = now or dt.datetime.now(dt.UTC)
    try:
        cert = x509.load_der_x509_certificate(der)
    except ValueError:
        return info
    info.subject = _name(cert.subject)
    info.issuer = _name(cert.issuer)
    info.self_signed = cert.subject == cert.issuer
    not_after = cert.not_valid_after_utc
    info.not_after = not_after.isoformat()
    info.expired = not_after < now
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        info.sans = [str(v) for v in san.get_values_for_type(x509.DNSName)]
        info.sans += [str(v) for v in san.get_values_for_type(x509.IPAddress)]
    except x509.ExtensionNotFound:
        pass
    return info


def leaf_certificate_from_records(data: bytes) -> bytes | None:
    """The server's leaf certificate (DER) from the raw bytes of a TLS <= 1.2 handshake.

    Up to TLS 1.2 the Certificate message travels in clear, so it can be read even when the
    handshake later fails because the server wants a client certificate (sans-IO: bytes in).
    """
    handshake = bytearray()
    pos = 0
    while pos + 5 <= len(data):
        ctype, length = data[pos], int.from_bytes(data[pos + 3:pos + 5], "big")
        body = data[pos + 5:pos + 5 + length]
        pos += 5 + length
        if ctype == 22:  # handshake records may split or merge messages
            handshake += body
        elif ctype == 20:  # ChangeCipherSpec: what follows is encrypted
            break
    i = 0
    while i + 4 <= len(handshake):
        mtype, mlen = handshake[i], int.from_bytes(handshake[i + 1:i + 4], "big")
        msg = bytes(handshake[i + 4:i + 4 + mlen])
        i += 4 + mlen
        if mtype == 11 and len(msg) >= 6:  # Certificate: list length, then (3-byte length, DER)*
            first = int.from_bytes(msg[3:6], "big")
            der = msg[6:6 + first]
            return der if len(der) == first and first > 0 else None
    return None


async def grab_certificate_tls12(ip: str, port: int, sni: str | None, timeout: float) -> TLSInfo | None:
    """Handshake as TLS 1.2 only as far as the server's Certificate message, and describe it."""
    import asyncio

    ctx = client_context()
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname=sni or None)
    received = bytearray()
    writer = None
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(ip, port)
            while len(received) < 256 * 1024:
                try:
                    obj.do_handshake()
                    break
                except ssl.SSLWantReadError:
                    pass
                except ssl.SSLError:
                    break
                if outgoing.pending:
                    writer.write(outgoing.read())
                    await writer.drain()
                data = await reader.read(65536)
                if not data:
                    break
                received += data
                incoming.write(data)
                if leaf_certificate_from_records(bytes(received)):
                    break
    except (TimeoutError, OSError):
        pass
    finally:
        if writer is not None:
            writer.close()
    der = leaf_certificate_from_records(bytes(received))
    if der is None:
        return None
    return info_from_der(der, TLSInfo(version="TLSv1.2"))
