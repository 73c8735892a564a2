"""benchmarks/gpt.py runs end to end (a seconds-long --fast smoke run, not a timing)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.lab("14")

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "gpt.py"


def test_gpt_benchmark_smoke_run_prints_the_model_against_the_baselines() -> None:
    out = subprocess.run([sys.executable, str(SCRIPT), "--fast", "--threads", "1"], capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "training tokens/s" in out.stdout and "CPU seconds per step" in out.stdout
    models = [line.split()[0] for line in out.stdout.split("held-out nats per character")[1].strip().splitlines()[2:]]
    assert models == ["unigram", "bigram", "5-gram", "character"]
