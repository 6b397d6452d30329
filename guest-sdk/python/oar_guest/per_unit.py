"""The per-unit stage: one value per privacy unit, from that unit's rows only.

>>> from oar_guest import col, per_unit
>>> home = per_unit.mode(col("region")).rows(col("timestamp").hour() < 6)
>>> home.to_step("home")["reduce"]
'mode'
"""

from __future__ import annotations

from typing import Any, Iterable, Optional

from .expr import Expr


class PerUnit:
    """A reduction of each unit's rows; use it with ``Query.per_unit(name, value)``."""

    def __init__(self, reduce: str, expr: Expr):
        self._reduce = reduce
        self._expr = expr
        self._rows: Optional[Expr] = None
        self._by: list[str] = []

    def rows(self, predicate: Expr) -> "PerUnit":
        """Only the unit's rows where ``predicate`` holds count."""
        self._rows = predicate
        return self

    def by(self, keys: Iterable[str]) -> "PerUnit":
        """One value per unit and per value of ``keys`` (for example per day)."""
        self._by.extend(keys)
        return self

    @property
    def reduce(self) -> str:
        """The reduction's name in the plan (``mode``, ``sum``, ...)."""
        return self._reduce

    def to_step(self, name: str) -> dict[str, Any]:
        """The plan step adding this value as column ``name``."""
        step: dict[str, Any] = {
            "op": "per_unit",
            "name": name,
            "reduce": self._reduce,
            "expr": self._expr.to_json(),
        }
        if self._rows is not None:
            step["rows"] = self._rows.to_json()
        if self._by:
            step["by"] = list(self._by)
        return step


def mode(expr: Expr) -> PerUnit:
    """The unit's most frequent value (ties to the smallest); keeps the public domain."""
    return PerUnit("mode", expr)


def min(expr: Expr) -> PerUnit:  # noqa: A001 (the Rust SDK's name)
    """The unit's smallest value."""
    return PerUnit("min", expr)


def max(expr: Expr) -> PerUnit:  # noqa: A001
    """The unit's largest value."""
    return PerUnit("max", expr)


def mean(expr: Expr) -> PerUnit:
    """The mean of the unit's values."""
    return PerUnit("mean", expr)


def sum(expr: Expr) -> PerUnit:  # noqa: A001
    """The sum of the unit's values."""
    return PerUnit("sum", expr)


def count(expr: Expr) -> PerUnit:
    """How many of the unit's rows have a value."""
    return PerUnit("count", expr)


def count_distinct(expr: Expr) -> PerUnit:
    """How many distinct values the unit has."""
    return PerUnit("count_distinct", expr)


def any(expr: Expr) -> PerUnit:  # noqa: A001
    """Whether the predicate holds on any of the unit's rows."""
    return PerUnit("any", expr)


def all(expr: Expr) -> PerUnit:  # noqa: A001
    """Whether the predicate holds on all of the unit's rows."""
    return PerUnit("all", expr)
