"""Quality against compute: joining the two enhancer benchmarks' files and the plot."""

from __future__ import annotations

import json

import numpy as np
import pytest

from clarity_se.report.leaderboard import (
    figure_quality_vs_compute,
    leaderboard,
    plot_quality_vs_compute,
)


def _quality(path, systems):
    groups = {}
    for name, gain in systems.items():
        block = {"combined_improvement": {"mean": gain, "ci_low": gain - 0.01,
                                          "ci_high": gain + 0.01, "n": 30},
                 "si_sdr_target_CH1_improvement_db": {"mean": 10 * gain},
                 "combined_worst_pair_delta": gain - 0.02, "pairs": 30}  # fmt: skip
        groups[name] = {"front": block, "all": block}
    path.write_text(json.dumps({"vs_passthrough": groups}))
    return path


def _cost(path, systems):
    rows = [{"system": name, "parameters": 10, "macs_per_s": macs, "latency_ms": 4.3,
             "pytorch": {"rtf_whole": 0.1}, **({"onnxruntime": {"rtf": 0.03}} if onnx else {})}
            for name, (macs, onnx) in systems.items()]  # fmt: skip
    path.write_text(json.dumps({"results": rows}))
    return path


def test_join_order_and_plot(tmp_path):
    q1 = _quality(tmp_path / "q1.json", {"a": 0.01, "b": -0.005, "c": 0.0})
    q2 = _quality(tmp_path / "q2.json", {"a": 0.02})  # the later file wins
    cost = _cost(tmp_path / "c.json", {"a": (2e9, False), "b": (3e8, True),
                                       "passthrough": (0, False)})
    board = leaderboard([q1, q2], [cost])
    assert board["system"].tolist() == ["b", "a"]  # by MACs; c has no cost row
    a = board.set_index("system").loc["a"]
    assert a["combined_gain"] == 0.02 and a["quality_file"] == str(q2)
    assert np.isnan(a["rtf_onnx"]) and board.set_index("system").loc["b", "rtf_onnx"] == 0.03
    png = plot_quality_vs_compute(board, tmp_path / "out" / "qc.png")
    assert png.stat().st_size > 5000


def test_oracles_are_ceilings_without_cost(tmp_path):
    """oracle/... systems of the quality file stay as rows (cost NaN, after the enhancers) and
    are drawn as horizontal lines at their gain; other systems without cost are left out."""
    q = _quality(tmp_path / "q.json", {"a": 0.01, "oracle/irm": 0.15, "c": 0.0})
    cost = _cost(tmp_path / "c.json", {"a": (2e9, False)})
    board = leaderboard([q], [cost])
    assert board["system"].tolist() == ["a", "oracle/irm"]
    assert np.isnan(board.set_index("system").loc["oracle/irm", "macs_per_s"])
    fig = figure_quality_vs_compute(board)
    lines = {line.get_label(): line.get_ydata()[0] for line in fig.axes[0].get_lines()}
    assert lines["oracle/irm (ceiling)"] == 0.15 and lines["pass-through"] == 0.0


def test_errors_name_the_file(tmp_path):
    cost = _cost(tmp_path / "c.json", {"a": (1e9, False)})
    with pytest.raises(ValueError, match="nope.json: file not found"):
        leaderboard([tmp_path / "nope.json"], [cost])
    with pytest.raises(ValueError, match="c.json: no 'vs_passthrough'"):
        leaderboard([cost], [cost])
    with pytest.raises(ValueError, match="group"):
        leaderboard([], [cost], group="left")
    with pytest.raises(ValueError, match="no system"):
        plot_quality_vs_compute(leaderboard([], [cost]), tmp_path / "x.png")
