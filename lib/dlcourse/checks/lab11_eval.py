"""Check for lab 11's held-out evaluation (11.7): the function that gives the curve's points and the lab's
headline held-out loss.

The check hands the student's function a small model of its own, with dropout, that notes at every call whether it
ran in training mode, with gradients, and on how many windows; and a fixed masked set of 23 windows scored in
batches of 6, so the last batch is short and a mean of per-batch means shows. It compares the loss and accuracy with
a float64 computation over every selected position, and checks that the model is left in the mode it was in.
torch is imported inside the check (a light interpreter imports this module).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dlcourse.check import expect, expect_callable, expect_number, exercise

IGNORE = -100


def _torch():
    import torch

    return torch


# ------------------------------------------------------------------------------------------- 11.7
def _scoring(*, mode: str | None = "model.eval()", grad: str | None = "torch.no_grad()",
             stop: str = "len(masked.inputs)", size: str = "batch_size",
             body: str = "logits, targets = model(inputs)[selected], labels[selected]\n"
                         "total += F.cross_entropy(logits, targets, reduction='sum').item()\n"
                         "correct += int((logits.argmax(dim=-1) == targets).sum())\n"
                         "count += len(targets)",
             restore: str | None = "model.train(was_training)",
             result: str = "loss, accuracy = total / count, correct / count", start: str = "") -> str:
    """An evaluate_mlm body; a slot of None leaves that line out (no eval(), no no_grad, no restore)."""
    loop = (f"for start in range(0, {stop}, {size}):\n"
            f"    inputs = masked.inputs[start:start + {size}]\n"
            f"    labels = masked.labels[start:start + {size}]\n"
            "    selected = labels != -100\n" + "".join(f"    {line}\n" for line in body.splitlines()))
    if grad is not None:
        loop = f"with {grad}:\n" + "".join(f"    {line}\n" for line in loop.splitlines())
    lines = ["was_training = model.training", mode, "total, correct, count = 0.0, 0, 0" + start, loop.rstrip("\n"),
             restore, result]
    return "\n".join(line for line in lines if line is not None)


@exercise("11.7", "The held-out evaluation", wrong_answers={
    "training mode left on (no model.eval())": _scoring(mode=None),
    "gradients tracked (no torch.no_grad())": _scoring(grad=None),
    "model left in evaluation mode afterwards": _scoring(restore=None),
    "model.train() at the end, whatever the mode was": _scoring(restore="model.train()"),
    "mean of the per-batch means": _scoring(
        start="\nbatches = 0", result="loss, accuracy = total / batches, correct / count",
        body="logits, targets = model(inputs)[selected], labels[selected]\n"
             "total += F.cross_entropy(logits, targets).item()\n"
             "correct += int((logits.argmax(dim=-1) == targets).sum())\n"
             "count += len(targets)\n"
             "batches += 1"),
    "batch means weighted by windows (an image-classification loop)": _scoring(
        start="\nwindows = 0", result="loss, accuracy = total / windows, correct / count",
        body="logits, targets = model(inputs)[selected], labels[selected]\n"
             "total += F.cross_entropy(logits, targets).item() * len(inputs)\n"
             "correct += int((logits.argmax(dim=-1) == targets).sum())\n"
             "count += len(targets)\n"
             "windows += len(inputs)"),
    "accuracy over every position": _scoring(result="loss, accuracy = total / count, correct / masked.labels.numel()"),
    "the last, shorter batch left out": _scoring(stop="len(masked.inputs) - batch_size + 1"),
    "the whole set in one batch (batch_size ignored)": _scoring(size="len(masked.inputs)"),
}, accepted_answers={
    "torch.inference_mode()": _scoring(grad="torch.inference_mode()"),
    "ignore_index over every position": _scoring(
        body="logits = model(inputs)\n"
             "total += F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=-100,\n"
             "                         reduction='sum').item()\n"
             "correct += int((selected & (logits.argmax(dim=-1) == labels)).sum())\n"
             "count += int(selected.sum())"),
    "log-probabilities gathered by hand, in float64": _scoring(
        body="logits, targets = model(inputs)[selected].double(), labels[selected]\n"
             "total -= torch.log_softmax(logits, dim=-1).gather(1, targets[:, None]).sum().item()\n"
             "correct += int((logits.argmax(dim=-1) == targets).sum())\n"
             "count += len(targets)"),
    "every batch's logits kept, one cross-entropy at the end": _scoring(
        start="\nkept, wanted = [], []", body="kept.append(model(inputs)[selected])\nwanted.append(labels[selected])",
        result="logits, targets = torch.cat(kept), torch.cat(wanted)\n"
               "loss = F.cross_entropy(logits, targets).item()\n"
               "accuracy = (logits.argmax(dim=-1) == targets).float().mean().item()"),
})
def check_evaluate_mlm(evaluate_mlm: Any) -> str:
    torch = _torch()
    from torch import nn

    from dlcourse.functions import log_softmax
    from dlcourse.mlm import MaskedSet

    expect_callable(evaluate_mlm, name="evaluate_mlm")
    vocab, n, t, batch = 13, 23, 17, 6  # 23 windows in batches of 6: the last one is short

    class Recorder(nn.Module):  # dropout, so training mode shows; it notes how it is called
        def __init__(self) -> None:
            super().__init__()
            self.embedding, self.mix = nn.Embedding(vocab, 12), nn.Conv1d(12, 12, 3, padding=1)
            self.dropout, self.out = nn.Dropout(0.5), nn.Linear(12, vocab)
            self.calls: list[tuple[bool, bool, int]] = []

        def forward(self, tokens: Any) -> Any:
            self.calls.append((self.training, torch.is_grad_enabled(), len(tokens)))
            x = self.embedding(tokens)
            x = torch.tanh(x + self.mix(x.transpose(1, 2)).transpose(1, 2))
            return 3 * self.out(self.dropout(x))

    g = torch.Generator().manual_seed(17)
    tokens = torch.randint(0, vocab, (n, t), generator=g)
    labels = torch.where(torch.rand(n, t, generator=g) < 0.2, tokens, torch.full_like(tokens, IGNORE))
    inputs = torch.where(labels != IGNORE, torch.full_like(tokens, 2), tokens)

    def run(training: bool) -> tuple[Any, Any, Any]:
        with torch.random.fork_rng(devices=[]):  # the lab's global generator is left as it was
            torch.manual_seed(11)
            model = Recorder().train(training)
            got = evaluate_mlm(model, MaskedSet(inputs.clone(), labels.clone()), batch)
        expect(isinstance(got, (tuple, list)) and len(got) == 2,
               "`evaluate_mlm` should return a pair of numbers (mean loss in nats, accuracy).")
        return model, got[0], got[1]

    model, loss, accuracy = run(True)
    expect(bool(model.calls), "`evaluate_mlm` never called the model.")
    expect(not any(grad for _, grad, _ in model.calls), "The model ran with gradient tracking on.",
           "Wrap the scoring in `with torch.no_grad():`: nothing calls backward during an evaluation, so building "
           "the graph only costs memory and time.")
    expect(not any(mode for mode, _, _ in model.calls), "The model ran in training mode: its dropout was on.",
           "Call model.eval() before scoring, so the same weights always get the same score.")
    expect(model.training, "After `evaluate_mlm` the model is still in evaluation mode.",
           "Note `was_training = model.training` first and call `model.train(was_training)` at the end: the training "
           "loop calls your function between its steps.")
    expect(max(size for *_, size in model.calls) <= batch,
           f"The model got {max(size for *_, size in model.calls)} windows at once, but `batch_size` is {batch}.",
           "Run the windows in slices: masked.inputs[start:start + batch_size] for start in range(0, N, batch_size); "
           "a whole validation set at once may not fit in memory.")
    seen = sum(size for *_, size in model.calls)
    expect(seen == n, f"The model scored {seen} windows; the set has {n}.",
           "range(0, len(masked.inputs), batch_size) includes the last, shorter batch: every window counts.")
    with torch.no_grad():
        logits = model.eval()(inputs)
    selected = (labels != IGNORE).numpy()
    targets = labels.numpy()[selected]
    logp = log_softmax(logits.numpy().astype(np.float64))[selected]
    want_loss = float(-logp[np.arange(len(targets)), targets].mean())
    want_acc = float((logits.numpy()[selected].argmax(axis=-1) == targets).mean())
    expect_number(loss, want_loss, name="the loss", rtol=1e-5,
                  hint="Add up the cross-entropy of every selected position (reduction='sum') and divide ONCE by how "
                       "many there are: a mean of per-batch means counts the short last batch as much as a full one.")
    expect_number(accuracy, want_acc, name="the accuracy", rtol=1e-6,
                  hint="Accuracy is over the selected positions only: argmax over the vocabulary equal to the label, "
                       "divided by the number of selected positions.")
    again, loss_again, _ = run(False)
    expect(not again.training, "`evaluate_mlm` switched a model that was in evaluation mode to training mode.",
           "Put the model back in the mode it was in: model.train(was_training), not model.train().")
    expect_number(loss_again, want_loss, name="the loss of a second evaluation", rtol=1e-5)
    return (f"{n} windows in batches of {batch}, {len(targets)} masked targets: {want_loss:.4f} nats, accuracy "
            f"{want_acc:.3f}; evaluation mode, no gradients, the model's mode restored.")
