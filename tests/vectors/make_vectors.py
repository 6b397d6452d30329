#!/usr/bin/env python3
"""Computes OAR's canonical-encoding test vectors with tools independent of the Rust code.

Canonical JSON here is `json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=False)`,
which equals RFC 8785 (JCS) for these documents: ASCII keys, integers and short decimals only.
Digests use hashlib, signatures the `cryptography` package's Ed25519. Run it to regenerate
`canonical.json`; `tests/canonical_vectors.rs` checks the Rust implementation reproduces every byte.
"""
import hashlib
import json
import pathlib

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives import serialization


def parts_digest(*parts):
    # keys::sha256_parts: each part preceded by its length as a big-endian u64.
    h = hashlib.sha256()
    for p in parts:
        h.update(len(p).to_bytes(8, "big"))
        h.update(p)
    return h.digest()


def canonical(doc):
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def key(seed):
    # KeyPair::from_seed: the ed25519 secret is SHA-256 of the seed text.
    return Ed25519PrivateKey.from_private_bytes(hashlib.sha256(seed.encode()).digest())


def public_hex(k):
    raw = k.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return raw.hex()


def vector(name, context, doc, seed):
    body = canonical(doc)
    if context is None:
        digest = hashlib.sha256(body).digest()
        signature = None
    else:
        digest = parts_digest(context.encode(), body)
        k = key(seed)
        signature = k.sign(context.encode() + b"\x00" + digest).hex()
    # The document as a person might write it: indented, keys in another order.
    shuffled = json.dumps(dict(reversed(list(doc.items()))), indent=3, ensure_ascii=True)
    out = {
        "name": name,
        "context": context,
        "document": shuffled,
        "canonical": body.decode(),
        "digest": digest.hex(),
    }
    if signature:
        out.update(signer_seed=seed, signer_public=public_hex(key(seed)), signature=signature)
    return out


approval = {
    "module_name": "population",
    "module_hash": "ab" * 32,
    "manifest_hash": "cd" * 32,
    "purpose": "Présence par région\n(«test» \"vector\")",
    "datasets": [{"name": "cdr", "columns": ["timestamp", "region"]}],
    "epsilon_per_run": 0.5,
    "epsilon_total": 10,
    "valid_from": "2026-01-01T00:00:00Z",
    "valid_until": "2026-12-31T23:59:59Z",
    "conditions": "publish within 30 days\tonly",
}
manifest = {
    "name": "population",
    "version": "0.1.0",
    "author": "Office for Statistics (example)",
    "purpose": "Present population per region per day.",
    "max_epsilon_per_run": 2,
    "datasets": [{"name": "cdr", "columns": ["timestamp", "region"]}],
    "outputs": [{"name": "population_by_region_day", "description": "Noisy counts."}],
}
revocations = {
    "serial": 3,
    "issued_at": "2026-06-01T12:00:00Z",
    "entries": [
        {"kind": "module", "id": "ab" * 32, "reason": "bug in bounds", "revoked_at": "2026-06-01T12:00:00Z"},
        {"kind": "key", "id": "ef" * 32, "reason": "laptop lost", "revoked_at": "2026-05-30T08:30:00Z"},
    ],
}
vectors = [
    vector("approval record", "oar-approval-v1", approval, "example member 1"),
    vector("manifest", None, manifest, None),
    vector("revocation list", "oar-revocation-v1", revocations, "example holder"),
]
path = pathlib.Path(__file__).with_name("canonical.json")
path.write_text(json.dumps(vectors, indent=2, ensure_ascii=False) + "\n")
print(f"wrote {path}")
