"""Key files as `oar keygen` writes them: ``NAME.key`` (secret, JSON with the hex seed) and
``NAME.pub`` (public). Every function that takes a key takes the file or the hex key."""

from __future__ import annotations

import json
import os
import re

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from .errors import OarError

_HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")


def _read_json(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise OarError(f"{path}: no such key file") from None
    except ValueError:
        raise OarError(f"{path} is not an OAR key file (not JSON)") from None


def secret_key(key) -> Ed25519PrivateKey:
    """A requester's signing key from its ``.key`` file (or a 64-hex-digit seed)."""
    if isinstance(key, Ed25519PrivateKey):
        return key
    text = os.fspath(key)
    if _HEX64.match(text.strip()):
        return Ed25519PrivateKey.from_private_bytes(bytes.fromhex(text.strip()))
    doc = _read_json(text)
    if doc.get("kind") == "oar-public-key":
        raise OarError(f"{text} is a public key (.pub); sign with the secret key file (.key)")
    if doc.get("kind") != "oar-secret-key" or doc.get("algorithm") != "ed25519":
        raise OarError(f"{text} is not an OAR secret key file")
    private = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(doc["secret"]))
    if public_hex(private.public_key()) != doc.get("public"):
        raise OarError(f"{text}: the public key does not match the secret")
    return private


def public_key(key) -> Ed25519PublicKey:
    """A public key from a ``.pub`` file or 64 hex digits (a holder's, to verify releases)."""
    if isinstance(key, Ed25519PublicKey):
        return key
    text = os.fspath(key).strip()
    if _HEX64.match(text):
        return Ed25519PublicKey.from_public_bytes(bytes.fromhex(text))
    doc = _read_json(text)
    if doc.get("kind") == "oar-secret-key":
        raise OarError(f"{text} is a secret key file; give the public one (the .pub beside it)")
    if doc.get("kind") != "oar-public-key":
        raise OarError(f"{text} is not an OAR public key file")
    return Ed25519PublicKey.from_public_bytes(bytes.fromhex(doc["public"]))


def public_hex(key) -> str:
    """The key's 64 hex digits (OAR's key id)."""
    if isinstance(key, Ed25519PrivateKey):
        key = key.public_key()
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex()
