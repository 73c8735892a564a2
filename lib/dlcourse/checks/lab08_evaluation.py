"""Checks for lab 08's exercises 08.4 (accuracy in eval mode) and 08.5 (a network to transfer to
Fashion-MNIST). Both build their own small seeded model and data, so a probe costs milliseconds and
trains nothing; `dlcourse.checks.lab08` re-exports them."""

from __future__ import annotations

import copy
from typing import Any

from dlcourse.check import expect, expect_array, expect_callable, expect_number, exercise
from dlcourse.checks.lab08_support import _torch, copy_weights, float_tensors, images, randomise, strided

# The counting loop the first wrong answers share; they differ only in how they handle the model's mode.
_COUNT_CORRECT = (
    "correct = 0\n"
    "with torch.inference_mode():\n"
    "    for start in range(0, len(x), batch_size):\n"
    "        logits = model(x[start:start + batch_size])\n"
    "        correct += (logits.argmax(dim=1) == y[start:start + batch_size]).sum().item()\n"
    "return correct / len(x)")
_COUNT_IN_EVAL_MODE = ("was_training = model.training\nmodel.eval()\n" + _COUNT_CORRECT.replace(
    "return correct / len(x)", "model.train(was_training)\nreturn correct / len(x)"))


@exercise("08.4", "Accuracy in eval mode", wrong_answers={
    "left the model in train mode": [_COUNT_CORRECT],
    "did not restore the train/eval mode": ["model.eval()\n" + _COUNT_CORRECT],
    "always switched back to train mode": ["model.eval()\n" + _COUNT_CORRECT.replace(
        "return correct / len(x)", "model.train()\nreturn correct / len(x)")],
    "ignored batch_size (one pass over all samples)": [_COUNT_IN_EVAL_MODE.replace(
        "range(0, len(x), batch_size)", "range(0, len(x), len(x))").replace(
        "start:start + batch_size", "start:start + len(x)")],
    "dropped the last partial batch": [_COUNT_IN_EVAL_MODE.replace(
        "range(0, len(x), batch_size)", "range(0, len(x) - batch_size + 1, batch_size)")],
    "averaged the batch accuracies": [
        "was_training = model.training\nmodel.eval()\nscores = []\n"
        "with torch.inference_mode():\n"
        "    for start in range(0, len(x), batch_size):\n"
        "        logits = model(x[start:start + batch_size])\n"
        "        scores.append((logits.argmax(dim=1) == y[start:start + batch_size]).float().mean().item())\n"
        "model.train(was_training)\nreturn sum(scores) / len(scores)"],
}, accepted_answers={
    "torch.no_grad() instead of inference_mode": [_COUNT_IN_EVAL_MODE.replace("torch.inference_mode()", "torch.no_grad()")],
    "torch.split into batches": [
        "was_training = model.training\nmodel.eval()\n"
        "with torch.inference_mode():\n"
        "    hits = [(model(xb.to(model_device)).argmax(1) == yb.to(model_device)).sum() "
        "for xb, yb in zip(x.split(batch_size), y.split(batch_size))]\n"
        "model.train(was_training)\nreturn torch.stack(hits).sum().item() / len(y)"],
})
def check_accuracy(accuracy: Any) -> str:
    torch = _torch()
    from dlcourse.cnn_torch import build_cnn

    expect_callable(accuracy, name="accuracy")
    torch.manual_seed(6)
    model = randomise(build_cnn(), seed=6)  # eval and train mode give different predictions
    n = 1237  # a multiple of neither 500 (the default batch size) nor 97
    x = images(2 * n, seed=7)
    model.eval()
    with torch.no_grad():
        top2 = torch.cat([model(x[s:s + 200]) for s in range(0, 2 * n, 200)]).topk(2, dim=1)
    clear = (top2.values[:, 0] - top2.values[:, 1] > 1e-3).nonzero()[:n, 0]  # no near-ties that rounding could flip
    x, predicted = x[clear], top2.indices[clear, 0]
    expect(len(x) == n, "The check could not build its test images; please tell your instructor.")
    wrong = torch.rand(n, generator=torch.Generator().manual_seed(8)) < 0.3  # about 30% of the labels disagree
    y = strided(torch.where(wrong, (predicted + 1) % 10, predicted))
    want = int((~wrong).sum()) / n
    eval_hint = ("Call model.eval() first: in train mode Dropout drops units and BatchNorm normalises with "
                 "each batch's statistics instead of the running averages learned in training.")
    for batch_size in (97, None):
        model.train()
        calls: list[tuple[bool, bool, int]] = []  # (autograd on, train mode, batch length) at each forward pass
        hook = model.register_forward_hook(
            lambda module, args, out: calls.append((torch.is_grad_enabled(), module.training, len(args[0]))))
        try:
            got = accuracy(model, x, y) if batch_size is None else accuracy(model, x, y, batch_size=batch_size)
        finally:
            hook.remove()
        size = 500 if batch_size is None else batch_size
        expect(bool(calls), "accuracy(...) never called the model.")
        expect(not any(training for _, training, _ in calls), "The model was in train mode during evaluation.", eval_hint)
        biggest = max(length for _, _, length in calls)
        expect(biggest <= size, f"With batch_size={size} your accuracy ran the model on {biggest} images at once.",
               "Slice x (and y) in steps of batch_size: a batch of 10,000 images needs 10,000 images' activations at once.")
        expect_number(got, want, name=f"accuracy(model, x, y{'' if batch_size is None else ', batch_size=97'}) "
                                      f"on {n:,} images", rtol=0, atol=1e-9,
                      hint="Count the samples whose largest logit is at the true label, over ALL samples, and divide "
                           "by len(x) (the last batch is smaller: an average of batch accuracies weighs it wrongly).")
        expect(model.training, "After accuracy(...) a model that was in train mode is left in eval mode.",
               "Remember was_training = model.training, and call model.train(was_training) at the end "
               "(a try/finally makes it happen even on an error).")
        expect(not any(grad for grad, _, _ in calls), "The forward passes ran with autograd on: they record a graph "
                                                     "nobody uses.", "Wrap the loop in `with torch.inference_mode():`.")
    model.eval()
    accuracy(model, x[:100], y[:100], batch_size=64)
    expect(not model.training, "A model that was in eval mode comes back in train mode.",
           "Restore the mode the model had before, not always train mode.")
    return (f"Your accuracy gives {want:.4f} on {n:,} images at batch sizes 97 and 500: eval mode, no autograd, "
            "and the model's mode restored.")


