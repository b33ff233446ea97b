"""``notebooks/results.ipynb`` runs top to bottom on a small results folder and stays stripped.

The results folder is made here in the layout ``clarity-se run`` writes (per-system
``scores.csv``, the report CSVs from :func:`clarity_se.report.build_report`,
``run_info.json``), with seeded scores on the CEC2 metadata fixture (3 scenes x 3 listeners),
so the test needs no evaluation.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import nbformat
import numpy as np
import pytest
from conftest import FIXTURES, REPO  # noqa: E402
from nbclient import NotebookClient

from clarity_se.config import load_config
from clarity_se.data.scene import make_scene_listener_list, read_scenes_listeners
from clarity_se.provenance import environment
from clarity_se.report import build_report
from clarity_se.stages.evaluate import OFFICIAL_HEADER

REPO = REPO
NOTEBOOK = REPO / "notebooks" / "results.ipynb"
META = FIXTURES / "cec2_metadata"


def make_results(folder: Path) -> None:
    from omegaconf import OmegaConf

    pairs = make_scene_listener_list(read_scenes_listeners(META / "scenes_listeners.dev.json"))
    rng = np.random.default_rng(0)
    systems = {}
    for system, gain in (("passthrough", 0.0), ("convtasnet", 0.15)):
        exp = folder / system
        exp.mkdir(parents=True)
        haspi = np.clip(rng.uniform(0.3, 0.7, len(pairs)) + gain, 0, 1)
        hasqi = rng.uniform(0.05, 0.25, len(pairs)) + gain / 3
        with open(exp / "scores.csv", "w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(OFFICIAL_HEADER)
            for (scene, lis), h, q in zip(pairs, haspi, hasqi, strict=True):
                writer.writerow([scene, lis, 0.5 * (h + q), h, q])
        systems[system] = exp
    build_report(
        systems,
        folder,
        scenes_listeners_file=META / "scenes_listeners.dev.json",
        scenes_file=META / "scenes.dev.json",
        listeners_file=META / "listeners.json",
    )
    cfg = load_config(
        None,
        [
            f"path.root={folder}",
            f"path.metadata_dir={META}",
            f"run.results_folder={folder}",
            "compressor.threshold=0.3",
        ],
    )
    info = {"config": OmegaConf.to_container(cfg, resolve=True), "environment": environment()}
    (folder / "run_info.json").write_text(json.dumps(info))


def test_committed_notebook_is_stripped():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code)
    assert any("parameters" in c.metadata.get("tags", []) for c in code)


def test_notebook_executes_on_a_results_folder(tmp_path, monkeypatch):
    results = tmp_path / "results"
    make_results(results)
    monkeypatch.setenv("CLARITY_SE_RESULTS", str(results))
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(
        nb,
        timeout=180,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOK.parent)}},
    )
    try:
        client.execute()
    except Exception as exc:  # noqa: BLE001 - shown with the cell that failed
        pytest.fail(f"notebook failed: {exc}")
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 6, [o.get("data", {}).keys() for o in outputs]
    text = "\n".join(o.get("data", {}).get("text/plain", "") for o in outputs)
    assert "convtasnet" in text and "passthrough" in text
    assert sys.version.split()[0] in text  # the environment cell shows run_info.json
