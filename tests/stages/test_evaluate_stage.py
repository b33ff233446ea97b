"""``clarity-se evaluate`` robustness on a tiny CEC2 tree (3 scenes of 0.5 s, 4 pairs).

One uninterrupted, single-process ``compat`` run is the reference; it must equal pyclarity's
whole recipe (``tests/fixtures/evaluate_stage_golden.json``, made by
``tests/golden/make_evaluate_stage_golden.py``). A run killed with SIGKILL and resumed with two
workers must give the same pairs in the same order with the same scores (within
``PROCESS_SCORE_ABS``: computed in other processes with other thread counts); sharded runs
merged by ``clarity-se report`` the same rows; corrupted inputs must end in ``errors.csv`` with
a reason while the other pairs are still scored.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from _eval_tree import SCENES_LISTENERS, make_eval_tree  # noqa: E402
from conftest import (  # noqa: E402
    FIXTURES,
    GOLDEN_STAGE_SCORE_ABS,  # noqa: E402
    PROCESS_SCORE_ABS,
    REPO,
)

from clarity_se.cli import main as cli_main  # noqa: E402
from clarity_se.config import load_config  # noqa: E402
from clarity_se.data.experiment import ErrorLog  # noqa: E402
from clarity_se.stages.evaluate import OFFICIAL_HEADER, run_evaluate  # noqa: E402

REPO = REPO
BASELINE = REPO / "recipes" / "icassp_2023" / "baseline" / "config.yaml"
GOLDEN = FIXTURES / "evaluate_stage_golden.json"
#: compat scores vs pyclarity (tests/conftest.py)
GOLDEN_ATOL = GOLDEN_STAGE_SCORE_ABS
PAIRS = [(s, lis) for s, listeners in SCENES_LISTENERS.items() for lis in listeners]


def config(root: Path, exp: Path, *overrides: str):
    return load_config(BASELINE, [f"path.root={root}", f"path.exp_folder={exp}", *overrides])


def read_rows(path: Path) -> list[dict]:
    with open(path, encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def assert_same_scores(path: Path, reference: dict) -> None:
    """``scores.csv`` at ``path`` equals the reference run's: same header, pairs and order,
    scores within ``PROCESS_SCORE_ABS`` (computed in other processes: see conftest)."""
    text, ref = path.read_text(encoding="utf-8"), reference["csv"].decode()
    assert text.splitlines()[0] == ref.splitlines()[0]
    rows, ref_rows = read_rows(path), reference["rows"]
    assert [(r["scene"], r["listener"]) for r in rows] == [
        (r["scene"], r["listener"]) for r in ref_rows
    ]
    for row, ref_row in zip(rows, ref_rows, strict=True):
        for key in ("combined", "haspi", "hasqi"):
            assert float(row[key]) == pytest.approx(float(ref_row[key]), rel=0,
                                                    abs=PROCESS_SCORE_ABS), (row, key)  # fmt: skip


def new_exp(tree, tmp_path: Path, name: str = "exp") -> Path:
    """An experiment folder holding copies of the passthrough enhanced signals."""
    exp = tmp_path / name
    shutil.copytree(tree["enhanced"], exp / "enhanced_signals")
    return exp


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = make_eval_tree(tmp_path_factory.mktemp("data"))
    exp = tmp_path_factory.mktemp("enhance")
    assert (
        cli_main(["enhance", "-c", str(BASELINE), f"path.root={root}", f"path.exp_folder={exp}"])
        == 0
    )
    return {
        "root": root,
        "enhanced": exp / "enhanced_signals",
        "meta": root / "clarity_data" / "metadata",
    }


@pytest.fixture(scope="module")
def reference(tree, tmp_path_factory):
    """Uninterrupted single-process compat run: ``{"exp", "csv" (bytes), "rows"}``."""
    exp = new_exp(tree, tmp_path_factory.mktemp("reference"))
    n_scored, n_failed, _ = run_evaluate(config(tree["root"], exp, "evaluate.workers=1"))
    assert (n_scored, n_failed) == (len(PAIRS), 0)
    return {
        "exp": exp,
        "csv": (exp / "scores.csv").read_bytes(),
        "rows": read_rows(exp / "scores.csv"),
    }


@pytest.mark.golden
def test_compat_equals_pyclarity_recipe(tree, reference):
    golden = json.loads(GOLDEN.read_text())
    scene_dir = tree["root"] / "clarity_data" / "dev" / "scenes"
    hashes = {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(scene_dir.iterdir())
    }
    assert hashes == golden["input_sha256"], (
        "the tiny tree differs from the one the golden was made on"
    )
    assert tuple(reference["csv"].decode().splitlines()[0].split(",")) == OFFICIAL_HEADER
    rows = reference["rows"]
    assert [(r["scene"], r["listener"]) for r in rows] == [
        (g["scene"], g["listener"]) for g in golden["scores"]
    ]
    for row, gold in zip(rows, golden["scores"], strict=True):
        for key in ("combined", "haspi", "hasqi"):
            assert float(row[key]) == pytest.approx(gold[key], abs=GOLDEN_ATOL), (row, key)
    detail = read_rows(reference["exp"] / "scores_detail.csv")
    for row in detail:
        assert float(row["haspi"]) == max(float(row["haspi_left"]), float(row["haspi_right"]))
    assert sorted(p.name for p in (reference["exp"] / "amplified_signals").iterdir()) == sorted(
        f"{s}_{lis}_HA-output.wav" for s, lis in PAIRS
    )


def _spawned_workers(pid: int) -> list[int]:
    """Process ids of the ``multiprocessing`` spawned children of ``pid`` (Linux ``/proc``)."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    cmdline = f.read()
            except (OSError, ValueError, IndexError):
                continue
            if ppid == pid and b"spawn_main" in cmdline:
                out.append(int(entry))
    return out


