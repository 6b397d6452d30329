"""A holder's signed release, verified offline before anything in it is used: the holder's
ed25519 signature over the RFC 8785 form of the release manifest (context ``oar-release-v1``),
every file's SHA-256, no file beside those signed, and the job it answers."""

from __future__ import annotations

import hashlib
import io
import json
import os
import struct
from dataclasses import dataclass, field

import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from .errors import NotVerified
from .keys import public_hex

CONTEXT = b"oar-release-v1"
SIGNATURE_FILE = "release.sig.json"


def _parts_digest(*parts: bytes) -> bytes:
    h = hashlib.sha256()
    for p in parts:
        h.update(struct.pack(">Q", len(p)))
        h.update(p)
    return h.digest()


def verify_files(files: dict[str, bytes], holder: Ed25519PublicKey, job_id: str | None = None) -> dict:
    """Checks a release's files against the holder's key; returns the signed manifest, or raises
    :class:`NotVerified` naming what failed."""
    if SIGNATURE_FILE not in files:
        raise NotVerified(f"the release has no {SIGNATURE_FILE}: it is not signed")
    try:
        signed = json.loads(files[SIGNATURE_FILE])
        manifest = signed["manifest"]
        signature = bytes.fromhex(signed["signature"])
    except (ValueError, KeyError, TypeError):
        raise NotVerified(f"{SIGNATURE_FILE} is malformed") from None
    expected = public_hex(holder)
    if manifest.get("holder") != expected:
        raise NotVerified(f"signed by {manifest.get('holder')}, not by the holder {expected}")
    digest = _parts_digest(CONTEXT, rfc8785.dumps(manifest))
    try:
        holder.verify(signature, CONTEXT + b"\x00" + digest)
    except InvalidSignature:
        raise NotVerified("the holder's signature does not verify") from None
    listed = manifest.get("files", {})
    for name, sha in listed.items():
        if name not in files:
            raise NotVerified(f"{name} is signed but missing")
        if hashlib.sha256(files[name]).hexdigest() != sha:
            raise NotVerified(f"{name} was altered after the holder signed it")
    extra = set(files) - set(listed) - {SIGNATURE_FILE}
    if extra:
        raise NotVerified(f"files not covered by the signature: {sorted(extra)}")
    if job_id is not None and manifest.get("job_id") != job_id:
        raise NotVerified(f"the release is signed for job {manifest.get('job_id')}, not {job_id}")
    return manifest


@dataclass
class Release:
    """A verified release: its manifest, ``release.json`` and every file's bytes."""

    job_id: str
    holder: str
    manifest: dict
    files: dict[str, bytes] = field(repr=False)

    @property
    def info(self) -> dict:
        """``release.json``: module, approval, ε spent, the gate's record and the tables."""
        return json.loads(self.files["release.json"])

    @property
    def epsilon_total(self) -> float:
        return float(self.info["epsilon_total"])

    def table_names(self) -> list[str]:
        return [t["name"] for t in self.info["tables"]]

    def table(self, name: str, library: str = "polars"):
        """Table ``name`` as a DataFrame: keys, each value with ``_ci95_low``, ``_ci95_high`` and
        ``_noise_scale`` columns, ``status`` and ``suppressed_because``. ``library`` is
        ``"polars"`` (default) or ``"pandas"``."""
        file = _file_name(name) + ".parquet"
        if file not in self.files:
            raise KeyError(f"no table {name!r}; tables: {', '.join(self.table_names())}")
        if library == "polars":
            import polars as pl

            return pl.read_parquet(io.BytesIO(self.files[file]))
        if library == "pandas":
            import pandas as pd

            csv = self.files[_file_name(name) + ".csv"].decode()
            return pd.read_csv(io.StringIO(csv), keep_default_na=False, na_values=[""],
                               dtype={k: str for k in self._keys(name)})
        raise ValueError("library is 'polars' or 'pandas'")

    def _keys(self, name: str) -> list[str]:
        for t in self.info["tables"]:
            if t["name"] == name:
                return t["table"]["key_columns"]
        return []

    def write(self, folder: str) -> list[str]:
        """Writes every file into ``folder`` (created; it must be empty or absent)."""
        os.makedirs(folder, exist_ok=True)
        if os.listdir(folder):
            raise FileExistsError(f"{folder} is not empty")
        written = []
        for name, data in self.files.items():
            path = os.path.join(folder, name)
            with open(path, "wb") as f:
                f.write(data)
            written.append(path)
        return written


def _file_name(table: str) -> str:
    return "".join(c if c.isascii() and (c.isalnum() or c in "_-") else "_" for c in table)
