"""``clarity-se aec`` and ``clarity-se aec-evaluate`` on tiny rendered and real-layout clips."""

from __future__ import annotations

import csv
import json
import os
import shutil

import numpy as np
import pytest
import soundfile as sf

from clarity_se.aec.config import load_aec_config
from clarity_se.cli import main as cli_main
from clarity_se.data.render.echo import EchoRenderOptions, build_aec_dataset
from clarity_se.report.aec import build_aec_report, read_aec_scores
from tests._aec_tree import make_data_root, speech_like

RECIPES = ("nlms", "pbfdaf", "webrtc_aec3", "deep_adaptive")


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    root = make_data_root(tmp_path_factory.mktemp("rec"))
    out = tmp_path_factory.mktemp("aec") / "synthetic"
    options = EchoRenderOptions(clip_s=0.8, seed=2, p_path_change=0.5, talk_mix=(1, 1, 1))
    build_aec_dataset(out, n_clips=6, options=options, data_root=root)
    return out


def _rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.parametrize("system", RECIPES)
def test_recipe_configs_load(system):
    cfg = load_aec_config(f"recipes/aec/{system}/config.yaml", ["path.root=/data"])
    assert cfg.aec.name == system and cfg.sample_rate == 16000
    assert cfg.aec.res == "" and cfg.aec.res_alpha == 0.5


def test_config_errors(tmp_path, synthetic):
    with pytest.raises(ValueError, match="path.root is required"):
        load_aec_config("recipes/aec/pbfdaf/config.yaml")
    with pytest.raises(ValueError, match="aec.nope"):
        load_aec_config(None, ["path.root=/x", "aec.nope=1"])
    with pytest.raises(ValueError, match="sample_rate must be 16000"):
        load_aec_config(None, ["path.root=/x", "sample_rate=48000"])
    exp = tmp_path / "exp"
    assert cli_main(["aec", f"path.root={synthetic}", f"path.exp_folder={exp}",
                     "aec.name=nope"]) == 2
    assert cli_main(["aec", f"path.root={synthetic}", f"path.exp_folder={exp}",
                     "aec.res=resunet"]) == 2
    assert cli_main(["aec", f"path.root={tmp_path}", f"path.exp_folder={exp}"]) == 2


def test_aec_writes_resumes_and_logs_errors(synthetic, tmp_path):
    exp = tmp_path / "exp"
    args = ["aec", "-c", "recipes/aec/pbfdaf/config.yaml", f"path.root={synthetic}",
            f"path.exp_folder={exp}"]
    assert cli_main(args) == 0
    files = sorted((exp / "enhanced_signals").glob("*.wav"))
    assert [f.name for f in files] == sorted(
        f"nearend_mic_fileid_{i}_enhanced.wav" for i in range(6))
    for f in files:
        info = sf.info(str(f))
        mic = synthetic / "nearend_mic_signal" / f.name.replace("_enhanced", "")
        assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "FLOAT")
        assert info.frames == sf.info(str(mic)).frames
    records = (exp / "aec_manifest.jsonl").read_text().splitlines()
    assert len(records) == 6
    # resume: finished clips are skipped, a deleted one is redone
    stamp = os.stat(files[1]).st_mtime_ns
    files[0].unlink()
    assert cli_main(args) == 0
    assert files[0].is_file() and os.stat(files[1]).st_mtime_ns == stamp
    # the journal keeps one record per clip (the redone clip's newer record wins)
    ids = [json.loads(x)["id"] for x in (exp / "aec_manifest.jsonl").read_text().splitlines()]
    assert sorted(set(ids)) == sorted(f"fileid_{i}" for i in range(6))
    # a bad clip: logged, the rest written, exit status 1
    bad = tmp_path / "bad"
    shutil.copytree(synthetic, bad)
    sf.write(bad / "nearend_mic_signal" / "nearend_mic_fileid_3.wav", np.zeros(100), 8000)
    exp2 = tmp_path / "exp2"
    assert cli_main(["aec", f"path.root={bad}", f"path.exp_folder={exp2}"]) == 1
    (row,) = _rows(exp2 / "errors.csv")
    assert row["stage"] == "aec" and row["clip"] == "fileid_3"
    assert "sample_rate is 8000" in row["error"]
    assert len(list((exp2 / "enhanced_signals").glob("*.wav"))) == 5


