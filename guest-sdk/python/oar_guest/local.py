"""A module run natively, in this Python, against the real host: scope checks, privacy gate,
budget ledger and limits, on synthetic data.

:class:`Harness` starts ``oar local-host`` (the ``oar`` binary in the ``OAR`` variable, which
``oar test`` sets, or on ``PATH``) for the module's ``manifest.toml``, and sends it every host
call the module makes, one JSON line each. It is the Python twin of the Rust SDK's
``oar_host::local::Harness``: no wasm, no keys, the same answers a sandboxed run would get.

Use it in a test::

    with Harness("manifest.toml") as harness:
        record = harness.run(app.run, {"epsilon": 1.0})
    table = record.outputs["subscribers_by_region"]

For post-processing alone, :class:`oar_guest.testing.FakeHost` answers with tables you choose.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from .errors import OarError, ProtocolError
from .host import Context, HostRefusal
from .table import Table


@dataclass
class Record:
    """What one run produced: tables emitted (by name, in order), the epsilon charged per
    release as ``(dataset, epsilon)``, the refusals the module was given, its log lines and the
    number of queries answered."""

    outputs: dict[str, Table] = field(default_factory=dict)
    charges: list[tuple[str, float]] = field(default_factory=list)
    refusals: list[str] = field(default_factory=list)
    log: list[str] = field(default_factory=list)
    queries: int = 0

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> "Record":
        return cls(
            outputs={o["name"]: Table.from_json(o["table"]) for o in doc["outputs"]},
            charges=[(c["dataset"], float(c["epsilon"])) for c in doc["charges"]],
            refusals=list(doc["refusals"]),
            log=list(doc["log"]),
            queries=int(doc["queries"]),
        )


class RunFailed(OarError):
    """The module raised an SDK error (a refusal, a malformed plan...); ``record`` says what it
    had done by then (charges made stay made)."""

    def __init__(self, message: str, record: Record):
        super().__init__(message)
        self.record = record


def _find_oar(oar: Optional[str]) -> str:
    found = oar or os.environ.get("OAR") or shutil.which("oar")
    if not found:
        raise OarError(
            "cannot find the oar binary: run the tests with `oar test`, put oar on PATH, "
            "or set OAR to its path"
        )
    return found


class Harness:
    """The local host for one module (its ``manifest.toml``), over synthetic data shaped like
    the datasets the manifest reads, or over ``datasets`` (descriptor files) if given. Budget
    spent stays spent for the harness's lifetime, as on a holder's host. Close it (or use
    ``with``) to stop the host process."""

    def __init__(
        self,
        manifest: str | os.PathLike[str],
        *,
        datasets: Sequence[str | os.PathLike[str]] = (),
        oar: Optional[str] = None,
    ):
        args = [_find_oar(oar), "local-host", "--manifest", str(Path(manifest))]
        for d in datasets:
            args += ["--dataset", str(d)]
        self._proc = subprocess.Popen(
            args,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            encoding="utf-8",
        )

    def __enter__(self) -> "Harness":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stops the host process."""
        if self._proc.poll() is None:
            assert self._proc.stdin is not None
            self._proc.stdin.close()
            self._proc.wait(timeout=30)
        if self._proc.stdout is not None:
            self._proc.stdout.close()

    def call(self, call: str, /, **args: Any) -> Any:
        """One host call: its answer, or :class:`HostRefusal` with the host's reason."""
        assert self._proc.stdin is not None and self._proc.stdout is not None
        try:
            self._proc.stdin.write(json.dumps({"call": call, **args}) + "\n")
            self._proc.stdin.flush()
            line = self._proc.stdout.readline()
        except BrokenPipeError:
            line = ""
        if not line:
            code = self._proc.wait(timeout=30)
            raise ProtocolError(
                f"oar local-host stopped (exit status {code}); its error is above"
            )
        answer = json.loads(line)
        if "err" in answer:
            raise HostRefusal(answer["err"])
        return answer["ok"]

    def run(
        self, run: Callable[[Context, dict[str, Any]], None], params: Optional[dict[str, Any]] = None
    ) -> Record:
        """Runs ``run(ctx, params)`` as one module run and returns its :class:`Record`; raises
        :class:`RunFailed` if it raised an SDK error. The parameters travel as JSON, as they do
        to a component."""
        given = json.loads(json.dumps(params or {}))
        try:
            run(Context(_LineHost(self)), given)
        except OarError as e:
            raise RunFailed(str(e), self._finish()) from e
        return self._finish()

    def _finish(self) -> Record:
        return Record.from_json(self.call("finish"))


class _LineHost:
    """The :class:`oar_guest.Host` calls of one run, sent to the harness's host process."""

    def __init__(self, harness: Harness):
        self._h = harness

    def datasets(self) -> list[str]:
        return list(self._h.call("datasets"))

    def dataset_schema(self, name: str) -> str:
        return str(self._h.call("dataset_schema", name=name))

    def query(self, plan: str) -> str:
        return str(self._h.call("query", plan=plan))

    def check_plan(self, plan: str) -> None:
        self._h.call("check_plan", plan=plan)

    def budget_remaining(self, dataset: str) -> float:
        return float(self._h.call("budget_remaining", dataset=dataset))

    def emit(self, name: str, table: str) -> None:
        self._h.call("emit", name=name, table=table)

    def log(self, message: str) -> None:
        self._h.call("log", message=message)
