"""Builds plans the SDK must refuse with the Python SDK and prints what it says, as JSON.

Usage: check_errors.py [--names]
(PYTHONPATH must reach guest-sdk/python.) Prints one JSON array; each case is an object:

- ``name``: the case's name;
- ``python``: the Python builder, applied to ``q = ctx.dataset("meters")``
  (``oar_guest.testing.meters_schema``);
- ``rust``: the same plan in the Rust SDK, a closure over ``q``
  (``oar_guest::testing::meters_schema``);
- ``error``: the text of the ``PlanError`` that ``Query.check()`` raises;
- ``column``: the error's ``column`` (the column, key or aggregate at fault), or null;
- ``rust_spelling``: the Python calls the text names, each with the Rust SDK's spelling of it.

The Rust SDK's ``Error`` text for the same plan is ``error`` with every ``rust_spelling`` key
replaced by its value: the messages are the same apart from the calls they suggest.
With ``--names``, prints only the case names, one a line.
"""

from __future__ import annotations

import argparse
import json
import sys
from functools import reduce
from typing import Any

from oar_guest import Context, PlanError, col, lit, per_unit
from oar_guest.testing import FakeHost, meters_schema

# (name, Python builder over q, Rust builder closure, {Python call named: Rust spelling}).
CASES: list[tuple[str, str, str, dict[str, str]]] = [
    # Columns.
    (
        "unknown_column",
        'q.derive("slot", col("read_at").half_hour()).filter(col("kwhh").gt(0.0)).count_units("n")',
        '|q| q.derive("slot", col("read_at").half_hour()).filter(col("kwhh").gt(0.0)).count_units("n")',
        {},
    ),
    (
        "column_used_before_derived",
        'q.filter(col("slot").lt(10)).derive("slot", col("read_at").half_hour()).count_units("n")',
        '|q| q.filter(col("slot").lt(10)).derive("slot", col("read_at").half_hour()).count_units("n")',
        {},
    ),
    (
        "unknown_per_unit_by",
        'q.per_unit("home", per_unit.mode(col("region")).by(["day"])).count_units("n")',
        '|q| q.per_unit("home", per_unit::mode(col("region")).by(["day"])).count_units("n")',
        {},
    ),
    (
        "unknown_aggregate_column",
        'q.sum("s", "kwhh")',
        '|q| q.sum("s", "kwhh")',
        {},
    ),
    (
        "privacy_unit_key",
        'q.group_by(["meter_id"]).count_units("n")',
        '|q| q.group_by(["meter_id"]).count_units("n")',
        {},
    ),
    (
        "privacy_unit_read",
        'q.filter(col("meter_id").eq(1)).count_units("n")',
        '|q| q.filter(col("meter_id").eq(1)).count_units("n")',
        {},
    ),
    # Group keys.
    (
        "key_str_without_domain",
        'q.group_by(["tariff"]).count_units("n")',
        '|q| q.group_by(["tariff"]).count_units("n")',
        {},
    ),
    (
        "key_datetime",
        'q.group_by(["read_at"]).count_units("n")',
        '|q| q.group_by(["read_at"]).count_units("n")',
        {'col("read_at").date()': 'time("read_at").date()'},
    ),
    (
        "key_float",
        'q.group_by(["kwh"]).count_units("n")',
        '|q| q.group_by(["kwh"]).count_units("n")',
        {'col("kwh").bin(edges)': 'num("kwh").bin(edges)'},
    ),
    (
        "key_float_with_key_selection",
        'q.group_by(["kwh"]).count_units("n").select_keys()',
        '|q| q.group_by(["kwh"]).count_units("n").select_keys()',
        {'col("kwh").bin(edges)': 'num("kwh").bin(edges)'},
    ),
    (
        "key_derived_float",
        'q.derive("double", col("kwh") * 2).group_by(["double"]).count_units("n")',
        '|q| q.derive("double", num("kwh") * 2).group_by(["double"]).count_units("n")',
        {'col("double").bin(edges)': 'num("double").bin(edges)'},
    ),
    (
        "key_per_unit_count",
        'q.per_unit("readings", per_unit.count(col("kwh"))).group_by(["readings"]).count_units("n")',
        '|q| q.per_unit("readings", per_unit::count(col("kwh"))).group_by(["readings"]).count_units("n")',
        {},
    ),
    (
        "key_of_unknown_type",
        'q.derive("odd", col("tariff") + 1).group_by(["odd"]).count_units("n")',
        '|q| q.derive("odd", col("tariff") + 1).group_by(["odd"]).count_units("n")',
        {},
    ),
    # Aggregate names.
    (
        "aggregate_name_twice",
        'q.count_units("n").sum("n", "kwh")',
        '|q| q.count_units("n").sum("n", "kwh")',
        {},
    ),
    (
        "aggregate_name_empty",
        'q.count_units("")',
        '|q| q.count_units("")',
        {},
    ),
    (
        "aggregate_name_reserved",
        'q.count_units("__n")',
        '|q| q.count_units("__n")',
        {},
    ),
    # Aggregate inputs.
    (
        "sum_of_text",
        'q.group_by(["region"]).sum("total", "tariff")',
        '|q| q.group_by(["region"]).sum("total", "tariff")',
        {},
    ),
    (
        "mean_of_derived_bool",
        'q.derive("big", col("kwh").gt(2.0)).mean("m", "big")',
        '|q| q.derive("big", col("kwh").gt(2.0)).mean("m", "big")',
        {},
    ),
    # Bounds.
    (
        "mean_without_declared_bounds",
        'q.group_by(["region"]).mean("avg_people", "occupants")',
        '|q| q.group_by(["region"]).mean("avg_people", "occupants")',
        {
            'mean("avg_people", "occupants", bounds=(lower, upper))':
                'mean_clamped("avg_people", "occupants", lower, upper)',
        },
    ),
    (
        "quantile_of_per_unit_sum",
        'q.per_unit("monthly", per_unit.sum(col("kwh"))).quantile("p90", "monthly", 0.9)',
        '|q| q.per_unit("monthly", per_unit::sum(num("kwh"))).quantile("p90", "monthly", 0.9)',
        {
            'quantile("p90", "monthly", 0.9, bounds=(lower, upper))':
                'quantile_clamped("p90", "monthly", 0.9, [lower, upper], bins)',
        },
    ),
    (
        "sum_of_arithmetic",
        'q.derive("double", col("kwh") * 2).sum("s", "double")',
        '|q| q.derive("double", num("kwh") * 2).sum("s", "double")',
        {'sum("s", "double", bounds=(lower, upper))': 'sum_clamped("s", "double", lower, upper)'},
    ),
    (
        "bounds_reversed",
        'q.sum("s", "kwh", (5.0, 1.0))',
        '|q| q.sum_clamped("s", "kwh", 5.0, 1.0)',
        {},
    ),
    (
        "bounds_infinite",
        'q.mean("m", "kwh", (0.0, math.inf))',
        '|q| q.mean_clamped("m", "kwh", 0.0, f64::INFINITY)',
        {},
    ),
    (
        "bounds_nan",
        'q.mean("m", "kwh", (math.nan, 1.0))',
        '|q| q.mean_clamped("m", "kwh", f64::NAN, 1.0)',
        {},
    ),
    (
        "bounds_fractional_reversed",
        'q.sum("s", "kwh", (2.5e-5, -1e-7))',
        '|q| q.sum_clamped("s", "kwh", 2.5e-5, -1e-7)',
        {},
    ),
    (
        "bounds_on_a_rounding_tie",
        'q.sum("s", "kwh", (971494685127620.25, 1.0))',
        '|q| q.sum_clamped("s", "kwh", 971494685127620.25, 1.0)',
        {},
    ),
    (
        "quantile_with_equal_bounds",
        'q.quantile("p", "kwh", 0.5, (1.0, 1.0), 10)',
        '|q| q.quantile_clamped("p", "kwh", 0.5, [1.0, 1.0], 10)',
        {},
    ),
    # Quantile parameters.
    ("quantile_q_0", 'q.quantile("p", "kwh", 0.0)', '|q| q.quantile("p", "kwh", 0.0)', {}),
    ("quantile_q_1", 'q.quantile("p", "kwh", 1.0)', '|q| q.quantile("p", "kwh", 1.0)', {}),
    ("quantile_q_1_5", 'q.quantile("p", "kwh", 1.5)', '|q| q.quantile("p", "kwh", 1.5)', {}),
    ("quantile_q_negative", 'q.quantile("p", "kwh", -0.1)', '|q| q.quantile("p", "kwh", -0.1)', {}),
    ("quantile_q_nan", 'q.quantile("p", "kwh", math.nan)', '|q| q.quantile("p", "kwh", f64::NAN)', {}),
    ("quantile_q_huge", 'q.quantile("p", "kwh", 1e21)', '|q| q.quantile("p", "kwh", 1e21)', {}),
    (
        "quantile_one_bin",
        'q.quantile("p", "kwh", 0.5, (0.0, 1.0), 1)',
        '|q| q.quantile_clamped("p", "kwh", 0.5, [0.0, 1.0], 1)',
        {},
    ),
    # Plan shape and size.
    (
        "no_aggregate",
        'q.group_by(["region"])',
        '|q| q.group_by(["region"])',
        {},
    ),
    (
        "too_many_aggregates",
        'reduce(lambda q, i: q.count_units(f"n{i}"), range(33), q)',
        '|q| (0..33).fold(q, |q, i| q.count_units(&format!("n{i}")))',
        {},
    ),
    (
        "too_many_steps",
        'reduce(lambda q, i: q.filter(col("kwh").ge(0.0)), range(65), q).count_units("n")',
        '|q| (0..65).fold(q, |q, _| q.filter(col("kwh").ge(0.0))).count_units("n")',
        {},
    ),
    (
        "too_many_per_unit_steps",
        'reduce(lambda q, i: q.per_unit(f"u{i}", per_unit.max(col("kwh"))), range(9), q)'
        '.count_units("n")',
        '|q| (0..9).fold(q, |q, i| q.per_unit(&format!("u{i}"), per_unit::max(col("kwh"))))'
        '.count_units("n")',
        {},
    ),
]