def test_aec_evaluate_scores_side_by_side(synthetic, tmp_path):
    exp = tmp_path / "exp"
    common = [f"path.root={synthetic}", f"path.exp_folder={exp}", "aec.name=nlms"]
    assert cli_main(["aec", *common]) == 0
    assert cli_main(["aec-evaluate", *common]) == 0
    rows = _rows(exp / "aec_scores.csv")
    assert len(rows) == 6 and {r["system"] for r in rows} == {"nlms"}
    for r in rows:
        for prefix in ("", "webrtc_aec3_", "input_"):
            assert 1.0 <= float(r[prefix + "aecmos_echo"]) <= 5.0
            assert 1.0 <= float(r[prefix + "aecmos_deg"]) <= 5.0
        if r["talk_type"] == "st":
            assert float(r["input_erle_db"]) == 0.0 and r["erle_db"] and not r["pesq_wb"]
        if r["talk_type"] == "dt":
            assert not r["erle_db"] and r["si_sdr_db"] and r["webrtc_aec3_si_sdr_db"]
            assert float(r["input_resl_db"]) == pytest.approx(0.0, abs=1e-3)  # the mic itself
            assert float(r["resl_db"]) > 0.0 and float(r["dsml_db"]) > 0.0
    assert len(list((exp / "reference_signals" / "webrtc_aec3").glob("*.wav"))) == 6
    changed = [r["id"] for r in rows if r["is_echo_path_change"] == "1"]
    time_rows = _rows(exp / "aec_erle_time.csv")
    assert {r["id"] for r in time_rows} == set(changed)
    assert {r["system"] for r in time_rows} <= {"nlms", "webrtc_aec3", "input"}
    # the report page
    html = build_aec_report([exp / "aec_scores.csv"], tmp_path / "report")
    text = html.read_text()
    for needle in ("far-end single talk", "double talk", "nlms", "webrtc_aec3", "input",
                   "AECMOS echo", "aec_st.png"):
        assert needle in text
    assert (tmp_path / "report" / "aec_dt.png").stat().st_size > 1000
    if changed:
        assert "aec_erle_path_change.png" in text
    # `clarity-se report` on the experiment folder writes the same page
    assert cli_main(["report", str(exp), "--out", str(tmp_path / "cli_report")]) == 0
    assert (tmp_path / "cli_report" / "aec_report.html").read_text() == text
    long = read_aec_scores([exp / "aec_scores.csv"])
    assert set(long["system"]) == {"nlms", "webrtc_aec3", "input"}
    with pytest.raises(ValueError, match="file not found"):
        read_aec_scores([tmp_path / "nope.csv"])
    # resume: a second run rescored nothing
    lines = (exp / "aec_scores.jsonl").read_text().splitlines()
    assert cli_main(["aec-evaluate", *common]) == 0
    assert (exp / "aec_scores.jsonl").read_text().splitlines() == lines
    # a missing output is an error row
    (exp / "enhanced_signals" / "nearend_mic_fileid_0_enhanced.wav").unlink()
    (exp / "aec_scores.jsonl").unlink()
    assert cli_main(["aec-evaluate", *common, "evaluate.aecmos=false",
                     "evaluate.pesq=false"]) == 1
    assert [r["clip"] for r in _rows(exp / "errors.csv")] == ["fileid_0"]
    assert len(_rows(exp / "aec_scores.csv")) == 5


def test_oracle_canceller_is_scored_on_request(synthetic, tmp_path):
    exp = tmp_path / "exp"
    common = [f"path.root={synthetic}", f"path.exp_folder={exp}", "aec.name=nlms"]
    assert cli_main(["aec", *common]) == 0
    quick = ["evaluate.aecmos=false", 'evaluate.reference_system=""']
    assert cli_main(["aec-evaluate", *common, *quick]) == 0
    assert not any(k.startswith("oracle_") for k in _rows(exp / "aec_scores.csv")[0])
    # a changed option rescoring every clip, the oracle (mic minus the true echo) beside
    assert cli_main(["aec-evaluate", *common, *quick, "evaluate.oracle=true"]) == 0
    rows = _rows(exp / "aec_scores.csv")
    assert len(rows) == 6
    for r in rows:
        if r["talk_type"] == "dt":  # echo gone, near end kept: better than the mic and nlms
            assert float(r["oracle_resl_db"]) > float(r["resl_db"])
            assert float(r["oracle_si_sdr_db"]) > max(float(r["si_sdr_db"]),
                                                      float(r["input_si_sdr_db"]))  # fmt: skip
            # the near-end speech alone: noise gone too, nothing distorted (SI-SDR infinite:
            # an empty cell; PESQ-WB at its ceiling)
            assert r["oracle_clean_si_sdr_db"] == ""
            assert float(r["oracle_clean_pesq_wb"]) > max(4.5, float(r["oracle_pesq_wb"]))
        if r["talk_type"] == "st":  # nothing but near-end noise is left: ERLE infinite
            # (an empty cell) without noise; no near-end speech: no clean oracle
            assert r["oracle_erle_db"] == "" or float(r["oracle_erle_db"]) > float(r["erle_db"])
            assert r["oracle_clean_pesq_wb"] == r["oracle_clean_aecmos_deg"] == ""
    long = read_aec_scores([exp / "aec_scores.csv"])
    assert {"oracle", "oracle_clean"} <= set(long["system"])
    # DSML/RESL over the double-talk frames only: every clip rescored, the dt values change
    whole = {r["id"]: (r["dsml_db"], r["resl_db"]) for r in rows if r["talk_type"] == "dt"}
    assert whole
    assert cli_main(["aec-evaluate", *common, *quick, "evaluate.dsml_double_talk=true"]) == 0
    masked = {r["id"]: (r["dsml_db"], r["resl_db"]) for r in _rows(exp / "aec_scores.csv")
              if r["talk_type"] == "dt"}  # fmt: skip
    assert masked.keys() == whole.keys() and masked != whole


