"""The checks :meth:`oar_guest.Query.check` runs before anything reaches the host (a port of the
Rust SDK's ``validate.rs``; the messages are the Rust SDK's, with its calls spelled in Python).

Each check mirrors one the host makes, answering in terms of the plan the author wrote: the
column, key, aggregate or bound at fault, and what to write instead. Checks never go further
than the host: a fact the SDK cannot be sure of (see :mod:`oar_guest._facts`) lets the plan
through, and the host decides.

>>> from oar_guest.testing import meters_schema
>>> check_plan(meters_schema(), [], ["tariff"], [{"agg": "count_units", "name": "n"}], False)
Traceback (most recent call last):
...
oar_guest.errors.PlanError: cannot group by 'tariff': column 'tariff' (str) has no public domain; group by a column with a declared domain, derive a key with one (a bin(..) of a number, a comparison), or call select_keys() to release only the keys that enough units have
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any, Optional

from ._facts import Env, Facts, Known, is_numeric
from .errors import PlanError

#: Most aggregates one plan may have (the host's limit, as ``oar_guest::plan::MAX_AGGREGATES``).
MAX_AGGREGATES = 32
#: Most steps (filters, derived columns and per-unit reductions) one plan may have.
MAX_STEPS = 64
#: Most per-unit steps one plan may have (each is a window over every row of the dataset).
MAX_PER_UNIT_STEPS = 8

Json = dict[str, Any]


def check_plan(
    schema: Json,
    steps: list[Json],
    group_by: list[str],
    aggregates: list[Json],
    key_selection: bool,
) -> None:
    """Checks a plan's parts against ``schema``: its size, columns exist, group keys have public
    domains, aggregates have distinct names, numeric inputs and valid bounds. Raises
    :class:`~oar_guest.errors.PlanError` naming the column, key or aggregate at fault."""
    _size(steps, aggregates)
    env = _steps(schema, steps)
    if not aggregates:
        raise PlanError(
            "invalid plan: no aggregate: add count_units, sum, mean or quantile before release"
        )
    for key in group_by:
        _group_key(env, key, key_selection)
    _aggregate_names(aggregates)
    for a in aggregates:
        _aggregate(env, a)


def over_size_limit(steps: list[Json], aggregates: list[Json]) -> Optional[tuple[str, int, int]]:
    """The first of the host's plan-size limits the plan is over, as ``(what, count, limit)``.

    >>> over_size_limit([], [{"agg": "count_units", "name": f"n{i}"} for i in range(33)])
    ('aggregates', 33, 32)
    >>> over_size_limit([], []) is None
    True
    """
    per_unit = sum(1 for s in steps if s.get("op") == "per_unit")
    for what, n, limit in (
        ("aggregates", len(aggregates), MAX_AGGREGATES),
        ("steps", len(steps), MAX_STEPS),
        ("per-unit steps", per_unit, MAX_PER_UNIT_STEPS),
    ):
        if n > limit:
            return what, n, limit
    return None


def _size(steps: list[Json], aggregates: list[Json]) -> None:
    over = over_size_limit(steps, aggregates)
    if over is not None:
        what, n, limit = over
        raise PlanError(
            f"invalid plan: the plan has {n} {what}; the host allows at most {limit} per query "
            "(split it into several queries)"
        )


def _steps(schema: Json, steps: list[Json]) -> Env:
    """Walks the row-level steps in order, checking each reads only columns available at that
    point; returns the columns available after the last."""
    env = Env(schema)
    for step in steps:
        op = step.get("op")
        if op == "filter":
            _reads(env, step["predicate"])
        elif op == "derive":
            _reads(env, step["expr"])
            env.define(step["name"], env.of_expr(step["expr"]))
        elif op == "per_unit":
            _reads(env, step["expr"])
            if step.get("rows") is not None:
                _reads(env, step["rows"])
            for k in step.get("by") or []:
                _column(env, k)
            env.define(step["name"], env.of_per_unit(step.get("reduce", ""), step["expr"]))
    return env


def _columns_of(expr: Any) -> list[str]:
    """The columns an expression's JSON reads, in the order the Rust SDK walks them."""
    out: list[str] = []

    def walk(node: Any) -> None:
        if not isinstance(node, dict):
            return
        if node.get("kind") == "column":
            out.append(node.get("name", ""))
            return
        for k in ("left", "right", "expr"):
            if k in node:
                walk(node[k])

    walk(expr)
    return out


