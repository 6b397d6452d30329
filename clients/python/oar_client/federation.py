"""One question asked of several holders, and their signed answers combined.

Each holder is its own ``oar serve``, with its own policy, committee and ledger; there is no
central party. :class:`Federation` submits the same signed bundle (with each holder's own
approval) to every holder, waits, verifies every holder's release against that holder's key,
and combines them by the rules ``oar federate`` applies (``oar-federation-v1``):

- counts and sums add, and so do their noise variances: the combined 95% half-width is the root
  of the sum of the holders' squared half-widths, the noise scale the root of the sum of their
  squared scales;
- means and quantiles are left out (a mean cannot be recomputed from released means); release
  the sum and the count instead;
- a cell withheld at any holder is withheld in the combination, with that holder's reason: a
  total that silently misses a holder's people would mislead;
- tables a module derived are not combined (their inputs are); tables with totals, where a
  withheld cell could be recovered from combined margins, are left to ``oar federate``, which
  re-runs secondary suppression.

If a holder refuses, fails or is down, :meth:`FederatedRun.fetch` raises
:class:`~oar_client.FederationError` naming it, unless ``partial=True``: then the result says
``partial`` and lists who is missing.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

from .client import Client, Run
from .errors import FederationError, OarError, Problem, RunFailed
from .keys import public_hex
from .release import Release

RULES = "oar-federation-v1"


@dataclass
class Holder:
    """One holder of a federation: your name for it, a :class:`Client` for it, its committee's
    approval of the module (path, bytes or dict), and, if this holder trusts another signature
    of the same component, the bundle to give it (by default the one given to ``submit``)."""

    name: str
    client: Client
    approval: object
    bundle: object = None


@dataclass
class HolderOutcome:
    name: str
    url: str
    key: str
    job_id: str | None
    outcome: str  # included, refused, failed, unreachable, not verified
    reason: str | None = None


@dataclass
class Combined:
    """The combination: each table as a Polars DataFrame (keys; each value with its
    ``_ci95_low``, ``_ci95_high``, ``_noise_scale``; ``status``; ``suppressed_because``), what was
    left out and why, the holders' verified releases and the provenance."""

    tables: dict
    left_out: dict
    not_combined: dict
    holders: list[HolderOutcome]
    releases: dict[str, Release] = field(repr=False)
    partial: bool = False

    @property
    def provenance(self) -> dict:
        return {
            "rules": RULES,
            "partial": self.partial,
            "holders": [
                dict(h.__dict__, manifest_digest=_manifest_digest(self.releases[h.name]) if h.name in self.releases else None)
                for h in self.holders
            ],
        }


def _manifest_digest(r: Release) -> str:
    """The digest the holder signed (as `oar federate` records it in federation.json)."""
    import rfc8785

    from .release import CONTEXT, _parts_digest

    return _parts_digest(CONTEXT, rfc8785.dumps(r.manifest)).hex()


class Federation:
    """Several holders asked the same question."""

    def __init__(self, holders: list[Holder]):
        names = [h.name for h in holders]
        if not holders or len(set(names)) != len(names):
            raise ValueError("give at least one holder, each with its own name")
        self.holders = holders

    def submit(self, bundle, params: dict | None = None) -> "FederatedRun":
        """Uploads the bundle and each holder's approval, and submits the run everywhere. A
        holder that refuses or cannot be reached is recorded, not fatal here."""
        from .client import _bytes

        runs: dict[str, Run | OarError] = {}
        for h in self.holders:
            try:
                module_hash = h.client.upload_bundle(_bytes(h.bundle if h.bundle is not None else bundle))
                h.client.attach_approval(h.approval)
                runs[h.name] = h.client.submit(module_hash, params or {})
            except OarError as e:
                runs[h.name] = e
        return FederatedRun(self, runs)


class FederatedRun:
    """The run at every holder that took it (or why one did not)."""

    def __init__(self, federation: Federation, runs: dict):
        self.federation = federation
        self.runs = runs

    def fetch(self, partial: bool = False, wait: float = 600.0, progress=True) -> Combined:
        outcomes, releases = [], {}
        for h in self.federation.holders:
            run = self.runs[h.name]
            record = HolderOutcome(h.name, h.client.url, public_hex(h.client.holder), None, "included")
            if isinstance(run, OarError):
                # A problem answer is a refusal; anything else never reached the holder.
                record.outcome = "refused" if isinstance(run, Problem) else "unreachable"
                record.reason = str(run)
            else:
                record.job_id = run.id
                try:
                    releases[h.name] = run.fetch(wait=wait, progress=progress)
                except RunFailed as e:
                    record.outcome, record.reason = "failed", str(e)
                except OarError as e:
                    record.outcome = "not verified" if type(e).__name__ == "NotVerified" else "unreachable"
                    record.reason = str(e)
            outcomes.append(record)
        missing = [f"{o.name} ({o.outcome})" for o in outcomes if o.outcome != "included"]
        if missing and not partial:
            raise FederationError(
                "not every holder answered: " + ", ".join(missing)
                + ". Nothing was combined, so no total undercounts silently; pass partial=True for a result labelled partial."
            )
        combined = combine(releases)
        return Combined(combined["tables"], combined["left_out"], combined["not_combined"], outcomes, releases, bool(missing))


