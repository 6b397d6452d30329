#!/usr/bin/env python3
"""Verifies a signed OAR release folder with code OAR did not write: PyPI `rfc8785` for the
canonical JSON, `hashlib` for the digests and `cryptography` for the ed25519 signature.

Usage: verify_release.py RELEASE_DIR HOLDER_PUBLIC_KEY_HEX

The holder signs `context || 0x00 || digest`, where context is "oar-release-v1" and
digest = SHA-256(u64be(len(context)) || context || u64be(len(jcs)) || jcs), jcs being the
RFC 8785 form of the `manifest` object in release.sig.json. Every file the manifest lists must
hash to its entry, and no other file may sit beside them. Prints "OK ..." and exits 0, or
prints what failed and exits 1.
"""

import hashlib
import json
import os
import struct
import sys

import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

CONTEXT = b"oar-release-v1"
SIGNATURE_FILE = "release.sig.json"


def parts_digest(*parts: bytes) -> bytes:
    h = hashlib.sha256()
    for p in parts:
        h.update(struct.pack(">Q", len(p)))
        h.update(p)
    return h.digest()


def main(folder: str, holder_hex: str) -> int:
    with open(os.path.join(folder, SIGNATURE_FILE), "rb") as f:
        signed = json.load(f)
    manifest = signed["manifest"]
    if manifest["holder"] != holder_hex:
        print(f"signed by {manifest['holder']}, not by {holder_hex}")
        return 1
    digest = parts_digest(CONTEXT, rfc8785.dumps(manifest))
    key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(holder_hex))
    try:
        key.verify(bytes.fromhex(signed["signature"]), CONTEXT + b"\x00" + digest)
    except InvalidSignature:
        print("the holder's signature does not verify")
        return 1
    for name, expected in manifest["files"].items():
        with open(os.path.join(folder, name), "rb") as f:
            if hashlib.sha256(f.read()).hexdigest() != expected:
                print(f"{name} was altered after signing")
                return 1
    extra = set(os.listdir(folder)) - set(manifest["files"]) - {SIGNATURE_FILE}
    if extra:
        print(f"files not covered by the signature: {sorted(extra)}")
        return 1
    print(f"OK: release of job {manifest['job_id']} signed by {holder_hex}; "
          f"{len(manifest['files'])} file(s) intact")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        print(__doc__)
        sys.exit(2)
    sys.exit(main(sys.argv[1], sys.argv[2]))