def test_real_layout_names_and_scores(tmp_path):
    root = tmp_path / "real" / "clean"
    rng = np.random.default_rng(0)
    far = np.concatenate([speech_like(1, 1.2, 120)]) * 0.5
    echo = 0.3 * np.convolve(far, rng.standard_normal(64) * np.exp(-np.arange(64) / 8))[:far.size]
    for stem, mic, lpb in (("a_farend_singletalk", echo, far),
                           ("a_doubletalk", echo + 0.3 * speech_like(2, 1.2, 200), far),
                           ("a_nearend_singletalk", 0.3 * speech_like(3, 1.2, 180), None)):
        root.mkdir(parents=True, exist_ok=True)
        sf.write(root / f"{stem}_mic.wav", mic, 16000, subtype="PCM_16")
        if lpb is not None:
            sf.write(root / f"{stem}_lpb.wav", lpb, 16000, subtype="PCM_16")
    exp = tmp_path / "exp"
    common = [f"path.root={tmp_path / 'real'}", f"path.exp_folder={exp}", "aec.name=pbfdaf"]
    assert cli_main(["aec", *common]) == 0
    names = sorted(p.relative_to(exp / "enhanced_signals").as_posix()
                   for p in (exp / "enhanced_signals").rglob("*.wav"))
    assert names == ["clean/a_doubletalk_enhanced.wav", "clean/a_farend_singletalk_enhanced.wav",
                     "clean/a_nearend_singletalk_enhanced.wav"]
    assert cli_main(["aec-evaluate", *common, "evaluate.pesq=false"]) == 0
    rows = {r["id"]: r for r in _rows(exp / "aec_scores.csv")}
    assert rows["clean/a_farend_singletalk"]["erle_db"]
    assert not rows["clean/a_doubletalk"]["si_sdr_db"]  # no near-end reference in real data


def test_aec_fingerprints_lock_and_force(synthetic, tmp_path, capsys):
    from clarity_se.data.experiment import Experiment

    exp = tmp_path / "exp"
    common = [f"path.root={synthetic}", f"path.exp_folder={exp}", "evaluate.aecmos=false",
              "evaluate.pesq=false", "evaluate.reference_system="]
    assert cli_main(["aec", *common, "aec.name=pbfdaf"]) == 0
    # another system in the same folder: every clip is stale and recomputed
    capsys.readouterr()
    assert cli_main(["aec", *common, "aec.name=nlms"]) == 0
    assert "6 recomputed" in capsys.readouterr().out
    journal = [json.loads(x) for x in (exp / "aec_manifest.jsonl").read_text().splitlines()]
    assert {r["system"] for r in journal} == {"nlms"} and len(journal) == 6
    # scores: a replaced output is rescored, the others reused
    assert cli_main(["aec-evaluate", *common, "aec.name=nlms"]) == 0
    before = {r["id"]: r for r in _rows(exp / "aec_scores.csv")}
    out = exp / "enhanced_signals" / "nearend_mic_fileid_2_enhanced.wav"
    data, sr = sf.read(out)
    sf.write(out, 0.5 * data, sr, subtype="FLOAT")
    capsys.readouterr()
    assert cli_main(["aec-evaluate", *common, "aec.name=nlms"]) == 0
    assert "5 reused, 1 recomputed" in capsys.readouterr().out
    after = {r["id"]: r for r in _rows(exp / "aec_scores.csv")}
    assert after["fileid_2"]["aecmos_echo"] == before["fileid_2"]["aecmos_echo"]  # disabled
    for clip_id in set(before) - {"fileid_2"}:
        assert after[clip_id] == before[clip_id]
    # --force recomputes everything
    capsys.readouterr()
    assert cli_main(["aec", "--force", *common, "aec.name=nlms"]) == 0
    assert "6 recomputed" in capsys.readouterr().out
    # one writer per folder: a second run exits 2 naming the folder
    with Experiment(exp).lock():
        assert cli_main(["aec", *common, "aec.name=nlms"]) == 2
        assert cli_main(["aec-evaluate", *common, "aec.name=nlms"]) == 2
    assert str(exp) in capsys.readouterr().err


