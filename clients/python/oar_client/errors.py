"""Errors of the OAR client. A refusal by the server is a :class:`Problem` carrying the server's
RFC 9457 problem type (``/problems/KIND``), title, status and detail; each kind has its own
subclass, so ``except oar_client.RateLimited`` works."""

from __future__ import annotations


class OarError(Exception):
    """Anything that went wrong talking to a holder or checking what it sent."""


class Problem(OarError):
    """The server refused the request with an RFC 9457 problem."""

    #: The problem kind, the last part of its ``type`` (``/problems/rate-limited``).
    kind = "problem"

    def __init__(self, status: int, type_: str, title: str, detail: str, url: str = ""):
        self.status = status
        self.type = type_
        self.title = title
        self.detail = detail
        self.url = url
        super().__init__(f"{url}: HTTP {status} {title}: {detail}" if url else f"HTTP {status} {title}: {detail}")


def _kind(name: str, doc: str) -> type:
    cls = type(
        "".join(p.capitalize() for p in name.split("-")),
        (Problem,),
        {"kind": name, "__doc__": doc},
    )
    return cls


MalformedRequest = _kind("malformed-request", "The request was malformed.")
Unauthenticated = _kind("unauthenticated", "The request is not signed by a requester this holder knows.")
Forbidden = _kind("forbidden", "Not permitted, or no such resource (the two are not told apart).")
BodyTooLarge = _kind("body-too-large", "The body is larger than the route allows.")
RateLimited = _kind("rate-limited", "Too many requests: slow down and retry.")
Overloaded = _kind("overloaded", "The server is at its limit of concurrent requests: retry shortly.")
RequestTimeout = _kind("request-timeout", "The request took longer than the server allows.")
Stopping = _kind("stopping", "The server is stopping: retry shortly.")
BundleNotTrusted = _kind("bundle-not-trusted", "The bundle's signature or author is not trusted by this holder.")
InvalidDocument = _kind("invalid-document", "The approval or list did not check; nothing was stored.")
NoRelease = _kind("no-release", "The job has no release (it did not succeed).")
Internal = _kind("internal", "The holder's server failed; its log has details.")

KINDS = {
    cls.kind: cls
    for cls in (
        MalformedRequest, Unauthenticated, Forbidden, BodyTooLarge, RateLimited, Overloaded,
        RequestTimeout, Stopping, BundleNotTrusted, InvalidDocument, NoRelease, Internal,
    )
}


def problem_from(status: int, body: dict, url: str) -> Problem:
    """The :class:`Problem` subclass for a problem+json answer (or a plain one for others)."""
    type_ = str(body.get("type", ""))
    kind = type_.rstrip("/").rsplit("/", 1)[-1]
    cls = KINDS.get(kind, Problem)
    detail = body.get("detail") or body.get("error") or ""
    return cls(status, type_, str(body.get("title", "")), str(detail), url)


class RunFailed(OarError):
    """The run ended without a release (failed, cancelled or interrupted)."""

    def __init__(self, job: dict):
        self.job = job
        super().__init__(f"run {job.get('id')} is {job.get('status')}: {job.get('error') or 'no reason given'}")


class NotVerified(OarError):
    """A release whose holder signature, file hashes or job does not check. Nothing from it is
    returned or written."""


class FederationError(OarError):
    """A federated run could not be combined without misleading: a holder refused or is down,
    or the releases do not match."""
