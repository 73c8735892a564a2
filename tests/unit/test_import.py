"""`import dlcourse` (and its light modules) must not import TensorFlow or PyTorch."""

from __future__ import annotations

import json
import subprocess
import sys

LIGHT = ["dlcourse", "dlcourse.data", "dlcourse.env", "dlcourse.check", "dlcourse.cli", "dlcourse.plot",
         "dlcourse.widgets", "dlcourse.functions", "dlcourse.graphs", "dlcourse.optim", "dlcourse.training",
         "dlcourse.tables", "dlcourse.runner", "dlcourse.mlp", "dlcourse.metrics", "dlcourse.grading",
         "dlcourse.grade_worker", "dlcourse.scaffold",
         *(f"dlcourse.checks.lab{n:02d}" for n in range(13))]


def test_importing_dlcourse_loads_no_framework() -> None:
    code = (f"import importlib, json, sys\nfor m in {LIGHT!r}: importlib.import_module(m)\n"
            "print(json.dumps(sorted(m for m in ('torch', 'tensorflow', 'keras', 'jax', 'papermill', 'matplotlib') if m in sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
