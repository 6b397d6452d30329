"""Released tables: what a query answers and what a module publishes with ``emit``.

>>> t = Table(["region"], ["n"])
>>> t.push(["R01"], [1520.0])
>>> t.get(["R01"], "n")
1520.0
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Optional, Sequence

from ._json import dumps

#: Why a cell carries no value: too few units, secondary or dominance suppression, or derived
#: from a suppressed cell by the module.
SUPPRESSIONS = ("minimum_units", "secondary", "dominance", "derived")


@dataclass
class Row:
    """One cell: its key values, its values (empty when suppressed) and why it was suppressed."""

    keys: list[Any]
    values: list[float]
    suppressed: Optional[str] = None


@dataclass
class Table:
    """A table of key columns and value columns; ``release`` holds the host's figures (epsilon,
    noise scales, 95% intervals) for a table a query answered."""

    key_columns: list[str]
    value_columns: list[str]
    rows: list[Row] = field(default_factory=list)
    release: Optional[dict[str, Any]] = None

    def __init__(
        self,
        key_columns: Iterable[str],
        value_columns: Iterable[str],
        rows: Optional[list[Row]] = None,
        release: Optional[dict[str, Any]] = None,
    ):
        self.key_columns = list(key_columns)
        self.value_columns = list(value_columns)
        self.rows = rows or []
        self.release = release

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> "Table":
        """A table from its JSON object (as a query answers it)."""
        rows = [Row(r["keys"], [float(v) for v in r["values"]], r.get("suppressed")) for r in doc["rows"]]
        return cls(doc["key_columns"], doc["value_columns"], rows, doc.get("release"))

    def to_json(self) -> dict[str, Any]:
        """The table as JSON, field for field as the Rust SDK writes it."""
        rows = []
        for r in self.rows:
            row: dict[str, Any] = {"keys": list(r.keys), "values": [float(v) for v in r.values]}
            if r.suppressed is not None:
                row["suppressed"] = r.suppressed
            rows.append(row)
        doc: dict[str, Any] = {
            "key_columns": self.key_columns,
            "value_columns": self.value_columns,
            "rows": rows,
        }
        if self.release is not None:
            doc["release"] = self.release
        return doc

    def dumps(self) -> str:
        """The table as JSON text."""
        return dumps(self.to_json())

    def value_index(self, name: str) -> Optional[int]:
        """The position of value column ``name``."""
        return self.value_columns.index(name) if name in self.value_columns else None

    def get(self, keys: Sequence[Any], name: str) -> Optional[float]:
        """The value of column ``name`` in the row with ``keys`` (None if absent or suppressed)."""
        i = self.value_index(name)
        if i is None:
            return None
        for r in self.rows:
            if r.keys == list(keys):
                return r.values[i] if i < len(r.values) else None
        return None

    def noise_sd(self, name: str) -> Optional[float]:
        """The standard deviation of the noise on column ``name`` (Laplace: √2 × scale).

        >>> t = Table(["k"], ["n"], release={"accuracy": [{"column": "n", "noise_scale": 2.0}]})
        >>> round(t.noise_sd("n"), 4)
        2.8284
        """
        for a in (self.release or {}).get("accuracy", []):
            if a["column"] == name:
                return math.sqrt(2.0) * a["noise_scale"]
        return None

    def released(self) -> list[Row]:
        """The rows that carry values."""
        return [r for r in self.rows if r.suppressed is None]

    def push(self, keys: Sequence[Any], values: Sequence[float]) -> None:
        """Adds a row; its values must match the value columns."""
        if len(keys) != len(self.key_columns) or len(values) != len(self.value_columns):
            raise ValueError(
                f"a row of {len(keys)} keys and {len(values)} values does not fit "
                f"{self.key_columns} and {self.value_columns}"
            )
        self.rows.append(Row(list(keys), [float(v) for v in values]))

    def push_suppressed(self, keys: Sequence[Any], why: str) -> None:
        """Adds a row without values, suppressed for ``why`` (one of :data:`SUPPRESSIONS`)."""
        if why not in SUPPRESSIONS:
            raise ValueError(f"unknown suppression '{why}'; one of {', '.join(SUPPRESSIONS)}")
        self.rows.append(Row(list(keys), [], why))
