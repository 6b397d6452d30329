"""The host a module talks to, the context that wraps it and the query builder.

In a component the host is the WIT import ``oar:runtime/host`` (``guest-sdk/wit/oar.wit``);
natively it is any object with the same six methods, such as :class:`oar_guest.testing.FakeHost`.
Both speak the same JSON, so a module cannot tell them apart.
"""

from __future__ import annotations

import json
import math
from typing import Any, Iterable, Optional, Protocol

from . import _validate
from ._json import dumps
from .errors import DatasetError, EmitError, PlanError, ProtocolError, Refused
from .expr import Expr, col
from .per_unit import PerUnit
from .table import Table


class Host(Protocol):
    """The calls a module can make, one to one with the WIT ``host`` interface. Errors are
    returned as text by raising :class:`HostRefusal`."""

    def datasets(self) -> list[str]: ...
    def dataset_schema(self, name: str) -> str: ...
    def query(self, plan: str) -> str: ...
    def check_plan(self, plan: str) -> None: ...
    def budget_remaining(self, dataset: str) -> float: ...
    def emit(self, name: str, table: str) -> None: ...
    def log(self, message: str) -> None: ...


class HostRefusal(Exception):
    """What a :class:`Host` raises for the WIT's ``err(reason)``."""


class Context:
    """A module's handle on the host: datasets, schemas, queries, budget, ``emit`` and ``log``.

    >>> from oar_guest.testing import FakeHost, cdr_schema
    >>> ctx = Context(FakeHost().with_dataset(cdr_schema()))
    >>> ctx.datasets()
    ['cdr']
    """

    def __init__(self, host: Host):
        self._host = host

    def datasets(self) -> list[str]:
        """Datasets this run may read."""
        return list(self._host.datasets())

    def schema(self, name: str) -> dict[str, Any]:
        """The public schema of ``name`` (free: it is declared, not learnt from the data)."""
        try:
            text = self._host.dataset_schema(name)
        except HostRefusal as e:
            raise DatasetError(f"dataset '{name}': {e}") from None
        return json.loads(text)

    def dataset(self, name: str) -> "Query":
        """Starts a query on dataset ``name``."""
        return Query(self, self.schema(name))

    def budget_remaining(self, dataset: str) -> float:
        """Epsilon this run may still spend on ``dataset``."""
        return float(self._host.budget_remaining(dataset))

    def emit(self, name: str, table: Table) -> None:
        """Publishes ``table`` under ``name`` (a name the manifest declares)."""
        try:
            self._host.emit(name, table.dumps())
        except HostRefusal as e:
            raise EmitError(f"table '{name}': {e}") from None

    def log(self, message: str) -> None:
        """A line for the run log (never forwarded to requesters)."""
        self._host.log(message)

    def _query(self, plan: str) -> Table:
        try:
            text = self._host.query(plan)
        except HostRefusal as e:
            raise Refused(str(e)) from None
        try:
            return Table.from_json(json.loads(text))
        except (KeyError, TypeError, ValueError) as e:
            raise ProtocolError(f"the host answered a table the SDK cannot read: {e}") from None

    def _check(self, plan: str) -> None:
        try:
            self._host.check_plan(plan)
        except HostRefusal as e:
            raise Refused(str(e)) from None


