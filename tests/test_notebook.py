"""The walkthrough notebook runs end to end, in its smoke mode, and is stored clean.

`examples/alexnet_walkthrough.ipynb` checks its own claims as it runs (the paper's
layer table against the built model, the grouped convolution against two
separate ones, the four LRN conventions against TensorFlow's and PyTorch's ops),
so executing it is the test; `ALEXNET_WALKTHROUGH_SMOKE=1` shrinks its training
run to seconds.
"""

from __future__ import annotations

import os
import pathlib

import nbformat
from nbclient import NotebookClient

ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "examples" / "alexnet_walkthrough.ipynb"


def test_notebook_is_stored_without_outputs():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    code_cells = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code_cells
    for cell in code_cells:
        assert cell.outputs == [] and cell.execution_count is None
    assert NOTEBOOK.stat().st_size < 50_000


def test_notebook_runs_in_smoke_mode(monkeypatch):
    monkeypatch.setenv("ALEXNET_WALKTHROUGH_SMOKE", "1")
    monkeypatch.setenv("KERAS_BACKEND", "tensorflow")
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    # The kernel imports this checkout's keras_alexnet, not an installed one.
    path = os.environ.get("PYTHONPATH")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), path])))
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(
        notebook,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOK.parent)}},
    )
    client.execute()  # raises CellExecutionError, with the cell, on any error

    text = "".join(
        output.get("text", "")
        for cell in notebook.cells
        for output in cell.get("outputs", [])
    )
    images = sum(
        "image/png" in output.get("data", {})
        for cell in notebook.cells
        for output in cell.get("outputs", [])
    )
    assert "smoke mode: True" in text
    assert "60,965,224" in text and "62,378,344" in text
    assert "validation accuracy:" in text
    assert images == 3  # LRN maps, the training patches, the conv1 kernels