def test_killed_then_resumed_with_two_workers_equals_uninterrupted(tree, reference, tmp_path):
    exp = new_exp(tree, tmp_path)
    journal = exp / "scores.jsonl"
    cmd = [
        sys.executable,
        "-m",
        "clarity_se.cli",
        "evaluate",
        "-c",
        str(BASELINE),
        f"path.root={tree['root']}",
        f"path.exp_folder={exp}",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    log = open(tmp_path / "killed_run.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 240
        while not (journal.is_file() and journal.read_bytes().count(b"\n") >= 1):
            assert proc.poll() is None, (
                "evaluate finished or died before the first pair was journaled: "
                + (tmp_path / "killed_run.log").read_text(errors="replace")[-3000:]
            )
            assert time.monotonic() < deadline, "no pair journaled in 240 s"
            time.sleep(0.05)
        workers = _spawned_workers(proc.pid)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
        log.close()
    # the orphaned workers notice and exit instead of waiting for work forever
    deadline = time.monotonic() + 20
    while any(os.path.exists(f"/proc/{pid}") for pid in workers):
        assert time.monotonic() < deadline, f"workers {workers} outlived their killed parent"
        time.sleep(0.2)
    assert len(workers) == 2, workers  # evaluate.workers defaults to one per core (CI: 2)
    done_before = journal.read_text().count("\n")
    assert 1 <= done_before < len(PAIRS), "kill came too late to test a resume"
    # A kill -9 in the middle of a journal write leaves a torn last line.
    with open(exp / "scores.jsonl", "ab") as handle:
        handle.write(b'{"id": "S06002_L0003", "schema": "clarity_se.sc')
    n_scored, n_failed, _ = run_evaluate(config(tree["root"], exp, "evaluate.workers=2"))
    assert (n_scored, n_failed) == (len(PAIRS), 0)
    assert_same_scores(exp / "scores.csv", reference)
    ids = [json.loads(line)["id"] for line in (exp / "scores.jsonl").read_text().splitlines()]
    assert sorted(ids) == sorted(f"{s}_{lis}" for s, lis in PAIRS)
    assert ErrorLog.read(exp / "errors.csv") == []
    # A third run has nothing to do and changes nothing.
    assert run_evaluate(config(tree["root"], exp))[:2] == (len(PAIRS), 0)
    assert len((exp / "scores.jsonl").read_text().splitlines()) == len(PAIRS)
    assert_same_scores(exp / "scores.csv", reference)


def test_two_workers_score_every_pair_once(tree, reference, tmp_path):
    """workers=2: two spawned workers share one job queue; every pair is journaled exactly
    once and the scores equal the one-process run's."""
    exp = new_exp(tree, tmp_path, "shared")
    assert run_evaluate(config(tree["root"], exp, "evaluate.workers=2"))[:2] == (len(PAIRS), 0)
    assert_same_scores(exp / "scores.csv", reference)
    ids = [json.loads(line)["id"] for line in (exp / "scores.jsonl").read_text().splitlines()]
    assert sorted(ids) == sorted(f"{s}_{lis}" for s, lis in PAIRS)


def test_shards_merge_in_report(tree, reference, tmp_path):
    exp = new_exp(tree, tmp_path, "shardsys")
    meta = tree["meta"]
    assert run_evaluate(config(tree["root"], exp, "evaluate.shard=1/2"))[:2] == (2, 0)
    assert not (exp / "scores.csv").exists()
    shard1 = read_rows(exp / "scores.shard-1-of-2.csv")
    assert [(r["scene"], r["listener"]) for r in shard1] == PAIRS[0::2]
    # With one shard only, the report names the missing pairs and fails.
    assert (
        cli_main(["report", str(exp), "--metadata", str(meta), "--out", str(tmp_path / "r1")]) == 1
    )
    assert (
        cli_main(
            [
                "evaluate",
                "-c",
                str(BASELINE),
                f"path.root={tree['root']}",
                f"path.exp_folder={exp}",
                "evaluate.shard=2/2",
            ]
        )
        == 0
    )
    out = tmp_path / "report"
    assert cli_main(["report", str(exp), "--metadata", str(meta), "--out", str(out)]) == 0
    summary = read_rows(out / "report.csv")
    assert len(summary) == 1 and summary[0]["system"] == "shardsys" and summary[0]["n"] == "4"
    merged = {
        (r["scene"], r["listener"]): r
        for name in ("scores.shard-1-of-2.csv", "scores.shard-2-of-2.csv")
        for r in read_rows(exp / name)
    }
    assert sorted(merged) == sorted(PAIRS)
    for row in reference["rows"]:
        got = merged[(row["scene"], row["listener"])]
        for key in ("combined", "haspi", "hasqi"):  # other batch composition: rounding only
            assert float(got[key]) == pytest.approx(float(row[key]), rel=1e-9, abs=1e-12)
    combined = np.mean([float(r["combined"]) for r in reference["rows"]])
    assert float(summary[0]["combined_mean"]) == pytest.approx(combined, rel=1e-9)


def test_corrupted_inputs_end_in_errors_csv(tree, reference, tmp_path, capsys):
    root = tmp_path / "data"
    shutil.copytree(tree["root"], root)
    meta = root / "clarity_data" / "metadata"
    scenes_listeners = {
        "S06001": ["L0001", "L0002", "L0009"],
        "S06002": ["L0003", "L0002"],
        "S06003": ["L0001"],
    }
    (meta / "scenes_listeners.dev.json").write_text(json.dumps(scenes_listeners))
    exp = new_exp(tree, tmp_path)
    enhanced = exp / "enhanced_signals"
    good = enhanced / "S06001_L0001_enhanced.wav"
    samples, sr = sf.read(good)
    # truncated WAV: header and a few frames of data
    (enhanced / "S06001_L0002_enhanced.wav").write_bytes(good.read_bytes()[:2000])
    shutil.copy(good, enhanced / "S06001_L0009_enhanced.wav")  # L0009 is not in listeners.json
    nan = samples.copy()
    nan[100:200] = np.nan
    sf.write(enhanced / "S06002_L0003_enhanced.wav", nan, sr, subtype="FLOAT")
    sf.write(enhanced / "S06002_L0002_enhanced.wav", np.zeros_like(samples), sr, subtype="FLOAT")
    (enhanced / "S06003_L0001_enhanced.wav").unlink()

    status = cli_main(
        ["evaluate", "-c", str(BASELINE), f"path.root={root}", f"path.exp_folder={exp}"]
    )
    assert status == 1
    assert "1 of 6 pairs scored" in capsys.readouterr().out
    errors = {(r["scene"], r["listener"]): r for r in ErrorLog.read(exp / "errors.csv")}
    assert set(errors) == {
        ("S06001", "L0002"),
        ("S06001", "L0009"),
        ("S06002", "L0003"),
        ("S06002", "L0002"),
        ("S06003", "L0001"),
    }
    assert all(r["stage"] == "evaluate" for r in errors.values())
    assert "S06001_L0002_enhanced.wav" in errors[("S06001", "L0002")]["error"]
    assert (
        "L0009" in errors[("S06001", "L0009")]["error"]
        and "listeners.json" in errors[("S06001", "L0009")]["error"]
    )
    assert "NaN" in errors[("S06002", "L0003")]["error"]
    assert "S06002_L0003_enhanced.wav" in errors[("S06002", "L0003")]["error"]
    assert "silent" in errors[("S06002", "L0002")]["error"]
    assert "S06003_L0001_enhanced.wav" in errors[("S06003", "L0001")]["error"]
    rows = read_rows(exp / "scores.csv")
    assert [(r["scene"], r["listener"]) for r in rows] == [("S06001", "L0001")]
    # compat draws are per pair, so the surviving pair scores as in the full run (batch of 2)
    assert float(rows[0]["combined"]) == pytest.approx(
        float(reference["rows"][0]["combined"]), rel=1e-9
    )

    # Fix the inputs and rerun: only the failed pairs are retried; errors.csv empties.
    (meta / "scenes_listeners.dev.json").write_text(json.dumps({"S06001": ["L0001", "L0002"]}))
    shutil.copy(good, enhanced / "S06001_L0002_enhanced.wav")
    status = cli_main(
        ["evaluate", "-c", str(BASELINE), f"path.root={root}", f"path.exp_folder={exp}"]
    )
    assert status == 0
    assert ErrorLog.read(exp / "errors.csv") == []
    rows = read_rows(exp / "scores.csv")
    assert [(r["scene"], r["listener"]) for r in rows] == PAIRS[:2]
    for row, ref in zip(rows, reference["rows"][:2], strict=True):
        assert float(row["combined"]) == pytest.approx(float(ref["combined"]), rel=1e-9)


def test_amplify_rerun_after_lost_output_and_kill_keeps_one_line_per_id(tree, tmp_path):
    exp = new_exp(tree, tmp_path)
    args = ["amplify", "-c", str(BASELINE), f"path.root={tree['root']}", f"path.exp_folder={exp}"]
    assert cli_main(args) == 0
    manifest = exp / "amplify_manifest.jsonl"
    lost = exp / "amplified_signals" / "S06002_L0003_HA-output.wav"
    lost.unlink()  # output lost: redone, but its id is already in the manifest
    with open(manifest, "ab") as handle:
        handle.write(b'{"id": "S06003_L0001", "sch')  # torn line of a killed run
    assert cli_main(args) == 0
    assert lost.is_file()
    ids = [json.loads(line)["id"] for line in manifest.read_text().splitlines()]
    assert ids == [f"{s}_{lis}" for s, lis in PAIRS]


def test_cli_asks_torch_for_huge_pages_before_importing_it():
    """`clarity-se` sets THP_MEM_ALLOC_ENABLE=1 (torch reads it once, at its first allocation),
    unless the user set it; the spawned evaluate workers inherit it. Importing the module
    changes nothing."""
    code = (
        "import os, sys; import clarity_se.cli; "
        "assert 'THP_MEM_ALLOC_ENABLE' not in os.environ, 'set at import'; "
        "clarity_se.cli.main([]); "
        "assert 'torch' not in sys.modules, 'the CLI must not import torch for --help'; "
        "print('THP=' + os.environ['THP_MEM_ALLOC_ENABLE'])"
    )
    env = {k: v for k, v in os.environ.items() if k != "THP_MEM_ALLOC_ENABLE"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith("THP=1")
    env["THP_MEM_ALLOC_ENABLE"] = "0"
    code = code.replace("assert 'THP_MEM_ALLOC_ENABLE' not in os.environ, 'set at import'; ", "")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.stdout.strip().endswith("THP=0")


def test_scene_jobs_group_a_scenes_listeners_up_to_the_batch_size():
    from clarity_se.stages.evaluate import scene_jobs

    pairs = [(f"S{s:05d}", f"L{k}") for s in range(3) for k in range(3)]
    jobs = scene_jobs(pairs, 2, {})
    assert [(j.scene, j.listeners) for j in jobs] == [
        ("S00000", ["L0", "L1"]), ("S00000", ["L2"]), ("S00001", ["L0", "L1"]),
        ("S00001", ["L2"]), ("S00002", ["L0", "L1"]), ("S00002", ["L2"])]
    assert [len(j.listeners) for j in scene_jobs(pairs, 3, {})] == [3, 3, 3]


def test_resolve_workers():
    from clarity_se.execution import resolve_workers

    assert resolve_workers(3, "cpu") == 3
    assert resolve_workers(0, "cuda") == 1
    auto = resolve_workers(0, "cpu")
    assert 1 <= auto <= len(os.sched_getaffinity(0))
    with pytest.raises(ValueError, match="evaluate.workers"):
        resolve_workers(-1, "cpu")


def test_dask_local_cluster_equals_local_scheduler(tree, reference, tmp_path):
    """evaluate.scheduler=dask on a real LocalCluster of 2 worker processes: every pair once,
    the same scores as the one-process run."""
    exp = new_exp(tree, tmp_path, "dask")
    cfg = config(tree["root"], exp, "evaluate.scheduler=dask", "dask.n_workers=2")
    assert run_evaluate(cfg)[:2] == (len(PAIRS), 0)
    assert_same_scores(exp / "scores.csv", reference)
    ids = [json.loads(line)["id"] for line in (exp / "scores.jsonl").read_text().splitlines()]
    assert sorted(ids) == sorted(f"{s}_{lis}" for s, lis in PAIRS)
    with pytest.raises(ValueError, match="dask.cluster"):
        run_evaluate(config(tree["root"], exp, "evaluate.scheduler=dask", "dask.cluster=lsf"))
    with pytest.raises(ValueError, match="evaluate.scheduler"):
        run_evaluate(config(tree["root"], exp, "evaluate.scheduler=ray"))


def test_dask_client_killed_then_resumed(tree, reference, tmp_path):
    """kill -9 of the whole command (client, scheduler and its workers, as a cluster job is
    killed) after the first journaled pair; the rerun keeps it and scores the rest once."""
    exp = new_exp(tree, tmp_path, "dask_killed")
    journal = exp / "scores.jsonl"
    cmd = [sys.executable, "-m", "clarity_se.cli", "evaluate", "-c", str(BASELINE),
           f"path.root={tree['root']}", f"path.exp_folder={exp}", "evaluate.scheduler=dask",
           "dask.n_workers=2"]  # fmt: skip
    log = open(tmp_path / "dask_killed.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 240
        while not (journal.is_file() and journal.read_bytes().count(b"\n") >= 1):
            assert proc.poll() is None, (tmp_path / "dask_killed.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "no pair journaled in 240 s"
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
        log.close()
    done_before = journal.read_text().count("\n")
    assert 1 <= done_before < len(PAIRS), "kill came too late to test a resume"
    cfg = config(tree["root"], exp, "evaluate.scheduler=dask", "dask.n_workers=2")
    n_scored, n_failed, summary = run_evaluate(cfg)
    assert (n_scored, n_failed) == (len(PAIRS), 0)
    assert f"{done_before} reused" in summary
    assert_same_scores(exp / "scores.csv", reference)
    ids = [json.loads(line)["id"] for line in journal.read_text().splitlines()]
    assert sorted(ids) == sorted(f"{s}_{lis}" for s, lis in PAIRS)


def _die_once(job):
    """A job whose first attempt kills its worker process (as an OOM kill would)."""
    marker, value = job
    if not os.path.exists(marker):
        open(marker, "w").close()
        os._exit(1)
    return value * value


def test_dask_executor_reschedules_the_job_of_a_dead_worker(tmp_path):
    from clarity_se.execution import DaskExecutor

    executor = DaskExecutor({"cluster": "local", "n_workers": 2, "retries": 0})
    jobs = [(str(tmp_path / "died"), 3), (str(tmp_path / "other"), 4)]
    (tmp_path / "other").touch()  # only the first job kills its worker, once
    results = dict(executor.map_unordered(_die_once, jobs))
    assert results == {jobs[0]: 9, jobs[1]: 16}


def test_slurm_and_pbs_job_scripts_carry_the_config():
    """No batch system here: check what each job would run (nothing is submitted)."""
    from clarity_se.execution import jobqueue_cluster

    opts = {"cluster": "slurm", "queue": "cpu", "cores": 2, "memory": "8GB",
            "walltime": "02:00:00", "job_extra_directives": ["--account=abc"]}  # fmt: skip
    cluster = jobqueue_cluster(opts)
    try:
        script = cluster.job_script()
    finally:
        cluster.close()
    expected = ("#SBATCH -p cpu", "#SBATCH --cpus-per-task=2", "#SBATCH -t 02:00:00",
                "#SBATCH --account=abc", "--nthreads 2", "MALLOC_TRIM_THRESHOLD_=None")
    for line in expected:
        assert line in script, script
    cluster = jobqueue_cluster({**opts, "cluster": "pbs"})
    try:
        assert "#PBS -q cpu" in cluster.job_script()
    finally:
        cluster.close()


def test_dask_enhance_and_amplify_equal_local(tree, tmp_path):
    """enhance and amplify on a 2-worker LocalCluster write the same files as in-process; the
    driver journals every pair once."""
    root = tree["root"]
    outs = {}
    for scheduler in ("local", "dask"):
        exp = tmp_path / scheduler
        extra = ["evaluate.scheduler=dask", "dask.n_workers=2"] if scheduler == "dask" else []
        common = ["-c", str(BASELINE), f"path.root={root}", f"path.exp_folder={exp}", *extra]
        assert cli_main(["enhance", *common]) == 0
        assert cli_main(["amplify", *common]) == 0
        wavs = sorted(exp.glob("*_signals/*.wav"))
        outs[scheduler] = {p.relative_to(exp).as_posix(): sf.read(p)[0] for p in wavs}
        for journal in ("enhance_manifest.jsonl", "amplify_manifest.jsonl"):
            ids = [json.loads(x)["id"] for x in (exp / journal).read_text().splitlines()]
            assert sorted(ids) == sorted(f"{s}_{lis}" for s, lis in PAIRS)
    assert len(outs["local"]) == 2 * len(PAIRS) and outs["dask"].keys() == outs["local"].keys()
    for name, local in outs["local"].items():
        if name.startswith("enhanced"):  # the same samples
            np.testing.assert_array_equal(outs["dask"][name], local)
        else:  # NAL-R FIR with another torch thread count: float32 rounding of the WAV at most
            np.testing.assert_allclose(outs["dask"][name], local, rtol=0, atol=2**-23)