class Query:
    """A plan under construction: steps, keys, aggregates and bounds, released with
    :meth:`release`. Each method returns the query, so calls chain.

    >>> from oar_guest.testing import FakeHost, cdr_schema
    >>> ctx = Context(FakeHost().with_dataset(cdr_schema()))
    >>> q = ctx.dataset("cdr").derive("day", col("timestamp").date())
    >>> q = q.group_by(["region", "day"]).count_units("subscribers").max_groups_per_unit(14)
    >>> q.plan_json(1.0)[:60]
    '{"dataset":"cdr","steps":[{"op":"derive","name":"day","expr"'
    """

    def __init__(self, ctx: Context, schema: dict[str, Any]):
        self._ctx = ctx
        self._schema = schema
        self._steps: list[dict[str, Any]] = []
        self._group_by: list[str] = []
        self._aggregates: list[dict[str, Any]] = []
        self._bounds: dict[str, int] = {}
        self._totals = False
        self._key_selection = False

    @property
    def schema(self) -> dict[str, Any]:
        """The dataset's public schema."""
        return self._schema

    def filter(self, predicate: Expr) -> "Query":
        """Keeps the rows where ``predicate`` holds.

        >>> from oar_guest.testing import FakeHost, cdr_schema
        >>> q = Context(FakeHost().with_dataset(cdr_schema())).dataset("cdr")
        >>> q.filter(col("region") == "R01")
        Traceback (most recent call last):
        ...
        oar_guest.errors.PlanError: filter needs an expression, not a bool: `col(x) == v` compares two Python objects; write col(x).eq(v) (or .ne(v))
        """
        _need_expr("filter", predicate)
        self._steps.append({"op": "filter", "predicate": predicate.to_json()})
        return self

    def derive(self, name: str, expr: Expr) -> "Query":
        """Adds column ``name`` computed from each row."""
        _need_expr("derive", expr)
        self._steps.append({"op": "derive", "name": name, "expr": expr.to_json()})
        return self

    def per_unit(self, name: str, value: PerUnit) -> "Query":
        """Adds column ``name``: one value per unit (see :mod:`oar_guest.per_unit`)."""
        self._steps.append(value.to_step(name))
        return self

    def group_by(self, keys: Iterable[str]) -> "Query":
        """Groups by ``keys`` (each needs a public domain, or :meth:`select_keys`)."""
        if isinstance(keys, str):
            keys = [keys]
        self._group_by.extend(keys)
        return self

    def count_units(self, name: str) -> "Query":
        """Distinct units per cell."""
        self._aggregates.append({"agg": "count_units", "name": name})
        return self

    def _valued(self, agg: str, name: str, column: str, bounds: Optional[tuple[float, float]]) -> "Query":
        a: dict[str, Any] = {"agg": agg, "name": name, "column": column}
        if bounds is not None:
            a["bounds"] = [float(bounds[0]), float(bounds[1])]
        self._aggregates.append(a)
        return self

    def sum(self, name: str, column: str, bounds: Optional[tuple[float, float]] = None) -> "Query":
        """The sum of ``column`` per cell, each unit's contribution clamped to ``bounds`` (the
        schema's bounds when omitted)."""
        return self._valued("sum", name, column, bounds)

    def mean(self, name: str, column: str, bounds: Optional[tuple[float, float]] = None) -> "Query":
        """The mean of ``column`` per cell (see :meth:`sum` for ``bounds``)."""
        return self._valued("mean", name, column, bounds)

    def quantile(
        self,
        name: str,
        column: str,
        q: float,
        bounds: Optional[tuple[float, float]] = None,
        bins: Optional[int] = None,
    ) -> "Query":
        """The ``q`` quantile of ``column`` per cell, read from a noisy histogram of unit values."""
        a: dict[str, Any] = {"agg": "quantile", "name": name, "column": column, "q": float(q)}
        if bounds is not None:
            a["bounds"] = [float(bounds[0]), float(bounds[1])]
        if bins is not None:
            a["bins"] = int(bins)
        self._aggregates.append(a)
        return self

    def median(self, name: str, column: str) -> "Query":
        """The median of ``column`` per cell."""
        return self.quantile(name, column, 0.5)

    def histogram(self, key: str, column: str, edges: Iterable[float]) -> "Query":
        """Counts over bins of ``column``: derives ``key`` as the bin and groups by it."""
        return self.derive(key, col(column).bin(edges)).group_by([key])

    def with_totals(self) -> "Query":
        """Also releases totals and sub-totals, with secondary suppression."""
        self._totals = True
        return self

    def select_keys(self) -> "Query":
        """Takes keys without a public domain from the data, above the threshold only."""
        self._key_selection = True
        return self

    def max_groups_per_unit(self, n: int) -> "Query":
        """Each unit counts in at most ``n`` cells."""
        self._bounds["max_groups_per_unit"] = int(n)
        return self

    def max_rows_per_group(self, n: int) -> "Query":
        """Each unit contributes at most ``n`` rows to a cell's sums."""
        self._bounds["max_rows_per_group"] = int(n)
        return self

    def plan(self, epsilon: float) -> dict[str, Any]:
        """The plan as JSON, field for field as the Rust SDK builds it."""
        bounds: dict[str, int] = {}
        for k in ("max_groups_per_unit", "max_rows_per_group"):
            if k in self._bounds:
                bounds[k] = self._bounds[k]
        plan: dict[str, Any] = {
            "dataset": self._schema["name"],
            "steps": self._steps,
            "group_by": self._group_by,
            "aggregates": self._aggregates,
            "bounds": bounds,
            "epsilon": float(epsilon),
        }
        if self._totals:
            plan["totals"] = True
        if self._key_selection:
            plan["key_selection"] = True
        return plan

    def plan_json(self, epsilon: float) -> str:
        """:meth:`plan` as JSON text, byte for byte as the Rust SDK writes it."""
        return dumps(self.plan(epsilon))

    def check(self) -> None:
        """The SDK's own checks, before anything reaches the host; the same checks, with the same
        messages, as the Rust SDK's ``Query::check``: the plan is within the host's size limits,
        every column exists when it is read and is not the privacy unit, every group key has a
        public domain (or :meth:`select_keys` applies to it), there is an aggregate, aggregate
        names are distinct, non-empty and not reserved, sums, means and quantiles read numbers
        and have valid bounds, and quantiles have ``q`` in (0, 1) and at least 2 bins.

        Derived columns are checked as far as the SDK can know them (``hour()`` has bounds and a
        domain; arithmetic and per-unit sums have neither); where it cannot know, the plan goes
        through and the host checks everything again. Raises
        :class:`~oar_guest.errors.PlanError`; its ``column`` is the column, key or aggregate at
        fault (the column for a type mismatch, the aggregate for bounds and quantile
        parameters).

        >>> from oar_guest.testing import FakeHost, cdr_schema
        >>> q = Context(FakeHost().with_dataset(cdr_schema())).dataset("cdr")
        >>> q.group_by(["cell"]).count_units("n").check()
        Traceback (most recent call last):
        ...
        oar_guest.errors.PlanError: column 'cell' is not in dataset 'cdr'; available columns: timestamp, region, cell_id
        >>> from oar_guest.testing import meters_schema
        >>> q = Context(FakeHost().with_dataset(meters_schema())).dataset("meters")
        >>> q.derive("kwh2", col("kwh") * 2).sum("total", "kwh2").check()
        Traceback (most recent call last):
        ...
        oar_guest.errors.PlanError: aggregate 'total' over column 'kwh2': sum needs clamping bounds and derived column 'kwh2' has none (arithmetic, per-unit sums and counts do not keep their inputs' bounds); give them explicitly with sum("total", "kwh2", bounds=(lower, upper))
        """
        _validate.check_plan(
            self._schema, self._steps, self._group_by, self._aggregates, self._key_selection
        )

    def check_with_host(self, epsilon: float) -> None:
        """:meth:`check`, then the host's own checks (scope, policy, query limit, budget left)
        through ``check-plan``: nothing is charged and no data is read. Raises
        :class:`~oar_guest.errors.Refused` with the reason :meth:`release` would get."""
        self.check()
        self._ctx._check(self.plan_json(epsilon))

    def release(self, epsilon: float) -> Table:
        """Checks the plan, sends it with budget ``epsilon`` and returns the gated table."""
        self.check()
        if not (isinstance(epsilon, (int, float)) and math.isfinite(epsilon) and epsilon > 0):
            raise PlanError(f"epsilon must be a positive number, got {epsilon!r}")
        return self._ctx._query(self.plan_json(epsilon))


def _need_expr(step: str, x: object) -> None:
    """Refuses a step given something other than an expression, naming the usual slip."""
    if isinstance(x, bool):
        raise PlanError(
            f"{step} needs an expression, not a bool: `col(x) == v` compares two Python objects; "
            "write col(x).eq(v) (or .ne(v))"
        )
    if not isinstance(x, Expr):
        raise PlanError(
            f"{step} needs an expression (col, lit and their operators), not {type(x).__name__}"
        )
