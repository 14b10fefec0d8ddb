"""Kubernetes EncryptionConfiguration: which provider really encrypts Secrets written to etcd.

For each resource the API server uses the first `resources[]` entry that matches it, and within that
entry the FIRST provider encrypts new writes; the others are only tried when reading. So `identity`
first means Secrets are stored in plaintext, whatever follows it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from etcdsec.audit.yamllines import line_of

# Names under which Secrets match a `resources` list entry (core group: "secrets", "*." or "*.*").
_MATCHES_SECRETS = {"secrets", "secrets.", "*.", "*.*"}
# provider -> (severity when first, why); None severity means it encrypts well.
PROVIDERS: dict[str, tuple[str | None, str]] = {
    "identity": ("high", "writes Secrets to etcd in plaintext"),
    "aescbc": ("medium", "encrypts, but AES-CBC is rated weak (padding oracle); prefer kms v2 or secretbox"),
    "aesgcm": ("low", "encrypts, but its key must be rotated every 200,000 writes"),
    "secretbox": (None, "encrypts with XSalsa20-Poly1305"),
    "kms": (None, "envelope encryption through a KMS"),
}


@dataclass(frozen=True)
class Verdict:
    severity: str | None  # None: encrypted well
    title: str
    line: int | None


def secrets_verdict(doc: Any) -> Verdict:
    """What happens to a Secret written under this EncryptionConfiguration document."""
    if not isinstance(doc, dict) or doc.get("kind") != "EncryptionConfiguration":
        return Verdict("high", "file is not an EncryptionConfiguration: Secrets are not encrypted", None)
    entries = doc.get("resources") or []
    for index, entry in enumerate(entries if isinstance(entries, list) else []):
        if not isinstance(entry, dict):
            continue
        names = {str(r) for r in entry.get("resources") or []}
        if not names & _MATCHES_SECRETS:
            continue
        providers = entry.get("providers") or []
        if not isinstance(providers, list) or not providers or not isinstance(providers[0], dict):
            return Verdict("high", "the entry for secrets lists no provider", line_of(entries, index))
        first = providers[0]
        name = str(next(iter(first), "?"))
        severity, why = PROVIDERS.get(name, ("medium", "is not a provider this audit knows"))
        later = [str(next(iter(p), "")) for p in providers[1:] if isinstance(p, dict)]
        note = ""
        if name == "identity" and any(p != "identity" for p in later):
            note = f"; {', '.join(p for p in later if p != 'identity')} listed after it only decrypts"
        matched = ", ".join(sorted(names & _MATCHES_SECRETS))
        return Verdict(severity, f"first provider for Secrets (entry {matched}) is {name}: it {why}{note}",
                       line_of(providers, 0))
    return Verdict("high", "no resources entry matches secrets: Secrets are stored in plaintext",
                   line_of(doc, "resources"))
