"""What can go wrong in a module, each naming what to fix."""

from __future__ import annotations


class OarError(Exception):
    """Base of every error the SDK raises."""


class PlanError(OarError):
    """The plan is malformed; raised before anything reaches the host. ``column`` names the
    column (or aggregate) at fault when there is one."""

    def __init__(self, message: str, column: str | None = None):
        super().__init__(message)
        self.column = column


class Refused(OarError):
    """The host refused the query (nothing was released or charged); the text is its reason."""


class DatasetError(OarError):
    """A dataset is not in this run's scope or does not exist."""


class EmitError(OarError):
    """The host refused a published table (undeclared name, malformed rows)."""


class ProtocolError(OarError):
    """The host answered something the SDK cannot read (a bug on one side)."""
