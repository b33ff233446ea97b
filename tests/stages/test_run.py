"""``clarity-se run`` (the main job) on a tiny dataset: 2 dev scenes of 0.5 s, one pair each.

The demo renderer is replaced by a stub that writes the tiny tree (rendering is tested in
``test_render.py``); everything after it is the real pipeline: enhance, amplify, evaluate, report.
"""

from __future__ import annotations

import csv
import json
import shutil

import pytest
from _eval_tree import make_eval_tree  # noqa: E402
from conftest import REPO  # noqa: E402

import clarity_se.data.render.cli as render_cli  # noqa: E402
from clarity_se.cli import main as cli_main  # noqa: E402
from clarity_se.stages.evaluate import OFFICIAL_HEADER  # noqa: E402

REPO = REPO
DEMO = REPO / "recipes" / "icassp_2023" / "demo.yaml"
SCENES = {"S06002": ["L0003"], "S06003": ["L0001"]}


@pytest.fixture()
def fake_render(monkeypatch):
    calls = []

    def build_dataset(out, *, n_train, n_dev, seed=0, workers=1):
        calls.append(
            {"out": str(out), "n_train": n_train, "n_dev": n_dev, "seed": seed, "workers": workers}
        )
        make_eval_tree(out, SCENES)
        if "fail" in calls:  # simulate a kill after the metadata was written
            raise KeyboardInterrupt
        return {"train": [], "dev": list(SCENES), "seconds": 0.0}

    monkeypatch.setattr(render_cli, "build_dataset", build_dataset)
    return calls


def run(tmp_path, *overrides):
    return cli_main(
        [
            "run",
            "-c",
            str(DEMO),
            f"path.root={tmp_path / 'data'}",
            f"run.results_folder={tmp_path / 'results'}",
            "evaluate.workers=1",
            "evaluate.rng=fast",
            *overrides,
        ]
    )


def test_run_renders_scores_reports_and_resumes(tmp_path, fake_render, capsys):
    # Convtasnet without its checkpoint must fail clearly; passthrough still runs. A scene whose
    # mixture is missing fails in enhance and evaluate (counted per stage), the other is scored.
    missing_ckpt = tmp_path / "no_such_checkpoint.pt"
    held = tmp_path / "held_S06002_mix_CH1.wav"

    def hide_mixture():
        scenes = tmp_path / "data" / "clarity_data" / "dev" / "scenes"
        shutil.move(scenes / "S06002_mix_CH1.wav", held)

    # No metadata and rendering off: a clear error, nothing rendered.
    assert (
        run(
            tmp_path,
            "run.systems=[passthrough]",
            "run.demo_scenes=8",
            "run.demo_seed=3",
            "path.scenes_listeners_file=/nonexistent/x.json",
            "run.render_demo=false",
        )
        == 2
    )
    assert "x.json not found" in capsys.readouterr().err
    assert fake_render == []
    from clarity_se.config import load_config
    from clarity_se.stages.run import ensure_dataset

    cfg = load_config(
        DEMO, [f"path.root={tmp_path / 'data'}", "run.demo_scenes=8", "run.demo_seed=3"]
    )
    # A rendering killed after the metadata was written is redone on the next call.
    fake_render.append("fail")
    with pytest.raises(KeyboardInterrupt):
        ensure_dataset(cfg)
    assert (tmp_path / "data" / "clarity_data" / "metadata" / "scenes_listeners.dev.json").is_file()
    fake_render.clear()
    ensure_dataset(cfg)
    assert fake_render == [
        {"out": str(tmp_path / "data"), "n_train": 6, "n_dev": 2, "seed": 3, "workers": 2}
    ]
    hide_mixture()

    status = run(
        tmp_path, "run.systems=[passthrough,convtasnet]", f"enhancer.checkpoint={missing_ckpt}"
    )
    out = capsys.readouterr().out
    assert status == 1
    assert len(fake_render) == 1, "metadata present: nothing is re-rendered"
    errors_csv = (tmp_path / "results" / "passthrough" / "errors.csv").read_text()
    assert "passthrough: 1 of 2 pairs scored; failed: enhance 1, evaluate 1" in out, errors_csv
    assert "convtasnet: FAILED" in out and str(missing_ckpt) in out
    results = tmp_path / "results"
    exp = results / "passthrough"
    with open(exp / "scores.csv", encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))
    assert tuple(rows[0]) == OFFICIAL_HEADER and [r[:2] for r in rows[1:]] == [["S06003", "L0001"]]
    assert (exp / "enhanced_signals" / "S06003_L0001_enhanced.wav").is_file()
    assert (exp / "amplified_signals" / "S06003_L0001_HA-output.wav").is_file()
    assert (exp / "config.yaml").is_file() and not (results / "convtasnet" / "scores.csv").exists()
    html = (results / "report.html").read_text()
    assert "passthrough" in html and "<img" in html
    with open(results / "report.csv", encoding="utf-8", newline="") as handle:
        summary = list(csv.DictReader(handle))
    assert [(r["system"], r["n"]) for r in summary] == [("passthrough", "1")]
    info = json.loads((results / "run_info.json").read_text())
    assert info["exit_status"] == 1 and info["config"]["run"]["systems"] == [
        "passthrough",
        "convtasnet",
    ]
    assert info["environment"]["packages"]["torch"] and info["environment"]["python"]
    systems = {s["name"]: s for s in info["systems"]}
    assert systems["passthrough"]["failed"] == {"enhance": 1, "evaluate": 1}
    assert str(missing_ckpt) in systems["convtasnet"]["error"]
    assert set(systems["passthrough"]["seconds"]) == {"enhance", "evaluate"}
    assert "system convtasnet cannot run" in (results / "run.log").read_text()

    # Put the mixture back: the rerun enhances and scores only the missing pair, and succeeds.
    journal_before = (exp / "scores.jsonl").read_text().splitlines()
    shutil.move(held, tmp_path / "data" / "clarity_data" / "dev" / "scenes" / "S06002_mix_CH1.wav")
    status = run(tmp_path, "run.systems=[passthrough]")
    out = capsys.readouterr().out
    assert status == 0, out
    assert "passthrough: 2 of 2 pairs scored; failed: enhance 0, evaluate 0" in out
    journal = (exp / "scores.jsonl").read_text().splitlines()
    assert journal[:1] == journal_before and len(journal) == 2
    with open(exp / "scores.csv", encoding="utf-8", newline="") as handle:
        assert [r[:2] for r in list(csv.reader(handle))[1:]] == [
            ["S06002", "L0003"],
            ["S06003", "L0001"],
        ]
    assert json.loads((results / "run_info.json").read_text())["exit_status"] == 0


def test_run_without_dataset_and_render_off_is_a_clear_error(tmp_path, fake_render, capsys):
    status = cli_main(
        [
            "run",
            "-c",
            str(REPO / "recipes" / "icassp_2023" / "baseline" / "config.yaml"),
            f"path.root={tmp_path}",
            f"run.results_folder={tmp_path / 'res'}",
        ]
    )
    assert status == 2
    err = capsys.readouterr().err
    assert "scenes_listeners.dev.json not found" in err and "run.render_demo" in err
    assert fake_render == []
