"""The worked example notebook runs end to end against the test holder, in a real Jupyter
kernel (nbclient + ipykernel), as a statistical office would run it."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from conftest import REPO

NOTEBOOK = REPO / "clients" / "python" / "examples" / "population_and_od_flows.ipynb"


def test_the_example_notebook_runs_against_a_local_holder(holder, monkeypatch):
    for name, value in {
        "OAR_URL": holder.url,
        "OAR_KEY": str(holder.requester_key),
        "OAR_HOLDER": str(holder.holder_pub),
        "OAR_POPULATION_BUNDLE": str(holder.bundles["population"]),
        "OAR_POPULATION_APPROVAL": str(holder.approvals["population"]),
        "OAR_OD_BUNDLE": str(holder.bundles["od-flows"]),
        "OAR_OD_APPROVAL": str(holder.approvals["od-flows"]),
        "PYTHONPATH": os.pathsep.join([str(REPO / "clients" / "python"), os.environ.get("PYTHONPATH", "")]),
    }.items():
        monkeypatch.setenv(name, value)
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(holder.root)}}).execute()
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") for o in outputs) + "".join(
        str(o.get("data", {}).get("text/plain", "")) for o in outputs
    )
    assert "population_by_region_day" in text and "origin-destination cells released" in text
