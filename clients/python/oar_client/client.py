"""The requester's client for one OAR holder."""

from __future__ import annotations

import base64
import json
import os
import sys
import time
from typing import Callable

import requests

from .errors import NoRelease, OarError, RunFailed, problem_from
from .keys import public_hex, public_key, secret_key
from .release import Release, verify_files
from .signing import Signer

#: States a run does not leave.
FINAL = ("succeeded", "failed", "cancelled", "interrupted")


def _bytes(doc) -> bytes:
    """A document given as a path, bytes, str or JSON-able object, as bytes."""
    if isinstance(doc, bytes):
        return doc
    if isinstance(doc, (str, os.PathLike)) and os.path.exists(doc):
        with open(doc, "rb") as f:
            return f.read()
    if isinstance(doc, str):
        return doc.encode()
    return json.dumps(doc).encode()


class Client:
    """Talks to one holder's ``oar serve`` as one requester.

    ``key`` is the requester's ``.key`` file (or hex seed); ``holder`` is the holder's ``.pub``
    file (or hex key), against which every release is verified before it is returned.
    ``ca_cert`` is a PEM file for a server whose TLS certificate a private CA signed."""

    def __init__(self, url: str, key, holder, ca_cert: str | None = None, timeout: float = 60.0):
        self.url = url.rstrip("/")
        self.holder = public_key(holder)
        self._signer = Signer(secret_key(key))
        self._session = requests.Session()
        if ca_cert:
            self._session.verify = ca_cert
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"Client({self.url!r}, requester={self._signer.keyid[:12]}…, holder={public_hex(self.holder)[:12]}…)"

    def _call(self, method: str, path: str, body: bytes = b""):
        url = self.url + path
        prepared = self._signer.prepare(method, url, body)
        try:
            response = self._session.send(prepared, timeout=self.timeout)
        except requests.RequestException as e:
            raise OarError(f"{method} {url}: cannot reach the holder: {e}") from None
        try:
            answer = response.json()
        except ValueError:
            answer = {"detail": response.text[:500]}
        if not 200 <= response.status_code < 300:
            raise problem_from(response.status_code, answer if isinstance(answer, dict) else {}, f"{method} {url}")
        return answer

    # What the requester may use.
    def catalogue(self) -> list[dict]:
        """The datasets this requester may query: names, periods, columns and their public domains."""
        return self._call("GET", "/v1/datasets")

    def modules(self) -> list[dict]:
        """The approved modules this requester could run."""
        return self._call("GET", "/v1/modules")

    def budget(self) -> list[dict]:
        """Per dataset: the requester's total ε and what remains now."""
        return self._call("GET", "/v1/budget")

    def register(self, after: int = 0, limit: int | None = None) -> list[dict]:
        """The public register of releases after entry ``after`` (every page, oldest first).
        The signed head the last page was read against is kept in ``self.register_head``."""
        rows = []
        while True:
            query = f"?after={after}" + (f"&limit={limit}" if limit else "")
            page = self._call("GET", "/v1/audit" + query)
            rows.extend(page["rows"])
            self.register_head = page["head"]
            if page.get("next_after") is None:
                return rows
            after = page["next_after"]

    # Modules and approvals.
    def upload_bundle(self, bundle) -> str:
        """Uploads a signed bundle (path or bytes); returns its module hash."""
        return self._call("POST", "/v1/bundles", _bytes(bundle))["module_hash"]

    def attach_approval(self, approval) -> dict:
        """Uploads an approval (path, bytes or dict); returns its digest and signature count."""
        return self._call("POST", "/v1/approvals", _bytes(approval))

    # Runs.
    def submit(self, module_hash: str, params: dict | None = None, every_seconds: int | None = None) -> "Run":
        """Queues a run of an approved module; returns it."""
        req = {"module_hash": module_hash, "params": params or {}}
        if every_seconds is not None:
            req["every_seconds"] = every_seconds
        answer = self._call("POST", "/v1/runs", json.dumps(req).encode())
        return Run(self, answer["job_id"])

    def run(self, job_id: str) -> "Run":
        """A run submitted earlier."""
        return Run(self, job_id)

    def fetch(self, job_id: str) -> Release:
        """The release of a succeeded run, verified against the holder's key before it is
        returned (:class:`~oar_client.NotVerified` otherwise; nothing is written)."""
        answer = self._call("GET", f"/v1/runs/{job_id}/release")
        files = {}
        for name, data in answer.get("files", {}).items():
            if not name or name != os.path.basename(name) or name in (".", ".."):
                raise OarError(f"the release names a file {name!r} outside its folder")
            files[name] = base64.b64decode(data)
        manifest = verify_files(files, self.holder, job_id)
        return Release(job_id=job_id, holder=public_hex(self.holder), manifest=manifest, files=files)


class Run:
    """One run at one holder."""

    def __init__(self, client: Client, job_id: str):
        self.client = client
        self.id = job_id

    def __repr__(self) -> str:
        return f"Run({self.id!r} at {self.client.url})"

    def status(self) -> dict:
        """The job as the holder reports it: ``status``, ``error``, ``created_at``..."""
        return self.client._call("GET", f"/v1/runs/{self.id}")

    def wait(self, timeout: float = 600.0, progress: bool | Callable[[dict], None] = True, poll: float = 0.5) -> dict:
        """Waits until the run leaves the queue (or ``timeout`` seconds pass); returns its last
        status. ``progress`` prints each change of state to stderr (``True``) or calls a
        function with the status."""
        until = time.monotonic() + timeout
        last = None
        while True:
            job = self.status()
            if job["status"] != last:
                last = job["status"]
                if callable(progress):
                    progress(job)
                elif progress:
                    print(f"run {self.id} at {self.client.url}: {last}", file=sys.stderr)
            if last in FINAL or time.monotonic() > until:
                return job
            time.sleep(poll)

    def cancel(self) -> dict:
        return self.client._call("POST", f"/v1/runs/{self.id}/cancel")

    def fetch(self, wait: float = 600.0, progress: bool | Callable[[dict], None] = True) -> Release:
        """Waits for the run, then returns its verified release; :class:`RunFailed` if it
        ended without one."""
        job = self.wait(wait, progress)
        if job["status"] != "succeeded":
            raise RunFailed(job)
        return self.client.fetch(self.id)


__all__ = ["Client", "Run", "FINAL", "NoRelease"]
