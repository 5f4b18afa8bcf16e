"""The benchmark runs and reports every figure and every target; whether targets are met is its own output, not a test."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

BENCHMARK = Path(__file__).resolve().parents[1] / "benchmarks" / "gradients.py"


def load_benchmark():
    spec = importlib.util.spec_from_file_location("gradients_benchmark", BENCHMARK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_quick_benchmark_prints_a_row_per_width_and_a_line_per_target(capsys):
    benchmark = load_benchmark()
    status = benchmark.main(["--quick"])
    out = capsys.readouterr().out
    rows = re.findall(r"^\s+(\d+)\s+(\d+)\s+\S+e[-+]\d+ ", out, flags=re.MULTILINE)
    assert [int(width) for width, _ in rows] == [8, 32]
    assert [int(params) for _, params in rows] == [97, 1153], "(1, w, w, 1) has w*w + 4w + 1 parameters"
    assert re.search(r"^fit: [\d.]+ s, bare loop: [\d.]+ s, ratio [\d.]+$", out, flags=re.MULTILINE)
    assert re.search(r"^perceptron on every pattern: loop [\d.]+ s, matrix [\d.]+ s, ratio \d+$", out, flags=re.MULTILINE)
    verdicts = re.findall(r"^(met |MISSED) ", out, flags=re.MULTILINE)
    assert len(verdicts) == 5
    assert status == (0 if "MISSED" not in verdicts else 1)


def test_engine_memory_stays_within_its_target():
    # Memory, unlike time, does not depend on what else the machine is doing.
    row = load_benchmark().gradient_timings(width=16, n_samples=32, repeats=1)
    assert row["parameters"] == 16 * 16 + 4 * 16 + 1
    assert 1 <= row["engine_peak_ratio"] <= 8