def _expect_fresh_head(head: list[Any], mnist_head: list[Any]) -> None:
    for new, old in zip(head, mnist_head):
        expect(not bool((new.detach() == old).all()), "The head still holds the MNIST network's weights.",
               "Give the copy a new, freshly initialised classifier: Fashion-MNIST's ten classes are not digits.")
    for weight in head[0::2]:
        bound = weight.shape[1] ** -0.5  # nn.Linear's default initialisation draws from ±1/√fan_in
        expect(float(weight.detach().abs().max()) <= bound + 1e-6,
               f"A head weight of shape {tuple(weight.shape)} reaches {float(weight.detach().abs().max()):.3g}, beyond nn.Linear's "
               f"initial range ±{bound:.3g}: the head is not freshly initialised.",
               "Build the classifier anew (the same layers as in CNN), so its weights start where nn.Linear starts them.")


@exercise("08.5", "A network to transfer", wrong_answers={
    "changed the MNIST network itself (no copy)": [
        "model = mnist_model\nmodel.classifier = nn.Sequential(nn.Flatten(), nn.Linear(32 * 7 * 7, 128), nn.ReLU(), "
        "nn.Dropout(0.25), nn.Linear(128, 10))\nfor p in model.features.parameters():\n"
        "    p.requires_grad_(not freeze_features)\nreturn model"],
    "kept the MNIST head": [
        "model = copy.deepcopy(mnist_model)\nfor p in model.features.parameters():\n"
        "    p.requires_grad_(not freeze_features)\nreturn model"],
    "froze the whole network": [
        "model = copy.deepcopy(mnist_model)\nmodel.classifier = nn.Sequential(nn.Flatten(), nn.Linear(32 * 7 * 7, 128), "
        "nn.ReLU(), nn.Dropout(0.25), nn.Linear(128, 10))\nfor p in model.parameters():\n"
        "    p.requires_grad_(not freeze_features)\nreturn model"],
    "froze only the convolution weights": [
        "model = copy.deepcopy(mnist_model)\nmodel.classifier = nn.Sequential(nn.Flatten(), nn.Linear(32 * 7 * 7, 128), "
        "nn.ReLU(), nn.Dropout(0.25), nn.Linear(128, 10))\nfor m in model.features:\n"
        "    if isinstance(m, nn.Conv2d):\n        m.weight.requires_grad_(not freeze_features)\nreturn model"],
    "froze nothing": [
        "model = copy.deepcopy(mnist_model)\nmodel.classifier = nn.Sequential(nn.Flatten(), nn.Linear(32 * 7 * 7, 128), "
        "nn.ReLU(), nn.Dropout(0.25), nn.Linear(128, 10))\nreturn model"],
    "a fresh network (nothing transferred)": [
        "model = CNN()\nfor p in model.features.parameters():\n    p.requires_grad_(not freeze_features)\nreturn model"],
}, accepted_answers={
    "a fresh CNN with the MNIST features loaded": [
        "model = CNN()\nmodel.features.load_state_dict(mnist_model.features.state_dict())\n"
        "model.features.requires_grad_(not freeze_features)\nreturn model"],
    "reset_parameters() on the head's layers": [
        "model = copy.deepcopy(mnist_model)\nfor m in model.classifier:\n    if isinstance(m, nn.Linear):\n"
        "        m.reset_parameters()\nmodel.features.requires_grad_(not freeze_features)\nreturn model"],
})
def check_transfer_model(transfer_model: Any) -> str:
    torch = _torch()
    from dlcourse.cnn_torch import build_cnn

    expect_callable(transfer_model, name="transfer_model")
    torch.manual_seed(9)
    mnist = randomise(build_cnn(), seed=9, everything=True)  # "trained" weights, far from a fresh network's
    before = copy.deepcopy(mnist.state_dict())
    for freeze in (True, False):
        mnist.train(freeze)  # either mode: the check must not depend on it
        torch.manual_seed(20)
        model = transfer_model(mnist, freeze)
        expect(isinstance(model, torch.nn.Module),
               f"transfer_model should return a torch.nn.Module, but it returned {type(model).__name__}.")
        unchanged = all(bool((mnist.state_dict()[k] == v).all()) for k, v in before.items())
        expect(model is not mnist and unchanged and all(p.requires_grad for p in mnist.parameters()),
               "transfer_model changed the MNIST network it was given.",
               "Work on copy.deepcopy(mnist_model): lab 08 still needs the MNIST network (and trains the transfer twice).")
        params, mnist_params = float_tensors(model, "parameters"), float_tensors(mnist, "parameters")
        expect(len(params) == len(mnist_params), f"The returned network has {len(params)} parameter tensors, the shared "
                                                 f"CNN {len(mnist_params)}.")
        for new, old in zip(params[:6] + float_tensors(model, "buffers"), mnist_params[:6] + float_tensors(mnist, "buffers")):
            expect_array(new.detach(), old.detach(), name="the features (convolutions and BatchNorm) of the returned network",
                         rtol=0, atol=0, hint="Start from the MNIST network's features: that is the transfer.")
        _expect_fresh_head(params[6:], mnist_params[6:])
        frozen = [not p.requires_grad for p in params[:6]]
        if freeze:
            expect(all(frozen), f"With freeze_features=True, {frozen.count(False)} of the 6 feature tensors (convolution "
                                "kernels, BatchNorm's γ and β) still require gradients.",
                   "Call requires_grad_(False) on every parameter of model.features (model.features.requires_grad_(False)).")
        else:
            expect(not any(frozen), "With freeze_features=False every layer should train, but some features are frozen.")
        expect(all(p.requires_grad for p in params[6:]), "The head is frozen: nothing would learn the new classes.",
               "Freeze only model.features; the new classifier must train.")
        reference = build_cnn()
        copy_weights(model, reference, "The returned network")
        x = images(5, seed=10)
        model.eval(), reference.eval()
        with torch.no_grad():
            expect_array(model(x), reference(x), name="the returned network's logits (eval mode)", rtol=1e-4, atol=1e-5,
                         hint="Keep the shared architecture: the same features, and a head Flatten → Linear(1568, 128) "
                              "→ ReLU → Dropout(0.25) → Linear(128, 10).")
    return ("A copy with the MNIST features (frozen when asked), a freshly initialised head that trains, and the MNIST "
            "network untouched.")