def test_res_alpha_sweep_is_kept_apart_and_drawn_as_a_tradeoff(synthetic, tmp_path):
    """Runs of one canceller + RES U-Net at two alphas carry distinct system names through the
    journals and ``aec_scores.csv``; the report joins them into the DSML/RESL curve."""
    from clarity_se.aec.config import system_label
    from clarity_se.report.aec import parse_label

    assert parse_label("pbfdaf+res_unet@0.25") == ("pbfdaf+res_unet", 0.25)
    assert parse_label("webrtc_aec3") == ("webrtc_aec3", None)
    assert parse_label("odd@name") == ("odd@name", None)
    files, resl = [], {}
    for alpha in (0, 1):
        exp = tmp_path / f"a{alpha}"
        common = [f"path.root={synthetic}", f"path.exp_folder={exp}", "aec.name=nlms",
                  "aec.res=unet", f"aec.res_alpha={alpha}", "evaluate.aecmos=false",
                  "evaluate.pesq=false"]
        cfg = load_aec_config(None, common)
        assert system_label(cfg.aec) == f"nlms+res_unet@{alpha}"
        assert cli_main(["aec", *common]) == 0
        assert cli_main(["aec-evaluate", *common]) == 0
        rows = _rows(exp / "aec_scores.csv")
        assert {r["system"] for r in rows} == {f"nlms+res_unet@{alpha}"}
        resl[alpha] = np.mean([float(r["resl_db"]) for r in rows if r["talk_type"] == "dt"])
        files.append(exp / "aec_scores.csv")
    assert resl[1] > resl[0]  # more suppression at alpha 1
    html = build_aec_report(files, tmp_path / "report").read_text()
    assert "aec_tradeoff.png" in html and "nlms+res_unet@0" in html and "nlms+res_unet@1" in html
    assert (tmp_path / "report" / "aec_tradeoff.png").stat().st_size > 1000
    long = read_aec_scores(files)
    assert set(long["system"]) == {"nlms+res_unet@0", "nlms+res_unet@1", "webrtc_aec3", "input"}
    assert {"dsml_db", "resl_db"} <= set(long["metric"])


def test_sweep_recipe_script(synthetic, tmp_path):
    """``recipes/aec/res_unet/sweep.sh``: the canceller alone beside WebRTC AEC3, then each
    alpha, then the report with the trade-off plot; a rerun recomputes nothing."""
    import os
    import subprocess
    import sys

    env = dict(os.environ, CLARITY_SE=f"{sys.executable} -m clarity_se.cli")
    cmd = ["bash", "recipes/aec/res_unet/sweep.sh", str(synthetic), str(tmp_path / "sweep"),
           "nlms", "0", "1"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    report = tmp_path / "sweep" / "report"
    assert (report / "aec_tradeoff.png").is_file()
    html = (report / "aec_report.html").read_text()
    for name in ("nlms+res_unet@0", "nlms+res_unet@1", "webrtc_aec3"):
        assert name in html
    again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0
    summaries = [line for line in (again.stdout + again.stderr).splitlines()
                 if "clips done (" in line or "clips scored (" in line]
    assert len(summaries) == 6 and all("(6 reused, 0 recomputed" in line for line in summaries)
    # RES_OPTIONS reaches the runs with the suppressor (not the canceller alone, reused above)
    bad = subprocess.run(cmd, env=dict(env, RES_OPTIONS="aec.no_such_option=1"),
                         capture_output=True, text=True, timeout=600)
    assert bad.returncode != 0 and "no_such_option" in bad.stdout + bad.stderr
    # AEC_OPTIONS reaches every run: the canceller alone fails first, nothing is scored
    bad = subprocess.run(cmd, env=dict(env, AEC_OPTIONS="aec.no_such_option=1"),
                         capture_output=True, text=True, timeout=600)
    assert bad.returncode != 0 and "no_such_option" in bad.stdout + bad.stderr
    assert "clips done (" not in bad.stdout + bad.stderr
