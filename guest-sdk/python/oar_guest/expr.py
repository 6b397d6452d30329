"""Row expressions: what filters, derived columns and per-unit values are made of.

An expression is a description the host evaluates next to the data; building one reads nothing.
Comparisons use Python's operators (``col("hour") >= 22``), logic uses ``&``, ``|`` and ``~``
(Kleene logic on the host: a null compared is null), arithmetic ``+ - * /``. Each also has the
Rust SDK's method name (``ge``, ``and_``, ``or_``).

>>> from oar_guest import col
>>> night = (col("timestamp").hour() >= 22) | (col("timestamp").hour() < 6)
>>> night.to_json()["kind"]
'or'
"""

from __future__ import annotations

from typing import Any, Iterable, Union

Scalar = Union[bool, int, float, str]


def _value(v: Scalar) -> Scalar:
    if isinstance(v, (bool, int, float, str)):
        return v
    raise TypeError(
        f"a constant in a plan is a bool, int, float or str, not {type(v).__name__}"
    )


class Expr:
    """A row expression (see the module docs). Build one with :func:`col` or :func:`lit`."""

    __slots__ = ("_json",)

    def __init__(self, json: dict[str, Any]):
        self._json = json

    def to_json(self) -> dict[str, Any]:
        """The expression as the plan's JSON object (``{"kind": ..., ...}``)."""
        return self._json

    def __repr__(self) -> str:
        return f"Expr({self._json!r})"

    def __eq__(self, other: object) -> bool:  # type: ignore[override]
        """Structural equality of two expressions; use :meth:`eq` for a comparison in the plan."""
        return isinstance(other, Expr) and self._json == other._json

    __hash__ = None  # type: ignore[assignment]

    # Comparisons.
    def _compare(self, op: str, other: Any) -> "Expr":
        return Expr({"kind": "compare", "op": op, "left": self._json, "right": _expr(other)})

    def eq(self, other: Any) -> "Expr":
        """``self == other`` in the plan.

        >>> col("region").eq("R01").to_json()["op"]
        'eq'
        """
        return self._compare("eq", other)

    def ne(self, other: Any) -> "Expr":
        """``self != other`` in the plan."""
        return self._compare("ne", other)

    def lt(self, other: Any) -> "Expr":
        """``self < other``."""
        return self._compare("lt", other)

    def le(self, other: Any) -> "Expr":
        """``self <= other``."""
        return self._compare("le", other)

    def gt(self, other: Any) -> "Expr":
        """``self > other``."""
        return self._compare("gt", other)

    def ge(self, other: Any) -> "Expr":
        """``self >= other``."""
        return self._compare("ge", other)

    __lt__ = lt
    __le__ = le
    __gt__ = gt
    __ge__ = ge

    # Logic.
    def and_(self, other: "Expr") -> "Expr":
        """Both hold (``a & b``)."""
        return Expr({"kind": "and", "left": self._json, "right": _expr(other)})

    def or_(self, other: "Expr") -> "Expr":
        """Either holds (``a | b``)."""
        return Expr({"kind": "or", "left": self._json, "right": _expr(other)})

    def not_(self) -> "Expr":
        """Negation (``~a``)."""
        return Expr({"kind": "not", "expr": self._json})

    __and__ = and_
    __or__ = or_
    __invert__ = not_

    # Arithmetic.
    def _arith(self, op: str, other: Any) -> "Expr":
        return Expr({"kind": "arith", "op": op, "left": self._json, "right": _expr(other)})

    def __add__(self, other: Any) -> "Expr":
        return self._arith("add", other)

    def __sub__(self, other: Any) -> "Expr":
        return self._arith("sub", other)

    def __mul__(self, other: Any) -> "Expr":
        return self._arith("mul", other)

    def __truediv__(self, other: Any) -> "Expr":
        return self._arith("div", other)

    def _arith_from(self, op: str, other: Any) -> "Expr":
        """``other op self``, for Python's reflected operators (``2 * col("x")``)."""
        return Expr({"kind": "arith", "op": op, "left": _expr(other), "right": self._json})

    def __radd__(self, other: Any) -> "Expr":
        return self._arith_from("add", other)

    def __rsub__(self, other: Any) -> "Expr":
        return self._arith_from("sub", other)

    def __rmul__(self, other: Any) -> "Expr":
        return self._arith_from("mul", other)

    def __rtruediv__(self, other: Any) -> "Expr":
        return self._arith_from("div", other)

    # Membership and calendar.
    def is_in(self, values: Iterable[Scalar]) -> "Expr":
        """Membership in a set of constants.

        >>> col("region").is_in(["R01", "R02"]).to_json()["values"]
        ['R01', 'R02']
        """
        return Expr({"kind": "is_in", "expr": self._json, "values": [_value(v) for v in values]})

    def date(self) -> "Expr":
        """The calendar date of a datetime (text ``YYYY-MM-DD`` as a key)."""
        return Expr({"kind": "date", "expr": self._json})

    def hour(self) -> "Expr":
        """The hour (0-23) of a datetime."""
        return Expr({"kind": "hour", "expr": self._json})

    def half_hour(self) -> "Expr":
        """The half-hour slot (0-47) of a datetime."""
        return Expr({"kind": "half_hour", "expr": self._json})

    def bin(self, edges: Iterable[float]) -> "Expr":
        """The bin a number falls in, for strictly increasing ``edges``."""
        return Expr({"kind": "bin", "expr": self._json, "edges": [float(e) for e in edges]})

    def columns(self) -> list[str]:
        """The columns the expression reads, in order of first use.

        >>> ((col("kwh") * 2) > col("limit")).columns()
        ['kwh', 'limit']
        """
        found: list[str] = []

        def walk(node: Any) -> None:
            if isinstance(node, dict):
                if node.get("kind") == "column" and node["name"] not in found:
                    found.append(node["name"])
                for v in node.values():
                    walk(v)

        walk(self._json)
        return found


def col(name: str) -> Expr:
    """The column ``name`` of the dataset (or a column derived earlier in the plan)."""
    return Expr({"kind": "column", "name": name})


def lit(value: Scalar) -> Expr:
    """A constant: ``lit(22)`` is an integer, ``lit(22.0)`` a float, ``lit("R01")`` text."""
    return Expr({"kind": "literal", "value": _value(value)})


def _expr(x: Any) -> dict[str, Any]:
    return x.to_json() if isinstance(x, Expr) else lit(x).to_json()
