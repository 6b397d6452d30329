"""An OAR module (template), made by ``oar new --lang python``.

It counts distinct subscribers per region in the ``cdr`` dataset, and how many of them were
there at night, and publishes the night share: two releases combined in post-processing. Change
the plans in :func:`run`, the tables it emits and ``manifest.toml`` together; ``oar test`` runs
its tests, natively through the real privacy gate on synthetic data.
"""

from __future__ import annotations

from typing import Any

from oar_guest import Context, PlanError, Table, col

#: The table this module publishes (declared in ``manifest.toml``).
OUTPUT = "subscribers_by_region"

#: Parameters a requester may set when submitting a run, with their defaults.
DEFAULTS: dict[str, Any] = {"dataset": "cdr", "epsilon": 1.0}


def params(given: dict[str, Any]) -> dict[str, Any]:
    """The parameters with their defaults; an unknown one is refused by name.

    >>> params({"epsilon": 0.5})
    {'dataset': 'cdr', 'epsilon': 0.5}
    """
    unknown = sorted(set(given) - set(DEFAULTS))
    if unknown:
        raise PlanError(f"unknown parameter '{unknown[0]}'; parameters: {', '.join(DEFAULTS)}")
    return {**DEFAULTS, **given}


def run(ctx: Context, given: dict[str, Any]) -> None:
    """Runs the analysis: every number it gets back has passed the host's privacy gate."""
    p = params(given)
    hour = col("timestamp").hour()
    # The contribution bound sets the noise: a subscriber counts in at most 2 regions (where
    # they live and where they work), so each count's noise scale is 2 / (epsilon / 2).
    everyone = (
        ctx.dataset(p["dataset"])
        .group_by(["region"])
        .count_units("subscribers")
        .max_groups_per_unit(2)
        .release(p["epsilon"] / 2)
    )
    night = (
        ctx.dataset(p["dataset"])
        .filter((hour >= 22) | (hour < 6))
        .group_by(["region"])
        .count_units("at_night")
        .max_groups_per_unit(2)
        .release(p["epsilon"] / 2)
    )
    ctx.emit(OUTPUT, combine(everyone, night))


def combine(everyone: Table, night: Table) -> Table:
    """Post-processing: per region, both counts and the night share. A region suppressed in
    either release is suppressed here.

    >>> a = Table(["region"], ["subscribers"]); a.push(["R01"], [200.0])
    >>> n = Table(["region"], ["at_night"]); n.push(["R01"], [50.0])
    >>> combine(a, n).get(["R01"], "night_share")
    0.25
    """
    out = Table(["region"], ["subscribers", "at_night", "night_share"])
    for row in everyone.rows:
        total = everyone.get(row.keys, "subscribers")
        at_night = night.get(row.keys, "at_night")
        if total is not None and at_night is not None and total > 0:
            out.push(row.keys, [total, at_night, min(max(at_night / total, 0.0), 1.0)])
        else:
            out.push_suppressed(row.keys, "derived")
    return out
