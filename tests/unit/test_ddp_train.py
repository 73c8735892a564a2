"""The DDP script under a real torchrun with 2 CPU processes: the gradient identity, identical ranks,
rank-0 checkpoint and metrics."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from dlcourse.launch import LaunchError, run_command, torchrun_command


@pytest.mark.usefixtures("shared_data")
def test_two_ranks_reproduce_the_full_batch_gradient(tmp_path: Path) -> None:
    out = tmp_path / "ddp"
    command = torchrun_command("dlcourse.ddp_train", ["--out", out, "--train-size", 256, "--test-size", 200,
                                                      "--batch-size", 32, "--check-gradients", "--log-every", 2])
    lines: list[str] = []
    run_command(command, timeout=300, env={"OMP_NUM_THREADS": "1"}, on_line=lines.append)
    metrics = json.loads((out / "metrics.json").read_text())
    running, batch_stats = metrics["gradient_identity"]
    assert metrics["world_size"] == 2 and metrics["backend"] == "gloo" and metrics["effective_batch"] == 64
    assert running["max_abs_diff_allreduced_vs_full"] <= 1e-6  # the identity
    assert running["max_abs_diff_one_shard_vs_full"] > 1e-3  # one shard alone is not the full gradient
    assert batch_stats["max_abs_diff_allreduced_vs_full"] > 1e-4  # BatchNorm couples the samples of a batch
    assert all(r["params_max_diff_between_ranks"] == 0.0 for r in metrics["gradient_identity"])
    assert metrics["params_max_diff_between_ranks"] == 0.0 and metrics["steps"] == 4  # 128 per rank / 32
    assert all(line.startswith("[rank 0]") for line in lines if "[rank" in line)  # only rank 0 logs
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    assert state["epoch"] == 0 and state["world_size"] == 2 and "features.0.weight" in state["model"]
    assert 0.0 <= metrics["test_accuracy"] <= 1.0

    # A 2-epoch run "interrupted" after epoch 1, then resumed from rank 0's checkpoint: only epoch 2 runs.
    first, second = tmp_path / "first", tmp_path / "second"
    common = ["--train-size", 256, "--test-size", 200, "--batch-size", 32, "--epochs", 2]
    env = {"OMP_NUM_THREADS": "1"}
    run_command(torchrun_command("dlcourse.ddp_train", ["--out", first, *common, "--stop-after-epoch", 1]),
                timeout=300, env=env, on_line=None)
    assert json.loads((first / "metrics.json").read_text())["steps"] == 4
    lines.clear()
    run_command(torchrun_command("dlcourse.ddp_train", ["--out", second, *common, "--resume", first / "checkpoint.pt"]),
                timeout=300, env=env, on_line=lines.append)
    assert json.loads((second / "metrics.json").read_text())["steps"] == 4
    assert any("resumed from" in line and "after epoch 1" in line for line in lines)
    assert torch.load(second / "checkpoint.pt", weights_only=True)["epoch"] == 1
    with pytest.raises(LaunchError, match="planned for 2 epoch"):  # a different plan is refused with a sentence
        run_command(torchrun_command("dlcourse.ddp_train", ["--out", tmp_path / "x", *common[:-1], 3,
                                                            "--resume", first / "checkpoint.pt"]),
                    timeout=300, env=env, on_line=None)


@pytest.mark.lab("13")
@pytest.mark.usefixtures("shared_data")
def test_the_script_runs_a_students_train_epochs_and_a_wrong_one_changes_the_run(tmp_path: Path) -> None:
    """--train-fn runs a train_epochs from a file (lab 13 writes the student's there): the reference's own
    loop, copied, gives the same run; one that forgets sampler.set_epoch repeats epoch 1's shuffle in epoch 2."""
    import inspect

    from dlcourse.ddp_train import train_epochs

    source = "from __future__ import annotations\n\nimport torch\n\n\n" + inspect.getsource(train_epochs)
    right, wrong = tmp_path / "right.py", tmp_path / "wrong.py"
    right.write_text(source)
    wrong.write_text(source.replace("        sampler.set_epoch(epoch)\n", ""))
    common = ["--train-size", 256, "--test-size", 100, "--batch-size", 32, "--epochs", 2, "--log-every", 1]
    curves = {}
    for name in ("reference", "right", "wrong"):
        fn = [] if name == "reference" else ["--train-fn", f"{tmp_path / name}.py:train_epochs"]
        run_command(torchrun_command("dlcourse.ddp_train", ["--out", tmp_path / name, *common, *fn]),
                    timeout=300, env={"OMP_NUM_THREADS": "1"}, on_line=None)
        metrics = json.loads((tmp_path / name / "metrics.json").read_text())
        assert metrics["steps"] == 8 and (tmp_path / name / "checkpoint.pt").is_file()
        curves[name] = [loss for _, loss in metrics["loss_curve"]]
    assert curves["right"] == curves["reference"]
    assert curves["wrong"][:4] == curves["reference"][:4] and curves["wrong"][4:] != curves["reference"][4:]