def _reads(env: Env, expr: Json) -> None:
    """Checks every column ``expr`` reads exists."""
    for c in _columns_of(expr):
        _column(env, c)


def _column(env: Env, name: str) -> Facts:
    """The facts of column ``name``, or the error naming it and the columns that do exist."""
    schema = env.schema
    dataset = schema.get("name", "")
    if name == schema.get("privacy_unit"):
        raise PlanError(
            f"column '{name}' is the privacy unit of dataset '{dataset}'; plans may not read it "
            "(the host counts distinct units itself: use count_units)",
            column=name,
        )
    facts = env.get(name)
    if facts is None:
        raise PlanError(
            f"column '{name}' is not in dataset '{dataset}'; available columns: "
            f"{', '.join(env.names())}",
            column=name,
        )
    return facts


def _group_key(env: Env, key: str, key_selection: bool) -> None:
    """Checks ``key`` exists and has a public domain, or can have its keys selected from the
    data."""
    facts = _column(env, key)
    if facts.domain != Known.NO:
        return

    def fail(detail: str) -> PlanError:
        return PlanError(f"cannot group by '{key}': {detail}", column=key)

    ty = facts.ty
    if ty is None:
        if key_selection:
            return
        raise fail(
            f"'{key}' has no public domain; group by a column with a declared domain, derive one "
            "(date(), hour(), half_hour(), bin(..), a comparison), or call select_keys()"
        )
    what = f"derived column '{key}' ({ty})" if facts.derived else f"column '{key}' ({ty})"
    if ty in ("str", "int"):
        if key_selection:
            return
        raise fail(
            f"{what} has no public domain; group by a column with a declared domain, derive a "
            "key with one (a bin(..) of a number, a comparison), or call select_keys() to release "
            "only the keys that enough units have"
        )
    if ty == "datetime":
        raise fail(
            f"{what} is a point in time, not a key; group by a derived day, hour or half hour "
            f"instead (derive(\"day\", col(\"{key}\").date()) or .hour() or .half_hour())"
        )
    if ty == "date":
        raise fail(f"{what} has no declared period, so its days are not a public domain")
    if ty == "float":
        raise fail(
            f"{what} is a real number with no public domain; group by bins of it instead "
            f"(histogram(..) or derive(.., col(\"{key}\").bin(edges)))"
        )
    # Booleans always have the domain {false, true}.


def _aggregate_names(aggregates: list[Json]) -> None:
    """Checks output names are non-empty, not reserved and used once."""
    seen: list[str] = []
    for a in aggregates:
        name = a.get("name", "")
        if name == "":
            detail = "is empty; give every aggregate an output column name"
        elif name.startswith("__"):
            detail = "is reserved (names starting with '__' belong to the host); pick another"
        elif name in seen:
            detail = "is used by two aggregates; give each aggregate its own output column name"
        else:
            seen.append(name)
            continue
        raise PlanError(f"aggregate name '{name}' {detail}", column=name)


