"""What the SDK can tell about a column before the host sees a plan: its type, whether it has
clamping bounds, whether it has a public key domain (a port of the Rust SDK's ``facts.rs``).

Dataset columns are described by the schema. Derived columns (from ``derive`` and ``per_unit``)
get the facts the host's type checker gives them: ``hour()`` has bounds ``[0, 23]`` and a domain,
a per-unit mean keeps its input's bounds, arithmetic and per-unit sums and counts have neither,
and so on. Wherever the outcome is not certain the answer is :attr:`Known.UNKNOWN`, so a check
built on these facts never refuses a plan the host would accept.

>>> from oar_guest import col
>>> from oar_guest.testing import meters_schema
>>> env = Env(meters_schema())
>>> env.of_expr(col("read_at").hour().to_json())
Facts(ty='int', bounds=<Known.YES>, domain=<Known.YES>, period=<Known.NO>, derived=True)
>>> env.of_expr((col("kwh") * 2).to_json()).bounds
<Known.NO>
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from typing import Any, Optional

#: Column types as dataset descriptors spell them.
TYPES = ("str", "int", "float", "bool", "date", "datetime")


def is_numeric(ty: Optional[str]) -> bool:
    """True for the types sums, means and quantiles accept.

    >>> [t for t in TYPES if is_numeric(t)]
    ['int', 'float']
    """
    return ty in ("int", "float")


class Known(enum.Enum):
    """A yes/no fact that may not be known in advance."""

    YES = "yes"
    NO = "no"
    UNKNOWN = "unknown"

    @staticmethod
    def of(b: bool) -> "Known":
        """``YES`` for true, ``NO`` for false.

        >>> Known.of(True), Known.of(False)
        (<Known.YES>, <Known.NO>)
        """
        return Known.YES if b else Known.NO

    def __repr__(self) -> str:
        return f"<Known.{self.name}>"


@dataclass(frozen=True)
class Facts:
    """What is publicly known about one column's values."""

    #: Its type (``"str"``, ``"int"``, ...), if known.
    ty: Optional[str]
    #: Whether it has clamping bounds.
    bounds: Known
    #: Whether it has a public domain (and so can be a group key).
    domain: Known
    #: Whether it has a calendar period (so ``date()`` of it has a domain).
    period: Known
    #: Whether it was derived by the plan rather than read from the dataset.
    derived: bool

    @staticmethod
    def unknown() -> "Facts":
        """Nothing known (a column that does not exist, or an input whose facts are unknown)."""
        u = Known.UNKNOWN
        return Facts(None, u, u, u, True)

    @staticmethod
    def plain(ty: Optional[str]) -> "Facts":
        """A computed value of type ``ty`` with neither bounds, domain nor period."""
        return Facts(ty, Known.NO, Known.NO, Known.NO, True)

    @staticmethod
    def boolean() -> "Facts":
        """A boolean (comparisons and logic): its domain is ``{false, true}``."""
        return replace(Facts.plain("bool"), domain=Known.YES)

    @staticmethod
    def of_column(c: dict[str, Any]) -> "Facts":
        """A dataset column, as the host sees it: a declared non-empty domain, a boolean, or a
        date with a period has a key domain.

        >>> Facts.of_column({"name": "d", "type": "date", "period": ["2024-01-01", "2024-01-02"]})
        Facts(ty='date', bounds=<Known.NO>, domain=<Known.YES>, period=<Known.YES>, derived=False)
        """
        ty = c.get("type")
        domain = c.get("domain")
        declared = domain is not None and len(domain) > 0
        implicit = ty == "bool" or (
            ty == "date" and c.get("period") is not None and domain is None
        )
        return Facts(
            ty=ty if ty in TYPES else None,
            bounds=Known.of(c.get("bounds") is not None),
            domain=Known.of(declared or implicit),
            period=Known.of(c.get("period") is not None),
            derived=False,
        )


class Env:
    """The columns available at one point of a plan: the dataset's, then the ones derived so far
    (a derived column shadows a dataset column of the same name, as on the host).

    >>> from oar_guest import col
    >>> from oar_guest.testing import meters_schema
    >>> env = Env(meters_schema())
    >>> env.define("slot", env.of_expr(col("read_at").half_hour().to_json()))
    >>> env.names()[-2:], env.get("slot").domain
    (['consent', 'slot'], <Known.YES>)
    """

    def __init__(self, schema: dict[str, Any]):
        self._schema = schema
        self._derived: list[tuple[str, Facts]] = []

    @property
    def schema(self) -> dict[str, Any]:
        """The schema the plan reads."""
        return self._schema

    def _columns(self) -> list[dict[str, Any]]:
        return list(self._schema.get("columns") or [])

    def get(self, name: str) -> Optional[Facts]:
        """Facts about column ``name``, if it exists."""
        for n, f in reversed(self._derived):
            if n == name:
                return f
        for c in self._columns():
            if c.get("name") == name:
                return Facts.of_column(c)
        return None

    def define(self, name: str, facts: Facts) -> None:
        """Adds (or shadows) column ``name``."""
        self._derived.append((name, facts))

    def names(self) -> list[str]:
        """Every column name available, dataset columns first, each once."""
        out = [c.get("name") for c in self._columns()]
        for n, _ in self._derived:
            if n not in out:
                out.append(n)
        return out

    def of_expr(self, expr: dict[str, Any]) -> Facts:
        """Facts about the value of ``expr`` (the plan's JSON of an expression) on each row."""
        kind = expr.get("kind")
        if kind == "column":
            f = self.get(expr.get("name", ""))
            return Facts.unknown() if f is None else replace(f, derived=True)
        if kind == "literal":
            return replace(Facts.plain(_type_of(expr.get("value"))), domain=Known.YES)
        if kind in ("compare", "and", "or", "not", "is_in"):
            return Facts.boolean()
        if kind == "arith":
            left = self.of_expr(expr["left"]).ty
            right = self.of_expr(expr["right"]).ty
            ty: Optional[str]
            if expr.get("op") == "div":
                ty = "float"
            elif left == "int" and right == "int":
                ty = "int"
            elif is_numeric(left) and is_numeric(right):
                ty = "float"
            else:
                ty = None
            return Facts.plain(ty)
        if kind == "date":
            period = self.of_expr(expr["expr"]).period
            return replace(Facts.plain("date"), domain=period, period=period)
        if kind in ("hour", "half_hour"):
            return replace(Facts.plain("int"), bounds=Known.YES, domain=Known.YES)
        if kind == "bin":
            return replace(Facts.plain("str"), domain=Known.YES)
        return Facts.unknown()

    def of_per_unit(self, reduce: str, expr: dict[str, Any]) -> Facts:
        """Facts about a per-unit value: ``reduce`` applied to ``expr`` over each unit's rows."""
        value = self.of_expr(expr)
        if reduce in ("mode", "min", "max", "any", "all"):
            return value
        if reduce == "mean":
            return replace(Facts.plain("float"), bounds=value.bounds)
        if reduce == "sum":
            return Facts.plain("float")
        if reduce in ("count", "count_distinct"):
            return Facts.plain("int")
        return Facts.unknown()


def _type_of(value: Any) -> Optional[str]:
    """The column type of a literal."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    return None