def combine(releases: dict[str, Release]) -> dict:
    """Combines verified releases (holder name → :class:`Release`) of the same module and
    parameters; returns ``tables`` (name → DataFrame), ``left_out`` (name → [(column, why)])
    and ``not_combined`` (name → why)."""
    import polars as pl

    if not releases:
        raise FederationError("no holder's release to combine")
    infos = {n: r.info for n, r in releases.items()}
    first_name = next(iter(infos))
    for what, get in (("the module (component hash)", lambda n: infos[n]["module_hash"]),
                      ("the parameters", lambda n: releases[n].manifest.get("params_sha256"))):
        if len({get(n) for n in infos}) != 1:
            raise FederationError(f"the releases do not answer the same question: {what} differs")
    tables, left_out, not_combined = {}, {}, {}
    for t in infos[first_name]["tables"]:
        name = t["name"]
        try:
            tables[name], left_out[name] = _combine_table(infos, name, pl)
        except _NotCombined as why:
            not_combined[name] = str(why)
    return {"tables": tables, "left_out": left_out, "not_combined": not_combined}


class _NotCombined(Exception):
    pass


def _combine_table(infos: dict, name: str, pl):
    parts = []
    for holder, info in infos.items():
        table = next((t for t in info["tables"] if t["name"] == name), None)
        if table is None:
            raise _NotCombined(f"holder {holder} did not release it")
        prov = table["provenance"]
        if prov.get("kind") != "query":
            raise _NotCombined("the module derived it from its answers; combine the tables it was derived from")
        figures = next((q for q in info.get("queries", []) if q["query"] == prov["query"]), {})
        kinds = {c["name"]: c["kind"] for c in figures.get("columns", [])}
        parts.append((holder, table["table"], [kinds.get(c) for c in table["table"]["value_columns"]]))
    first = parts[0][1]
    for holder, t, k in parts[1:]:
        if t["key_columns"] != first["key_columns"] or t["value_columns"] != first["value_columns"] or k != parts[0][2]:
            raise _NotCombined(f"holder {holder} released it with other columns than holder {parts[0][0]}")
    keep, dropped = [], []
    for i, (c, k) in enumerate(zip(first["value_columns"], parts[0][2])):
        if k in ("count_units", "sum"):
            keep.append(i)
        elif k == "mean":
            dropped.append((c, "a mean cannot be recomputed from released means without each holder's sums and counts; release the sum and the count"))
        elif k == "quantile":
            dropped.append((c, "quantiles do not combine across holders"))
        else:
            dropped.append((c, "the release does not say what this column computes (released by an older host)"))
    if not keep:
        raise _NotCombined("none of its columns can be combined (only counts and sums add)")
    order, cells = [], {}
    for h, (_, t, _) in enumerate(parts):
        for row in t["rows"]:
            key = tuple(str(k) if not isinstance(k, bool) else str(k).lower() for k in row["keys"])
            if key not in cells:
                cells[key] = [None] * len(parts)
                order.append(key)
            cells[key][h] = row
    has_totals = any("Total" in key for key in order)
    accuracy = []
    for i in keep:
        column = first["value_columns"][i]
        scale2 = half2 = 0.0
        for _, t, _ in parts:
            for a in (t.get("release") or {}).get("accuracy", []):
                if a["column"] == column:
                    scale2 += a["noise_scale"] ** 2
                    half2 += a["ci95_half_width"] ** 2
        accuracy.append((column, math.sqrt(half2), math.sqrt(scale2)))
    columns = {k: [] for k in first["key_columns"]}
    for column, _, _ in accuracy:
        for suffix in ("", "_ci95_low", "_ci95_high", "_noise_scale"):
            columns[column + suffix] = []
    columns["status"], columns["suppressed_because"] = [], []
    for key in order:
        slots = cells[key]
        for k, v in zip(first["key_columns"], key):
            columns[k].append(v)
        why = None
        for slot in slots:
            reason = "minimum_units" if slot is None else slot.get("suppressed")
            if reason and why is None:
                why = reason
        for j, (column, half, scale) in zip(keep, accuracy):
            value = None if why else sum(s["values"][j] for s in slots)
            columns[column].append(value)
            columns[column + "_ci95_low"].append(None if value is None else value - half)
            columns[column + "_ci95_high"].append(None if value is None else value + half)
            columns[column + "_noise_scale"].append(None if value is None else scale)
        columns["status"].append("suppressed" if why else "released")
        columns["suppressed_because"].append(why or "")
    if has_totals and any(columns["status"][i] == "suppressed" for i in range(len(order))):
        raise _NotCombined("it has totals and withheld cells: secondary suppression must be re-run on the combined margins; combine it with `oar federate fetch`")
    schema = {k: pl.String for k in first["key_columns"]}
    for column, _, _ in accuracy:
        for suffix in ("", "_ci95_low", "_ci95_high", "_noise_scale"):
            schema[column + suffix] = pl.Float64
    schema["status"] = pl.String
    schema["suppressed_because"] = pl.String
    return pl.DataFrame(columns, schema=schema), dropped


def load_release(folder: str, holder_key, job_id: str | None = None) -> Release:
    """A release folder (as ``oar fetch`` or ``oar federate fetch`` writes it), verified."""
    from .keys import public_key
    from .release import verify_files

    files = {}
    for name in os.listdir(folder):
        with open(os.path.join(folder, name), "rb") as f:
            files[name] = f.read()
    key = public_key(holder_key)
    manifest = verify_files(files, key, job_id)
    return Release(job_id=manifest["job_id"], holder=public_hex(key), manifest=manifest, files=files)
