"""Daily origin-destination flows and stay shares: the Python twin of `example-algorithms/od-flows`.

Each subscriber's origin is their most frequent night-time region over the period, their
destination each day their most frequent working-hours region that day. For the same parameters
it sends the host byte for byte the plans the Rust module sends (`tests/examples.rs`).
"""

from __future__ import annotations

import math
from typing import Any

from oar_guest import Context, Expr, PlanError, Query, Table, col, per_unit

FLOWS = "od_flows"
STAYERS = "od_stayers"
Z95 = 1.96

DEFAULTS = {"dataset": "cdr", "epsilon": 1.0, "days": 7}


def params(given: dict[str, Any]) -> dict[str, Any]:
    """The parameters with their defaults; an unknown one is refused by name."""
    unknown = sorted(set(given) - set(DEFAULTS))
    if unknown:
        raise PlanError(f"unknown parameter '{unknown[0]}'; parameters: {', '.join(DEFAULTS)}")
    return {**DEFAULTS, **given}


def hour() -> Expr:
    return col("timestamp").hour()


def night() -> Expr:
    """22:00 to 06:00."""
    return hour().ge(22).or_(hour().lt(6))


def working_hours() -> Expr:
    """09:00 to 17:00."""
    return hour().ge(9).and_(hour().lt(17))


def with_origin_and_destination(q: Query) -> Query:
    """Adds `day`, each subscriber's `origin` and their `destination` per day."""
    return (
        q.derive("day", col("timestamp").date())
        .per_unit("origin", per_unit.mode(col("region")).rows(night()))
        .per_unit(
            "destination",
            per_unit.mode(col("region")).rows(working_hours()).by(["day"]),
        )
    )


def run(ctx: Context, given: dict[str, Any]) -> None:
    """Releases the flows (3/4 of epsilon) and the residents per origin (1/4), and publishes the
    flows and the share of residents who stayed in their home region, with 95% intervals."""
    p = params(given)
    if p["days"] == 0:
        raise PlanError("days must be at least 1")
    region = next(
        (c for c in ctx.schema(p["dataset"])["columns"] if c["name"] == "region"), None
    )
    if region is None or "domain" not in region:
        raise PlanError("the region column has no public domain")
    flows = (
        with_origin_and_destination(ctx.dataset(p["dataset"]))
        .group_by(["day", "origin", "destination"])
        .count_units("subscribers")
        .max_groups_per_unit(p["days"])
        .release(0.75 * p["epsilon"])
    )
    residents = (
        with_origin_and_destination(ctx.dataset(p["dataset"]))
        .filter(col("destination").is_in(region["domain"]))
        .group_by(["day", "origin"])
        .count_units("residents")
        .max_groups_per_unit(p["days"])
        .release(0.25 * p["epsilon"])
    )
    ctx.emit(FLOWS, flows)
    ctx.emit(STAYERS, stayers_table(flows, residents))


def stayers_table(flows: Table, residents: Table) -> Table:
    """Per day and origin: stayers, residents, their share and its 95% half-width (delta
    method); a cell is suppressed (derived) where either count was."""
    sd_s = flows.noise_sd("subscribers") or 0.0
    sd_r = residents.noise_sd("residents") or 0.0
    out = Table(["day", "origin"], ["stayers", "residents", "stay_share", "stay_share_ci95"])
    for row in residents.rows:
        keys = list(row.keys)
        s = flows.get([keys[0], keys[1], keys[1]], "subscribers")
        r = residents.get(keys, "residents")
        if s is not None and r is not None and r > 0.0:
            share = min(max(s / r, 0.0), 1.0)
            half = Z95 * math.sqrt(sd_s**2 + share**2 * sd_r**2) / r
            out.push(keys, [s, r, share, half])
        else:
            out.push_suppressed(keys, "derived")
    return out
