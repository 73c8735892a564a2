"""The benchmark scripts run end to end (a seconds-long FAST smoke run, not a timing)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def _smoke_run(script: str, timeout: int = 600) -> str:
    """stdout of ``benchmarks/<script> --fast``, which must succeed."""
    out = subprocess.run([sys.executable, str(BENCHMARKS / script), "--fast"], capture_output=True, text=True,
                         timeout=timeout)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def test_mnist_benchmark_smoke_run_prints_its_table() -> None:
    out = subprocess.run([sys.executable, str(BENCHMARKS / "mnist.py"), "--fast"],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.strip().splitlines()
    assert lines[1].split()[:3] == ["recipe", "framework", "device"]
    rows = lines[3:]
    assert [row.split()[0:2] for row in rows] == [["lab", "07"], ["lab", "08"], ["keras.io", "convnet"]]
    assert "206,970" in rows[0] and "206,970" in rows[1]  # the same network in both frameworks


def test_mnist_benchmark_rejects_zero_seeds() -> None:
    out = subprocess.run([sys.executable, str(BENCHMARKS / "mnist.py"), "--seeds", "0"], capture_output=True, text=True)
    assert out.returncode == 2 and "--seeds must be at least 1" in out.stderr


def test_several_seeds_give_mean_and_spread() -> None:
    sys.path.insert(0, str(BENCHMARKS))
    try:
        from mnist import summary_row
    finally:
        sys.path.remove(str(BENCHMARKS))
    from dlcourse.training import TrainResult

    runs = [TrainResult("PyTorch 2.13", "lab 08 CNN", 206970, 1, seconds, accuracy, reached)
            for seconds, accuracy, reached in [(10.0, 0.9900, 8.0), (12.0, 0.9910, None)]]
    row = summary_row(runs)
    assert row[5:] == ["2", "11.0 ± 1.4", "0.9905 ± 0.0007", "8.0 (1/2 runs)"]


def test_mlm_benchmark_smoke_run_prints_baselines_and_the_model() -> None:
    out = subprocess.run([sys.executable, str(BENCHMARKS / "mlm.py"), "--fast", "--threads", "1"],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "training tokens/s" in out.stdout
    models = [line.split()[0] for line in out.stdout.split("held-out loss")[1].strip().splitlines()[2:]]
    assert models == ["unigram", "bigram", "tiny"]


def test_attention_benchmark_smoke_run_prints_forward_and_backward_tables() -> None:
    text = _smoke_run("attention.py", timeout=300)
    assert "causal" in text and "forward (best of 1 rounds)" in text and "forward + backward" in text
    headers = [line for line in text.splitlines() if line.startswith("T ")]
    assert len(headers) == 2 and headers[0].split()[:3] == ["T", "naive", "ms"]
    rows = [line.split() for line in text.splitlines() if line[:1].isdigit()]
    assert [row[0] for row in rows] == ["32", "64", "32", "64"] and all(row[3].endswith("x") for row in rows)
    bad = subprocess.run([sys.executable, str(BENCHMARKS / "attention.py"), "--rounds", "0"], capture_output=True, text=True)
    assert bad.returncode == 2 and "at least 1" in bad.stderr


def test_scaling_benchmark_smoke_run_prints_roofline_throughput_and_ddp() -> None:
    text = _smoke_run("scaling.py")
    assert "roofline" in text and "balance FLOP/byte" in text and "training throughput" in text
    ddp_rows = text.split("DistributedDataParallel")[1].strip().splitlines()[3:]
    assert [row.split()[0] for row in ddp_rows] == ["1", "2"]


def test_grading_benchmark_smoke_run_grades_a_solved_and_a_looping_notebook() -> None:
    from dlcourse.sandbox import sandbox_problem

    text = _smoke_run("grading.py", timeout=300)
    assert "dlcourse grade on lab 00" in text and "loop's extra s" in text
    assert ("bwrap" if not sandbox_problem() else "none") in text, "the sandbox column says how it was graded"
