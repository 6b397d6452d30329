"""RFC 9421 HTTP Message Signatures for OAR requests, made by PyPI's ``http-message-signatures``
(not by this package): every request covers ``"@method" "@authority" "@path" "@query"
"content-digest"`` with ``created``, ``keyid`` (the hex public key), ``alg="ed25519"`` and a
fresh ``nonce``, as OAR servers require."""

from __future__ import annotations

import base64
import datetime
import hashlib
import secrets

import requests
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from http_message_signatures import HTTPMessageSigner, HTTPSignatureKeyResolver, algorithms

from .keys import public_hex

COMPONENTS = ("@method", "@authority", "@path", "@query", "content-digest")


class _OneKey(HTTPSignatureKeyResolver):
    def __init__(self, key: Ed25519PrivateKey):
        self.key = key
        self.keyid = public_hex(key)

    def resolve_private_key(self, key_id):
        if key_id != self.keyid:
            raise KeyError(key_id)
        return self.key

    def resolve_public_key(self, key_id):
        return self.key.public_key() if key_id == self.keyid else None


def content_digest(body: bytes) -> str:
    """RFC 9530 ``Content-Digest`` of ``body`` (SHA-256)."""
    return "sha-256=:" + base64.b64encode(hashlib.sha256(body).digest()).decode() + ":"


class Signer:
    """Signs prepared ``requests`` requests with one requester key."""

    def __init__(self, key: Ed25519PrivateKey):
        self._resolver = _OneKey(key)
        self._signer = HTTPMessageSigner(signature_algorithm=algorithms.ED25519, key_resolver=self._resolver)

    @property
    def keyid(self) -> str:
        return self._resolver.keyid

    def prepare(self, method: str, url: str, body: bytes = b"") -> requests.PreparedRequest:
        prepared = requests.Request(method, url, data=body or None).prepare()
        prepared.headers["Content-Digest"] = content_digest(body)
        if body:
            prepared.headers["Content-Type"] = "application/json"
        self._signer.sign(
            prepared,
            key_id=self.keyid,
            created=datetime.datetime.now(datetime.timezone.utc),
            nonce=secrets.token_urlsafe(18),
            covered_component_ids=COMPONENTS,
            body=body,
            use_existing_digest=True,
        )
        return prepared
