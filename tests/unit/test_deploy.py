"""Lab 12 deployment basics: int8 dynamic quantization, export → reload, checkpoint → bitwise resume."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

from dlcourse import checkpoint, deploy
from dlcourse.cnn_torch import RECIPE, build_cnn, count_params
from dlcourse.data import load_mnist
from dlcourse.errors import DlcourseError

LINEAR_WEIGHTS = 32 * 7 * 7 * 128 + 128 * 10  # the two Linear layers' weight matrices, biases excluded


@pytest.fixture(scope="module")
def mnist():
    d = load_mnist(scale=True, channels="first", n_train=2000, n_test=500)
    return (torch.from_numpy(d.train.x), torch.from_numpy(d.train.y),
            torch.from_numpy(d.test.x), torch.from_numpy(d.test.y))


@pytest.fixture(scope="module")
def trained(mnist):
    """A CNN after 60 steps (about 90% test accuracy): enough for accuracy to mean something."""
    x, y, _, _ = mnist
    state = checkpoint.new_state(0, 60)
    checkpoint.train_steps(state, x, y, 60, 64)
    return state.model.eval()


@pytest.fixture
def random_cnn():
    torch.manual_seed(1)
    return build_cnn().eval()


# ----------------------------------------------------------------------------- quantization

def test_only_linear_layers_are_quantized_and_the_original_is_untouched(random_cnn) -> None:
    random_cnn.train()
    before = {k: v.clone() for k, v in random_cnn.state_dict().items()}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        q = deploy.quantize_linear_int8(random_cnn)
    assert caught == []  # the torch.ao deprecation warnings are silenced, and nothing else is emitted
    kinds = [m._get_name() for m in q.modules()]  # the name print(q) shows for each layer
    assert kinds.count("DynamicQuantizedLinear") == 2 and kinds.count("Conv2d") == 2 and "Linear" not in kinds
    assert all(m.weight.dtype == torch.float32 for m in q.modules() if isinstance(m, nn.Conv2d))
    assert not q.training
    assert random_cnn.training and isinstance(random_cnn.classifier[1], nn.Linear)
    assert all(torch.equal(before[k], v) for k, v in random_cnn.state_dict().items())


def test_weight_count_and_saved_sizes(random_cnn) -> None:
    assert deploy.linear_weight_count(random_cnn) == LINEAR_WEIGHTS == 201_984
    assert count_params(random_cnn) == 206_970
    float_bytes = deploy.saved_size_bytes(random_cnn)
    q_bytes = deploy.saved_size_bytes(deploy.quantize_linear_int8(random_cnn))
    assert 4 * 206_970 < float_bytes < 4 * 206_970 + 40_000  # float32 numbers plus pickle/zip overhead
    # int8 weights (1 byte) + the rest in float32 (4 bytes) + overhead
    assert LINEAR_WEIGHTS + 4 * (206_970 - LINEAR_WEIGHTS) < q_bytes < 0.3 * float_bytes


def test_max_logit_change_is_the_int8_rounding_error(random_cnn, mnist) -> None:
    x = mnist[2][:64]
    q = deploy.quantize_linear_int8(random_cnn)
    with torch.no_grad():
        # activations are quantized with a scale taken from each batch, so batching changes the result
        expected = max((random_cnn(x[i:i + 20]) - q(x[i:i + 20])).abs().max().item() for i in range(0, 64, 20))
        whole_batch = (random_cnn(x) - q(x)).abs().max().item()
    change = deploy.max_logit_change(random_cnn, q, x, batch_size=20)  # 4 batches, the last one short
    assert change == pytest.approx(expected, rel=1e-6)
    assert 0 < change < 0.05 and 0 < whole_batch < 0.05
    assert deploy.max_logit_change(random_cnn, q, x, batch_size=64) == pytest.approx(whole_batch, rel=1e-6)


def test_quantization_report_keeps_accuracy(trained, mnist) -> None:
    _, _, x_test, y_test = mnist
    rows = deploy.quantization_report(trained, x_test, y_test, latency_batch=128, repeats=2, rounds=2)
    assert [r["model"] for r in rows] == ["float32", "int8 dynamic (Linear)"]
    with torch.no_grad():
        float_acc = (trained(x_test).argmax(1) == y_test).float().mean().item()
    assert rows[0]["accuracy"] == pytest.approx(float_acc) and float_acc > 0.8
    assert abs(rows[1]["accuracy"] - float_acc) <= 0.02  # 500 images: at most 10 flip
    assert (rows[0]["int8_params"], rows[1]["int8_params"], rows[1]["params"]) == (0, LINEAR_WEIGHTS, 206_970)
    assert rows[1]["size_kb"] < 0.3 * rows[0]["size_kb"] and rows[1]["latency_batch"] == 128
    assert all(r["latency_ms"] > 0 for r in rows)
    table = deploy.quantization_table(rows)
    assert "201,984 / 206,970 (97.6%)" in table and "ms / batch of 128" in table and "(1.00×)" in table


def test_latency_restores_mode_and_rejects_bad_counts(random_cnn) -> None:
    random_cnn.train()
    assert deploy.latency_ms(random_cnn, torch.zeros(4, 1, 28, 28), repeats=2, rounds=2) > 0
    assert random_cnn.training
    with pytest.raises(ValueError, match="repeats must be a whole number"):
        deploy.latency_ms(random_cnn, torch.zeros(4, 1, 28, 28), repeats=0)


# ----------------------------------------------------------------------------- export

def test_export_roundtrip_accepts_other_batch_sizes(trained, mnist, tmp_path) -> None:
    x = mnist[2]
    trained.train()  # export must use eval mode anyway, and leave the model's mode alone
    result = deploy.export_roundtrip(trained, x[:8], tmp_path / "cnn.pt2")
    assert trained.training
    assert result.method == "torch.export" and result.path == tmp_path / "cnn.pt2"
    assert result.max_abs_diff < 1e-5 and result.size_bytes == result.path.stat().st_size
    assert 800_000 < result.size_bytes < 1_200_000  # the float32 weights (828 kB) plus the graph
    program = deploy.load_exported(result.path)
    trained.eval()
    with torch.no_grad():
        for n in (1, 5, 100):  # none of them is the example's 8
            assert (program(x[:n]) - trained(x[:n])).abs().max().item() < 1e-5


def test_torchscript_fallback_is_named(random_cnn, mnist, tmp_path) -> None:
    x = mnist[2][:4]
    result = deploy.export_roundtrip(random_cnn, x, tmp_path / "cnn.pt2", method="torchscript")
    assert result.method == "TorchScript (torch.jit.trace)" and result.path.suffix == ".torchscript"
    assert result.max_abs_diff < 1e-5
    assert deploy.load_exported(result.path)(mnist[2][:6]).shape == (6, 10)
    with pytest.raises(ValueError, match="method must be"):
        deploy.export_model(random_cnn, x, tmp_path / "m.pt2", method="onnx")
    with pytest.raises(DlcourseError, match="There is no exported model"):
        deploy.load_exported(tmp_path / "missing.pt2")
    (tmp_path / "junk.pt2").write_bytes(b"junk")
    with pytest.raises(DlcourseError, match="could not be loaded as an exported model"):
        deploy.load_exported(tmp_path / "junk.pt2")


# ----------------------------------------------------------------------------- checkpoint → resume

def test_first_step_and_data_order_match_an_independent_computation(mnist) -> None:
    x, y = mnist[0][:100], mnist[1][:100]
    state = checkpoint.new_state(3, 10)
    losses = checkpoint.train_steps(state, x, y, 4, 32)  # 100 samples: batches of 32, 32, 32, 4
    order = torch.randperm(100, generator=torch.Generator().manual_seed(3))
    assert torch.equal(state.order, order) and state.position == 100 and state.step == 4
    torch.manual_seed(3)
    model = build_cnn().train()  # same initial weights, then the same first dropout mask
    idx = order[:32]
    expected = nn.CrossEntropyLoss(label_smoothing=RECIPE["label_smoothing"])(model(x[idx]), y[idx]).item()
    assert losses[0] == pytest.approx(expected, abs=1e-5)
    checkpoint.train_steps(state, x, y, 1, 32)  # a new epoch draws a new permutation
    assert state.position == 32 and not torch.equal(state.order, order)


def test_resume_mid_epoch_is_bitwise_identical_and_each_piece_matters(mnist, tmp_path) -> None:
    x, y = mnist[0][:200], mnist[1][:200]  # 7 steps per epoch with batch 32: step 9 is mid-epoch 2
    demo = checkpoint.resume_demo(x, y, total_steps=14, interrupt_at=9, batch_size=32, seed=0, folder=tmp_path)
    assert demo["identical"] is True and demo["max_abs_diff"] == 0.0
    assert demo["resumed"] == demo["uninterrupted"] and len(demo["resumed"]) == 14
    assert set(demo["forgotten"]) == set(checkpoint.CHECKPOINT_PIECES)
    assert all(d > 1e-4 for d in demo["forgotten"].values()), demo["forgotten"]
    curves = demo["forgotten_losses"]
    # fresh momentum changes the update of step 10, so the loss of step 11 is the first to differ
    u = demo["uninterrupted"]
    assert curves["optimizer"][:10] == u[:10] and curves["optimizer"][10] != u[10]
    # other dropout masks or other batches change the very first resumed loss
    for piece in ("rng", "data_order"):
        assert curves[piece][:9] == u[:9] and curves[piece][9] != u[9]
    table = checkpoint.resume_table(demo)
    assert table.splitlines()[2].split() == ["everything", "0", "none"]
    assert "without the optimizer state (fresh momentum)" in table
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt", "reference.pt"]  # no temp file left


def test_checkpoint_is_weights_only_readable(mnist, tmp_path) -> None:
    state = checkpoint.new_state(0, 5)
    checkpoint.train_steps(state, mnist[0][:64], mnist[1][:64], 2, 32)
    path = checkpoint.save_checkpoint(state, tmp_path / "sub" / "ckpt.pt")
    raw = torch.load(path, weights_only=True)
    assert raw["step"] == 2 and raw["rng"]["torch"].dtype == torch.uint8 and raw["data"]["position"] == 64
    assert torch.equal(raw["model"]["classifier.4.bias"], state.model.classifier[4].bias.detach())
    loaded = checkpoint.load_checkpoint(path)
    assert loaded.step == 2 and loaded.scheduler.last_epoch == 2
    assert loaded.optimizer.param_groups[0]["lr"] == state.optimizer.param_groups[0]["lr"]
    with pytest.raises(DlcourseError, match="planned for 5 steps and has done 2"):
        checkpoint.train_steps(loaded, mnist[0][:64], mnist[1][:64], 4, 32)
    with pytest.raises(ValueError, match="forget can name"):
        checkpoint.load_checkpoint(path, forget=("momentum",))


def test_missing_and_corrupt_checkpoints_are_sentences(mnist, tmp_path) -> None:
    with pytest.raises(DlcourseError, match="There is no checkpoint at"):
        checkpoint.load_checkpoint(tmp_path / "nothing.pt")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint at all")
    state = checkpoint.new_state(0, 5)
    good = checkpoint.save_checkpoint(state, tmp_path / "good.pt")
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    for path in (garbage, truncated):
        with pytest.raises(DlcourseError, match="could not be read as a checkpoint") as info:
            checkpoint.load_checkpoint(path)
        assert info.value.__cause__ is None and info.value.__suppress_context__  # no torch traceback attached
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(3)}, other)
    with pytest.raises(DlcourseError, match="not a checkpoint written by save_checkpoint"):
        checkpoint.load_checkpoint(other)


def test_bad_arguments_are_rejected(mnist, tmp_path) -> None:
    with pytest.raises(ValueError, match="total_steps must be a whole number of at least 1"):
        checkpoint.new_state(0, 0)
    with pytest.raises(ValueError, match="lr must be a positive number"):
        checkpoint.new_state(0, 5, lr=-0.1)
    with pytest.raises(ValueError, match="interrupt_at must be below total_steps"):
        checkpoint.resume_demo(mnist[0][:64], mnist[1][:64], total_steps=4, interrupt_at=4, folder=tmp_path)
    state = checkpoint.new_state(0, 5)
    with pytest.raises(ValueError, match="batch_size must be a whole number"):
        checkpoint.train_steps(state, mnist[0][:64], mnist[1][:64], 1, 0)
    checkpoint.train_steps(state, mnist[0][:64], mnist[1][:64], 1, 32)
    with pytest.raises(DlcourseError, match="shuffles 64 samples, but x has 32"):
        checkpoint.train_steps(state, mnist[0][:32], mnist[1][:32], 1, 32)


class _DataDependent(nn.Module):
    """A Python `if` on a tensor's value: torch.export refuses it, TorchScript's trace records one branch."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(784, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.linear(x.flatten(1))
        return out if x.sum() > 0 else -out


def test_auto_falls_back_to_torchscript_and_says_why(mnist, tmp_path) -> None:
    torch.manual_seed(0)
    with pytest.warns(torch.jit.TracerWarning, match="might not generalize"):  # the trace's honest caveat
        result = deploy.export_roundtrip(_DataDependent(), mnist[2][:4], tmp_path / "dd.pt2")
    assert result.method.startswith("TorchScript (torch.jit.trace; torch.export failed: ")
    assert result.path.name == "dd.torchscript" and result.max_abs_diff == 0.0
    with pytest.raises(RuntimeError):  # asked for torch.export only: its own error, no fallback
        deploy.export_model(_DataDependent(), mnist[2][:4], tmp_path / "dd.pt2", method="export")
