"""OAR guest SDK for Python: write analysis modules that ask the host for differentially private
aggregates, never rows.

A module is a function ``run(ctx, params)``. It builds plans with the same fluent builder as the
Rust SDK (``ctx.dataset("cdr").derive(...).group_by([...]).count_units("n").release(1.0)``), gets
back tables that already passed the host's privacy gate, and publishes tables with ``ctx.emit``.
The JSON a plan becomes is byte for byte what the Rust SDK sends for the same plan.

>>> from oar_guest import Context, col
>>> from oar_guest.testing import FakeHost, cdr_schema
>>> host = FakeHost().with_dataset(cdr_schema())
>>> ctx = Context(host)
>>> table = ctx.dataset("cdr").group_by(["region"]).count_units("n").release(0.5)
>>> ctx.emit("by_region", table)
>>> sorted(host.emitted)
['by_region']
"""

from . import per_unit
from .errors import DatasetError, EmitError, OarError, PlanError, ProtocolError, Refused
from .expr import Expr, col, lit
from .host import Context, Host, HostRefusal, Query
from .table import SUPPRESSIONS, Row, Table

__all__ = [
    "Context",
    "DatasetError",
    "EmitError",
    "Expr",
    "Host",
    "HostRefusal",
    "OarError",
    "PlanError",
    "ProtocolError",
    "Query",
    "Refused",
    "Row",
    "SUPPRESSIONS",
    "Table",
    "col",
    "lit",
    "per_unit",
]
