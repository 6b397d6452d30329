"""Present population per region per day (OPAL): the Python twin of `example-algorithms/population`.

For the same parameters it sends the host byte for byte the plan the Rust module sends
(`tests/examples.rs` checks it).
"""

from __future__ import annotations

from typing import Any

from oar_guest import Context, PlanError, col

OUTPUT = "population_by_region_day"

DEFAULTS = {"dataset": "cdr", "epsilon": 1.0, "max_cells_per_subscriber": 14}


def params(given: dict[str, Any]) -> dict[str, Any]:
    """The parameters with their defaults; an unknown one is refused by name."""
    unknown = sorted(set(given) - set(DEFAULTS))
    if unknown:
        raise PlanError(
            f"unknown parameter '{unknown[0]}'; parameters: {', '.join(DEFAULTS)}"
        )
    return {**DEFAULTS, **given}


def run(ctx: Context, given: dict[str, Any]) -> None:
    """Counts distinct subscribers per region and day, each in at most
    `max_cells_per_subscriber` cells, and publishes the table."""
    p = params(given)
    ctx.log(f"present population, epsilon {p['epsilon']}")
    table = (
        ctx.dataset(p["dataset"])
        .derive("day", col("timestamp").date())
        .group_by(["region", "day"])
        .count_units("subscribers")
        .max_groups_per_unit(p["max_cells_per_subscriber"])
        .release(p["epsilon"])
    )
    ctx.emit(OUTPUT, table)