def _aggregate(env: Env, a: Json) -> None:
    """Checks one aggregate's input column, quantile parameters and bounds."""
    agg = a.get("agg")
    if agg not in ("sum", "mean", "quantile"):
        return
    name, column = a.get("name", ""), a.get("column", "")
    if agg == "quantile":
        _quantile_parameters(name, a.get("q"), a.get("bins"))
    facts = _column(env, column)
    if facts.ty is not None and not is_numeric(facts.ty):
        raise PlanError(
            f"aggregate '{name}': column '{column}' has type {facts.ty}, but sums, means and "
            "quantiles need a number (int or float); to count units per value of "
            f"'{column}', group by it and use count_units",
            column=column,
        )

    def fail(detail: str) -> PlanError:
        return PlanError(f"aggregate '{name}' over column '{column}': {detail}", column=name)

    bounds = a.get("bounds")
    if bounds is not None:
        lo, hi = float(bounds[0]), float(bounds[1])
        shown = f"bounds [{rust_float(lo)}, {rust_float(hi)}] are not valid"
        if not (math.isfinite(lo) and math.isfinite(hi)):
            raise fail(f"{shown}: both must be finite numbers")
        if lo > hi:
            raise fail(f"{shown}: the lower bound is above the upper one")
        if lo == hi and agg == "quantile":
            raise fail(f"{shown} for a quantile: it needs lower < upper to have bins")
        return
    if facts.bounds == Known.NO:
        if facts.derived:
            whose = (
                f"derived column '{column}' has none (arithmetic, per-unit sums and counts do "
                "not keep their inputs' bounds)"
            )
        else:
            whose = f"the dataset declares none for '{column}'"
        raise fail(
            f"{agg} needs clamping bounds and {whose}; give them explicitly with "
            f"{_bounded_call(a)}"
        )


def _quantile_parameters(name: str, q: Any, bins: Any) -> None:
    """Checks ``q`` is in (0, 1) and ``bins`` (if given) is at least 2."""
    qf = float(q) if isinstance(q, (int, float)) else math.nan
    if not (0.0 < qf < 1.0):
        detail = (
            "q must be strictly between 0 and 1 (0.5 is the median, 0.9 the 90th percentile), "
            f"got {rust_float(qf)}"
        )
    elif bins is not None and bins < 2:
        detail = f"a quantile needs at least 2 bins, got {bins}"
    else:
        return
    raise PlanError(f"quantile '{name}': {detail}", column=name)


def _bounded_call(a: Json) -> str:
    """The Python call that gives aggregate ``a`` explicit bounds, spelled with its own names
    (the Rust SDK names its ``*_clamped`` builder here).

    >>> _bounded_call({"agg": "quantile", "name": "p90", "column": "x", "q": 0.9})
    'quantile("p90", "x", 0.9, bounds=(lower, upper))'
    """
    head = f"{a['agg']}(\"{a.get('name', '')}\", \"{a.get('column', '')}\""
    if a["agg"] == "quantile":
        return f"{head}, {a.get('q')!r}, bounds=(lower, upper))"
    return f"{head}, bounds=(lower, upper))"


def rust_float(x: float) -> str:
    """``x`` as Rust's ``Display`` writes an ``f64``: the shortest digits that read back as
    ``x`` (a tie between two goes away from zero, where Python's ``repr`` goes to even), never
    an exponent, no ``.0`` on whole numbers.

    >>> [rust_float(v) for v in (5.0, 0.9, -0.1, 1e-7, 1e21, 2.5e-5, float("inf"), float("nan"))]
    ['5', '0.9', '-0.1', '0.0000001', '1000000000000000000000', '0.000025', 'inf', 'NaN']
    >>> rust_float(971494685127620.25), repr(971494685127620.25)
    ('971494685127620.3', '971494685127620.2')
    """
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    sign = "-" if math.copysign(1.0, x) < 0 else ""
    mantissa, _, exp = repr(abs(float(x))).partition("e")
    whole, _, frac = mantissa.partition(".")
    digits = int(whole + frac)
    shift = (int(exp) if exp else 0) - len(frac)  # abs(x) reads as digits * 10**shift
    unit = Fraction(10) ** shift
    if Fraction(abs(x)) == (digits + Fraction(1, 2)) * unit:
        digits += 1  # equally close to both: Rust takes the larger
    text = str(digits)
    point = len(text) + shift  # where the decimal point falls in text
    if point <= 0:
        whole, frac = "0", "0" * -point + text
    elif point >= len(text):
        whole, frac = text + "0" * (point - len(text)), ""
    else:
        whole, frac = text[:point], text[point:]
    whole = whole.lstrip("0") or "0"
    frac = frac.rstrip("0")
    return f"{sign}{whole}.{frac}" if frac else f"{sign}{whole}"
