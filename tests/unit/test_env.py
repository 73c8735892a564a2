"""dlcourse.env: FAST mode, seeding, device choice, the environment report."""

from __future__ import annotations

import random
import re
import subprocess
import sys

import numpy as np
import pytest

from dlcourse.env import EnvReport, fast_default, pick_device, report, seed_everything
from dlcourse.errors import DlcourseError


@pytest.mark.parametrize("value, expected", [("1", True), ("true", True), ("YES", True), ("0", False), ("", False)])
def test_fast_default_reads_the_environment(monkeypatch: pytest.MonkeyPatch, value: str, expected: bool) -> None:
    monkeypatch.setenv("DLCOURSE_FAST", value)
    assert fast_default() is expected


def test_seed_everything_repeats_python_numpy_and_torch() -> None:
    torch = pytest.importorskip("torch")
    draws = []
    for _ in range(2):
        seeded = seed_everything(123)
        draws.append((random.random(), np.random.rand(), torch.rand(1).item()))
    assert draws[0] == draws[1]
    assert "torch" in seeded and "numpy" in seeded
    seed_everything(124)
    assert torch.rand(1).item() != draws[0][2]


@pytest.mark.parametrize("seed", [-1, 2**32, 1.5, "0", True])
def test_bad_seed_is_a_sentence(seed) -> None:
    with pytest.raises(DlcourseError, match="seed must be a whole number"):
        seed_everything(seed)


def test_seed_everything_seeds_tensorflow_when_imported() -> None:
    code = ("import tensorflow as tf; from dlcourse.env import seed_everything; "
            "s = seed_everything(7); a = float(tf.random.uniform(())); seed_everything(7); "
            "assert a == float(tf.random.uniform(())); print(s)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "tensorflow/keras" in out.stdout


def test_seed_everything_does_not_import_frameworks() -> None:
    code = "import sys; from dlcourse.env import seed_everything; print(seed_everything(0)); print('torch' in sys.modules, 'tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.split("\n")[:2] == ["['random', 'numpy']", "False False"]


def test_pick_device_on_this_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    torch = pytest.importorskip("torch")
    monkeypatch.delenv("DLCOURSE_DEVICE", raising=False)
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert pick_device("torch").type in (expected, "mps")
    monkeypatch.setenv("DLCOURSE_DEVICE", "cpu")
    assert pick_device("torch") == torch.device("cpu")
    assert pick_device("tensorflow") == "/CPU:0"
    with pytest.raises(DlcourseError, match="'torch' or 'tensorflow'"):
        pick_device("jax")


def test_report_without_frameworks(shared_data, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DLCOURSE_DATA", str(shared_data))
    rep = report(frameworks=False).as_dict()
    assert rep["CPU cores"].isdigit() and rep["dlcourse"]
    for name in ("mnist", "fashion-mnist", "tinyshakespeare"):
        assert rep[f"data: {name}"].startswith("verified"), rep[f"data: {name}"]


def test_report_names_a_missing_dataset(isolated_data, monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("DLCOURSE_DATA", str(tmp_path))
    rep = report(frameworks=False).as_dict()
    assert rep["data: mnist"].startswith("not ready:") and "was not found" in rep["data: mnist"]


def test_report_renders_text_and_html() -> None:
    rep = EnvReport()
    rep.add("torch", "2.13.0")
    rep.add("a<b", 1)
    assert str(rep) == "torch  2.13.0\na<b    1"
    assert "a&lt;b" in rep._repr_html_()


def test_kernel_usage_is_one_sentence_with_seconds_and_mebibytes() -> None:
    from dlcourse.env import kernel_usage

    sentence = kernel_usage()
    assert sentence.startswith("This kernel has run for ") and sentence.endswith(" MiB.")
    assert re.search(r"peaked at [\d,]+ MiB", sentence)


@pytest.mark.parametrize("value, expected", [("1", "True"), ("0", "False")])
def test_tensorflow_onednn_follows_the_variable_read_at_import(value: str, expected: str) -> None:
    import os

    from dlcourse.env import ONEDNN_VARIABLE

    code = "import tensorflow\nfrom dlcourse.env import tensorflow_onednn\nprint(tensorflow_onednn())"
    env = {**os.environ, ONEDNN_VARIABLE: value, "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip().splitlines()[-1] == expected


def test_the_keras_cnn_module_turns_onednn_on_unless_told_otherwise() -> None:
    import os

    from dlcourse.env import ONEDNN_VARIABLE

    code = "import dlcourse.cnn_keras\nfrom dlcourse.env import tensorflow_onednn\nprint(tensorflow_onednn())"
    env = {k: v for k, v in os.environ.items() if k != ONEDNN_VARIABLE} | {"TF_CPP_MIN_LOG_LEVEL": "3"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip().splitlines()[-1] == "True"
