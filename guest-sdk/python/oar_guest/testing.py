"""Test doubles: a scripted host for unit tests of a module, and example schemas.

>>> from oar_guest import Context, col
>>> host = FakeHost().with_dataset(cdr_schema())
>>> t = Context(host).dataset("cdr").group_by(["region"]).count_units("n").release(0.5)
>>> [r.keys for r in t.rows]
[]
>>> host.plans[0]["group_by"]
['region']
"""

from __future__ import annotations

import json
from collections import deque
from typing import Any, Optional, Union

from ._json import dumps
from .host import HostRefusal
from .table import Table


class FakeHost:
    """A host that answers from a script. Queue answers with :meth:`answer` (a table) or
    :meth:`refuse` (a reason); with none queued, a query gets an empty table of the plan's shape.
    It records the plans it was sent (:attr:`plans`), the tables emitted and the log."""

    def __init__(self) -> None:
        self.schemas: list[dict[str, Any]] = []
        self.plans: list[dict[str, Any]] = []
        self.plan_texts: list[str] = []
        self.emitted: dict[str, Table] = {}
        self.log_lines: list[str] = []
        self.outputs: Optional[list[str]] = None
        self._answers: deque[Union[Table, str]] = deque()
        self._budget: dict[str, float] = {}

    def with_dataset(self, schema: dict[str, Any]) -> "FakeHost":
        """Adds (or replaces) a dataset by its public schema."""
        self.schemas = [s for s in self.schemas if s["name"] != schema["name"]] + [schema]
        return self

    def with_budget(self, dataset: str, epsilon: float) -> "FakeHost":
        """Sets the epsilon left on ``dataset`` (unlimited otherwise)."""
        self._budget[dataset] = float(epsilon)
        return self

    def with_outputs(self, names: list[str]) -> "FakeHost":
        """Declares the tables a module may emit (any name otherwise)."""
        self.outputs = list(names)
        return self

    def answer(self, table: Table) -> "FakeHost":
        """Queues the answer to the next query."""
        self._answers.append(table)
        return self

    def refuse(self, reason: str) -> "FakeHost":
        """Queues a refusal of the next query."""
        self._answers.append(reason)
        return self

    def _schema(self, name: str) -> Optional[dict[str, Any]]:
        return next((s for s in self.schemas if s["name"] == name), None)

    # The Host interface.
    def datasets(self) -> list[str]:
        return [s["name"] for s in self.schemas]

    def dataset_schema(self, name: str) -> str:
        schema = self._schema(name)
        if schema is None:
            raise HostRefusal(
                f"no dataset '{name}' on this fake host (it has: {', '.join(self.datasets())}); "
                "add it with FakeHost.with_dataset"
            )
        return dumps(schema)

    def _afford(self, plan: dict[str, Any]) -> None:
        left = self.budget_remaining(plan["dataset"])
        if plan["epsilon"] > left:
            raise HostRefusal(
                f"budget exhausted: the plan asks for epsilon {plan['epsilon']} and {left} is "
                f"left on '{plan['dataset']}'"
            )

    def check_plan(self, plan: str) -> None:
        doc = json.loads(plan)
        if self._schema(doc["dataset"]) is None:
            raise HostRefusal(f"no dataset '{doc['dataset']}' on this fake host")
        self._afford(doc)

    def query(self, plan: str) -> str:
        doc = json.loads(plan)
        self.plans.append(doc)
        self.plan_texts.append(plan)
        if self._schema(doc["dataset"]) is None:
            raise HostRefusal(f"no dataset '{doc['dataset']}' on this fake host")
        self._afford(doc)
        names = [a["name"] for a in doc["aggregates"]]
        answer = self._answers.popleft() if self._answers else Table(doc["group_by"], names)
        if isinstance(answer, str):
            raise HostRefusal(answer)
        if answer.key_columns != doc["group_by"] or answer.value_columns != names:
            raise HostRefusal(
                f"the queued answer does not fit the plan: it has keys {answer.key_columns} and "
                f"values {answer.value_columns}, the plan groups by {doc['group_by']} and "
                f"computes {names}"
            )
        if doc["dataset"] in self._budget:
            self._budget[doc["dataset"]] -= doc["epsilon"]
        return answer.dumps()

    def budget_remaining(self, dataset: str) -> float:
        return self._budget.get(dataset, float("inf"))

    def emit(self, name: str, table: str) -> None:
        if self.outputs is not None and name not in self.outputs:
            raise HostRefusal(f"'{name}' is not a declared output ({', '.join(self.outputs)})")
        if name in self.emitted:
            raise HostRefusal(f"'{name}' was already emitted")
        self.emitted[name] = Table.from_json(json.loads(table))

    def log(self, message: str) -> None:
        self.log_lines.append(message)


def cdr_schema() -> dict[str, Any]:
    """The call-record schema the Rust SDK's ``testing::cdr_schema`` describes."""
    return {
        "name": "cdr",
        "title": "",
        "privacy_unit": "subscriber_id",
        "columns": [
            {
                "name": "timestamp",
                "type": "datetime",
                "period": ["2024-03-01", "2024-03-07"],
                "description": "Time of the call (UTC).",
            },
            {
                "name": "region",
                "type": "str",
                "domain": ["North", "South", "East", "West"],
                "description": "Region of the serving cell.",
            },
            {
                "name": "cell_id",
                "type": "str",
                "description": "Serving cell (no public domain: not a group key).",
            },
        ],
        "max_groups_per_unit": 14,
        "max_rows_per_group": 10,
    }


def meters_schema() -> dict[str, Any]:
    """The smart-meter schema the Rust SDK's ``testing::meters_schema`` describes: privacy unit
    ``meter_id``; ``read_at`` (datetime, January 2024), ``region`` (str, domain North, South),
    ``tariff`` (str, no domain), ``kwh`` (float, bounds 0 to 5), ``occupants`` (int, domain 1 to
    6), ``consent`` (bool); each meter in at most 48 cells, 62 rows per cell.

    >>> [c["name"] for c in meters_schema()["columns"] if "bounds" in c]
    ['kwh']
    """
    return {
        "name": "meters",
        "title": "",
        "privacy_unit": "meter_id",
        "columns": [
            {
                "name": "read_at",
                "type": "datetime",
                "period": ["2024-01-01", "2024-01-31"],
                "description": "End of the half-hour the reading covers.",
            },
            {
                "name": "region",
                "type": "str",
                "domain": ["North", "South"],
                "description": "Region of the premises.",
            },
            {
                "name": "tariff",
                "type": "str",
                "description": "Tariff name (no public domain).",
            },
            {
                "name": "kwh",
                "type": "float",
                "bounds": [0.0, 5.0],
                "description": "Energy used in the half-hour.",
            },
            {
                "name": "occupants",
                "type": "int",
                "domain": [1, 2, 3, 4, 5, 6],
                "description": "People living at the premises.",
            },
            {
                "name": "consent",
                "type": "bool",
                "description": "Whether the household agreed to research use.",
            },
        ],
        "max_groups_per_unit": 48,
        "max_rows_per_group": 62,
    }
