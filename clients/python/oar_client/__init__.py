"""Python client for OAR holders.

    from oar_client import Client
    holder = Client("https://holder.example:8420", key="stats-office.key", holder="holder.pub")
    release = holder.submit(module_hash, {"epsilon": 0.5}).fetch()
    release.table("population_by_region_day")        # a Polars DataFrame with intervals

Every request is signed (RFC 9421, PyPI's ``http-message-signatures``); every release is
verified against the holder's key before it is returned; refusals raise the server's problem
type as an exception (:mod:`oar_client.errors`). :mod:`oar_client.federation` asks the same
question of several holders and combines their releases.
"""

from .client import Client, Run
from .errors import (
    BundleNotTrusted, FederationError, Forbidden, Internal, InvalidDocument, MalformedRequest,
    NoRelease, NotVerified, OarError, Overloaded, Problem, RateLimited, RunFailed, Stopping,
    Unauthenticated,
)
from .release import Release, verify_files

__all__ = [
    "Client", "Run", "Release", "verify_files", "OarError", "Problem", "MalformedRequest",
    "Unauthenticated", "Forbidden", "RateLimited", "Overloaded", "Stopping", "BundleNotTrusted",
    "InvalidDocument", "NoRelease", "Internal", "RunFailed", "NotVerified", "FederationError",
]
