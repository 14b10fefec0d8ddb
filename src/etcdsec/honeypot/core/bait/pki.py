"""The cluster's keys as kubeadm makes them: the CA certificate and the service-account signing key,
both P-256 (kubeadm's PublicKeysECDSA gate) and both derived from the deployment seed, signed with
RFC 6979 nonces, so the bait is byte-identical after a restart."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def seed_key(seed: str, purpose: str) -> ec.EllipticCurvePrivateKey:
    """An ECDSA P-256 key that is the same for the same deployment seed."""
    digest = hashlib.sha256(f"{seed}/{purpose}".encode()).digest()
    return ec.derive_private_key(int.from_bytes(digest) % (P256_ORDER - 1) + 1, ec.SECP256R1())


def key_id(key: ec.EllipticCurvePrivateKey) -> str:
    """The apiserver's key id: sha256 of the public key's PKIX DER (serviceaccount/jwt.go keyIDFromPublicKey)."""
    return b64url(hashlib.sha256(key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)).digest())


def _es256(key: ec.EllipticCurvePrivateKey, data: bytes) -> bytes:
    """A JWS ES256 signature (r || s); RFC 6979 nonces keep it the same after a restart."""
    try:
        der = key.sign(data, ec.ECDSA(hashes.SHA256(), deterministic_signing=True))
    except TypeError:  # cryptography < 44: stable bytes of the right shape instead (they do not verify)
        return hashlib.sha512(key.private_numbers().private_value.to_bytes(32) + data).digest()
    r, s = decode_dss_signature(der)
    return r.to_bytes(32) + s.to_bytes(32)


def legacy_token(key: ec.EllipticCurvePrivateKey, kid: str, namespace: str, sa: str, secret: str, uid: str) -> str:
    """A legacy (secret-based) service-account token as kube-controller-manager's token controller
    signs it: go-jose's compact JSON with the claims sorted, signed with the cluster's key."""
    head = b64url(json.dumps({"alg": "ES256", "kid": kid}, separators=(",", ":")).encode())
    claims = {"iss": "kubernetes/serviceaccount", "kubernetes.io/serviceaccount/namespace": namespace,
              "kubernetes.io/serviceaccount/secret.name": secret,
              "kubernetes.io/serviceaccount/service-account.name": sa,
              "kubernetes.io/serviceaccount/service-account.uid": uid,
              "sub": f"system:serviceaccount:{namespace}:{sa}"}
    body = b64url(json.dumps(claims, separators=(",", ":")).encode())
    return f"{head}.{body}.{b64url(_es256(key, f'{head}.{body}'.encode()))}"


def ca_pem(seed: str, born: datetime) -> bytes:
    """The cluster CA as kubeadm makes it (certutil.NewSelfSignedCACert: CN and SAN "kubernetes",
    ten years, CA key usages)."""
    key = seed_key(seed, "cluster-ca")
    digest = hashlib.sha256(f"{seed}/cluster-ca-serial".encode()).digest()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kubernetes")])
    usage = x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=True,
                          data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=False,
                          encipher_only=False, decipher_only=False)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(int.from_bytes(digest[:8]) >> 1 | 1)
            .not_valid_before(born).not_valid_after(born + timedelta(days=3650))
            .add_extension(usage, critical=True)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("kubernetes")]), critical=False))
    try:
        signed = cert.sign(key, hashes.SHA256(), ecdsa_deterministic=True)
    except TypeError:  # cryptography < 44: a random nonce, so the signature differs per start
        signed = cert.sign(key, hashes.SHA256())
    return signed.public_bytes(serialization.Encoding.PEM)


def acme_leaf(seed: str, purpose: str, hosts: list[str], issued: datetime) -> tuple[bytes, bytes]:
    """(certificate PEM, key PEM) of a server certificate as cert-manager keeps it from an ACME
    issuer: P-256 key in SEC1 PEM (cert-manager's PKCS1 encoding), 90 days, issued by "R3".
    Signed by a seed key of our own: it parses like the real chain, it does not verify to a root."""
    key = seed_key(seed, f"tls/{purpose}")
    digest = hashlib.sha256(f"{seed}/tls/{purpose}/serial".encode()).digest()
    issuer = x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
                        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Let's Encrypt"),
                        x509.NameAttribute(NameOID.COMMON_NAME, "R3")])
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
            .issuer_name(issuer).public_key(key.public_key()).serial_number(int.from_bytes(digest[:16]) >> 1 | 1)
            .not_valid_before(issued).not_valid_after(issued + timedelta(days=90))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(h) for h in hosts]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True))
    signer = seed_key(seed, "acme-issuer")
    try:
        signed = cert.sign(signer, hashes.SHA256(), ecdsa_deterministic=True)
    except TypeError:  # cryptography < 44: a random nonce, so the signature differs per start
        signed = cert.sign(signer, hashes.SHA256())
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                serialization.NoEncryption())
    return signed.public_bytes(serialization.Encoding.PEM), key_pem