def error_of(build: str) -> PlanError:
    """The error ``Query.check()`` raises for the plan ``build`` makes of ``q``."""
    import math

    q = Context(FakeHost().with_dataset(meters_schema())).dataset("meters")
    names = {"q": q, "col": col, "lit": lit, "per_unit": per_unit, "math": math,
             "reduce": reduce}
    query = eval(build, names)  # noqa: S307 (the builders above, nothing from outside)
    try:
        query.check()
    except PlanError as e:
        return e
    raise SystemExit(f"the Python SDK accepted a plan it should refuse: {build}")


def cases() -> list[dict[str, Any]]:
    """Every case with the Python SDK's error text."""
    out = []
    for name, python, rust, spelling in CASES:
        e = error_of(python)
        for call in spelling:
            if call not in str(e):
                raise SystemExit(f"{name}: the error does not name {call}: {e}")
        out.append({"name": name, "python": python, "rust": rust, "error": str(e),
                    "column": e.column, "rust_spelling": spelling})
    return out


def main() -> int:
    parser = argparse.ArgumentParser(
        description="Prints, as JSON, the Python SDK's errors for plans it must refuse "
        "(see the module docstring).")
    parser.add_argument("--names", action="store_true", help="print only the case names")
    args = parser.parse_args()
    if args.names:
        print("\n".join(c[0] for c in CASES))
    else:
        print(json.dumps(cases(), indent=1, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
