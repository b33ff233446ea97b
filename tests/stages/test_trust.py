"""Results you can trust: stale results are recomputed, bad inputs are named, one writer per
folder, exit statuses and messages, file permissions, listener validation."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from _eval_tree import make_eval_tree  # noqa: E402
from conftest import REPO  # noqa: E402

from clarity_se.cli import main as cli_main  # noqa: E402
from clarity_se.data.experiment import ErrorLog  # noqa: E402

REPO = REPO
BASELINE = REPO / "recipes" / "icassp_2023" / "baseline" / "config.yaml"


def _args(stage, root, exp, *extra):
    """Compat scores: a pair's score does not depend on which pairs share its batch."""
    return [stage, "-c", str(BASELINE), f"path.root={root}", f"path.exp_folder={exp}",
            "evaluate.workers=1", *extra]  # fmt: skip


def _scores(exp: Path) -> dict:
    with open(exp / "scores.csv", encoding="utf-8", newline="") as handle:
        return {(r["scene"], r["listener"]): r for r in csv.DictReader(handle)}


def _journal_ids(path: Path) -> list[str]:
    return [json.loads(line)["id"] for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    """A tiny dataset, enhanced (passthrough) and scored once."""
    root = make_eval_tree(tmp_path_factory.mktemp("data"))
    exp = tmp_path_factory.mktemp("exp") / "exp"
    assert cli_main(_args("enhance", root, exp)) == 0
    assert cli_main(_args("evaluate", root, exp)) == 0
    return root, exp


def _copy(scored, tmp_path):
    root, exp = scored
    new = tmp_path / "exp"
    shutil.copytree(exp, new)
    return root, new


def test_replaced_enhanced_file_is_rescored_and_only_it(scored, tmp_path, capsys):
    root, exp = _copy(scored, tmp_path)
    before = _scores(exp)
    target = exp / "enhanced_signals" / "S06001_L0002_enhanced.wav"
    samples, sr = sf.read(target, dtype="float32")
    sf.write(target, 0.5 * samples + 0.01 * np.sin(np.arange(len(samples)))[:, None], sr,
             subtype="FLOAT")  # fmt: skip
    capsys.readouterr()
    assert cli_main(_args("evaluate", root, exp)) == 0
    out = capsys.readouterr().out
    assert "3 reused, 1 recomputed" in out, out
    after = _scores(exp)
    changed = [k for k in after if after[k]["combined"] != before[k]["combined"]]
    assert changed == [("S06001", "L0002")]
    fresh = tmp_path / "fresh"  # what a fresh run gives for the changed pair
    shutil.copytree(exp / "enhanced_signals", fresh / "enhanced_signals")
    assert cli_main(_args("evaluate", root, fresh)) == 0
    # compat scores depend on the batch only by float rounding (~1e-15)
    for key in ("combined", "haspi", "hasqi"):
        assert float(_scores(fresh)[("S06001", "L0002")][key]) == pytest.approx(
            float(after[("S06001", "L0002")][key]), abs=1e-12)
    # at rest the journal holds one line per pair
    assert sorted(_journal_ids(exp / "scores.jsonl")) == sorted(f"{s}_{li}" for s, li in after)
    # a touch (same content, new mtime) is not a change
    os.utime(target, None)
    capsys.readouterr()
    assert cli_main(_args("evaluate", root, exp)) == 0
    assert "4 reused, 0 recomputed" in capsys.readouterr().out


def test_config_change_and_force_recompute(scored, tmp_path, capsys):
    root, exp = _copy(scored, tmp_path)
    capsys.readouterr()
    assert cli_main(_args("evaluate", root, exp, "evaluate.level_db_spl=90")) == 0
    assert "0 reused, 4 recomputed" in capsys.readouterr().out
    assert cli_main(_args("evaluate", root, exp, "evaluate.level_db_spl=90", "--force")) == 0
    assert "0 reused, 4 recomputed (--force)" in capsys.readouterr().out
    # workers / batch size do not change scores, so they do not make results stale
    assert cli_main(_args("evaluate", root, exp, "evaluate.level_db_spl=90",
                          "evaluate.batch_size=1")) == 0  # fmt: skip
    assert "4 reused" in capsys.readouterr().out


def test_enhance_rerun_with_another_enhancer_recomputes(scored, tmp_path, capsys):
    root, exp = _copy(scored, tmp_path)
    capsys.readouterr()
    assert cli_main(_args("enhance", root, exp)) == 0
    assert "4 reused" in capsys.readouterr().out
    assert cli_main(_args("enhance", root, exp, "enhancer.name=convtasnet",
                          "enhancer.mirror_average=false")) == 0  # fmt: skip
    assert "0 reused, 4 recomputed" in capsys.readouterr().out


def test_truncated_reference_is_named_and_not_scored(scored, tmp_path):
    root, exp = _copy(scored, tmp_path)
    data = tmp_path / "data"
    shutil.copytree(root, data)
    ref = data / "clarity_data" / "dev" / "scenes" / "S06002_target_anechoic_CH1.wav"
    ref.write_bytes(ref.read_bytes()[: len(ref.read_bytes()) // 2])
    assert cli_main(_args("evaluate", data, exp, "--force")) == 1
    errors = ErrorLog.read(exp / "errors.csv")
    assert [(e["scene"], e["listener"]) for e in errors] == [("S06002", "L0003")]
    assert "S06002_target_anechoic_CH1.wav" in errors[0]["error"]
    assert "truncated" in errors[0]["error"]
    assert ("S06002", "L0003") not in _scores(exp)


def test_truncated_mixture_fails_its_scene_in_enhance(scored, tmp_path):
    root, _ = scored
    data = tmp_path / "data"
    shutil.copytree(root, data)
    mix = data / "clarity_data" / "dev" / "scenes" / "S06003_mix_CH2.wav"
    mix.write_bytes(mix.read_bytes()[:3000])
    exp = tmp_path / "exp"
    assert cli_main(_args("enhance", data, exp)) == 1
    errors = ErrorLog.read(exp / "errors.csv")
    assert [(e["scene"], e["listener"]) for e in errors] == [("S06003", "L0001")]
    assert "S06003_mix_CH2.wav: num_samples: truncated" in errors[0]["error"]
    assert not (exp / "enhanced_signals" / "S06003_L0001_enhanced.wav").exists()


def test_second_run_on_a_busy_folder_exits_2_naming_the_holder(scored, tmp_path, capsys):
    from clarity_se.data.experiment import Experiment

    root, exp = _copy(scored, tmp_path)
    code = (
        "import sys, time; from clarity_se.data.experiment import Experiment\n"
        f"lock = Experiment({str(exp)!r}).lock()\n"
        "lock.__enter__(); print('held', flush=True); time.sleep(60)\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        capsys.readouterr()
        assert cli_main(_args("evaluate", root, exp, "--force")) == 2
        err = capsys.readouterr().err
        assert f"pid {holder.pid}" in err and "--wait" in err
        assert len(err.strip().splitlines()) == 1
    finally:
        holder.kill()
        holder.wait()
    # the holder died (as with kill -9): the lock is free again
    with Experiment(exp).lock():
        pass


def test_outputs_honour_the_umask(scored, tmp_path):
    root, _ = scored
    exp = tmp_path / "exp"
    old = os.umask(0o022)
    try:
        assert cli_main(_args("enhance", root, exp)) == 0
        assert cli_main(_args("evaluate", root, exp)) == 0
    finally:
        os.umask(old)
    files = [p for p in exp.rglob("*") if p.is_file() and not p.name.startswith(".")]
    assert len(files) >= 10
    for path in files:
        assert path.stat().st_mode & 0o777 == 0o644, path


def test_bad_listener_fails_only_its_pairs_in_every_stage(scored, tmp_path):
    root, _ = scored
    data = tmp_path / "data"
    shutil.copytree(root, data)
    listeners_file = data / "clarity_data" / "metadata" / "listeners.json"
    listeners = json.loads(listeners_file.read_text())
    listeners["L0003"]["audiogram_levels_l"][2] = "45"  # a string level
    listeners["L0002"]["audiogram_levels_r"][0] = -500  # outside the audiometer range
    listeners_file.write_text(json.dumps(listeners))
    exp = tmp_path / "exp"
    assert cli_main(_args("enhance", data, exp)) == 0
    for stage in ("amplify", "evaluate"):
        assert cli_main(_args(stage, data, exp)) == 1
        rows = [r for r in ErrorLog.read(exp / "errors.csv") if r["stage"] == stage]
        assert {(r["scene"], r["listener"]) for r in rows} == {
            ("S06001", "L0002"), ("S06002", "L0003")}
        assert any("audiogram_levels_l" in r["error"] and "'45'" in r["error"] for r in rows)
        assert any("-500" in r["error"] and "audiometer range" in r["error"] for r in rows)
    assert set(_scores(exp)) == {("S06001", "L0001"), ("S06003", "L0001")}


@pytest.mark.parametrize(
    "override, message",
    [
        ("path.root /x", "bad override 'path.root /x': expected key=value"),
        ("evaluate.wrkers=2", "bad override 'evaluate.wrkers=2'"),
    ],
)
def test_override_errors_name_the_override(tmp_path, capsys, override, message):
    status = cli_main(["evaluate", "-c", str(BASELINE), f"path.exp_folder={tmp_path}", override])
    assert status == 2
    err = capsys.readouterr().err
    assert message in err and "config.yaml" not in err and len(err.strip().splitlines()) == 1


def test_unwritable_experiment_folder_is_one_line_and_exit_2(scored, tmp_path, capsys):
    """An experiment folder that cannot be created (here: below a regular file, which fails
    for root too) is an environment error: exit 2, one line naming the path."""
    root, _ = scored
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("")
    for stage in ("enhance", "amplify", "evaluate"):
        assert cli_main(_args(stage, root, blocker / "exp")) == 2
        err = capsys.readouterr().err
        assert str(blocker) in err and len(err.strip().splitlines()) == 1, err


def test_submit_follows_the_exit_status_contract(tmp_path, capsys):
    assert cli_main(["submit", "-c", str(tmp_path / "missing.yaml")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert cli_main(["submit", "path.exp_folder=/tmp"]) == 2
    assert "path.root is required" in capsys.readouterr().err
