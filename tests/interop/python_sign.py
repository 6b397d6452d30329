#!/usr/bin/env python3
"""An OAR API client that signs its requests with PyPI's `http-message-signatures` (RFC 9421).

It proves that a standard RFC 9421 implementation we did not write can talk to an OAR server:
every request covers "@method" "@authority" "@path" "@query" "content-digest" with the
parameters created, keyid (hex of the ed25519 public key), alg="ed25519" and a random nonce,
under the library's own default label.

Usage:
  python_sign.py BASE_URL SEED_HEX MODULE_HASH OUT_DIR
      POST BASE_URL/v1/runs {"module_hash": MODULE_HASH, "params": {}}, wait until the run
      succeeds (300 s at most), fetch its release and write its files to OUT_DIR.
  python_sign.py --offline SEED_HEX BODY
      Print, as JSON, the signature headers of POST http://127.0.0.1:8420/v1/runs with BODY.

SEED_HEX is the requester's 32-byte ed25519 seed in hex (64 digits).
Install: python3 -m venv venv && venv/bin/pip install -r tests/interop/requirements.txt
"""

import base64
import datetime
import hashlib
import json
import os
import secrets
import sys
import time

import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from http_message_signatures import HTTPMessageSigner, HTTPSignatureKeyResolver, algorithms

COMPONENTS = ("@method", "@authority", "@path", "@query", "content-digest")
OFFLINE_URL = "http://127.0.0.1:8420/v1/runs"
RUN_TIMEOUT_SECONDS = 300


class SeedKeyResolver(HTTPSignatureKeyResolver):
    """Resolves the one requester key, whose keyid is the hex of its public key."""

    def __init__(self, seed_hex):
        try:
            seed = bytes.fromhex(seed_hex)
        except ValueError:
            seed = b""
        if len(seed) != 32:
            fail("SEED_HEX must be 64 hex digits (a 32-byte ed25519 seed)")
        self.private_key = Ed25519PrivateKey.from_private_bytes(seed)
        public = self.private_key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        self.keyid = public.hex()

    def resolve_private_key(self, key_id):
        if key_id != self.keyid:
            raise KeyError(key_id)
        return self.private_key

    def resolve_public_key(self, key_id):
        return self.private_key.public_key() if key_id == self.keyid else None


def fail(message):
    print(f"python_sign.py: error: {message}", file=sys.stderr)
    sys.exit(1)


def content_digest(body):
    return "sha-256=:" + base64.b64encode(hashlib.sha256(body).digest()).decode() + ":"


def signed_request(resolver, method, url, body):
    """A prepared `requests` request with Content-Digest, Signature-Input and Signature."""
    prepared = requests.Request(method, url, data=body or None).prepare()
    prepared.headers["Content-Digest"] = content_digest(body)
    if body:
        prepared.headers["Content-Type"] = "application/json"
    signer = HTTPMessageSigner(signature_algorithm=algorithms.ED25519, key_resolver=resolver)
    signer.sign(
        prepared,
        key_id=resolver.keyid,
        created=datetime.datetime.now(datetime.timezone.utc),
        nonce=secrets.token_urlsafe(18),
        covered_component_ids=COMPONENTS,
        body=body,
        use_existing_digest=True,
    )
    return prepared


def call(session, resolver, method, url, body=b""):
    """Sends a signed request; returns the decoded JSON of a 2xx answer, else exits."""
    prepared = signed_request(resolver, method, url, body)
    try:
        response = session.send(prepared, timeout=60)
    except requests.RequestException as e:
        fail(f"{method} {url}: cannot reach the server: {e}")
    if not 200 <= response.status_code < 300:
        fail(f"{method} {url}: HTTP {response.status_code}: {response.text.strip()}")
    try:
        return response.status_code, response.json()
    except ValueError:
        fail(f"{method} {url}: HTTP {response.status_code} but the body is not JSON: {response.text[:500]}")


def run(base_url, seed_hex, module_hash, out_dir):
    resolver = SeedKeyResolver(seed_hex)
    base_url = base_url.rstrip("/")
    session = requests.Session()
    body = json.dumps({"module_hash": module_hash, "params": {}}).encode()
    status, answer = call(session, resolver, "POST", f"{base_url}/v1/runs", body)
    if status != 202 or "job_id" not in answer:
        fail(f"POST {base_url}/v1/runs: expected 202 with a job_id, got HTTP {status}: {answer}")
    job_id = answer["job_id"]
    print(f"submitted run {job_id}", file=sys.stderr)

    deadline = time.monotonic() + RUN_TIMEOUT_SECONDS
    while True:
        _, job = call(session, resolver, "GET", f"{base_url}/v1/runs/{job_id}")
        state = job.get("status")
        if state == "succeeded":
            break
        if state == "failed":
            fail(f"run {job_id} failed: {json.dumps(job)}")
        if time.monotonic() > deadline:
            fail(f"run {job_id} did not finish within {RUN_TIMEOUT_SECONDS} s (last status {state!r})")
        time.sleep(1)

    _, release = call(session, resolver, "GET", f"{base_url}/v1/runs/{job_id}/release")
    files = release.get("files")
    if not isinstance(files, dict):
        fail(f"GET {base_url}/v1/runs/{job_id}/release: no files in the answer: {release}")
    os.makedirs(out_dir, exist_ok=True)
    for name, data in files.items():
        if not name or name != os.path.basename(name) or name in (".", ".."):
            fail(f"the release names a file {name!r} outside OUT_DIR; refusing to write it")
        with open(os.path.join(out_dir, name), "wb") as f:
            f.write(base64.b64decode(data))
    print(f"run {job_id}: wrote {len(files)} file(s) from holder {release.get('holder')} to {out_dir}")


def offline(seed_hex, body):
    resolver = SeedKeyResolver(seed_hex)
    prepared = signed_request(resolver, "POST", OFFLINE_URL, body.encode())
    print(
        json.dumps(
            {
                "signature-input": prepared.headers["Signature-Input"],
                "signature": prepared.headers["Signature"],
                "content-digest": prepared.headers["Content-Digest"],
            }
        )
    )


def main(argv):
    if len(argv) == 4 and argv[0] == "--offline":
        fail("--offline takes SEED_HEX BODY")
    if len(argv) == 3 and argv[0] == "--offline":
        offline(argv[1], argv[2])
    elif len(argv) == 4:
        run(*argv)
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main(sys.argv[1:])
