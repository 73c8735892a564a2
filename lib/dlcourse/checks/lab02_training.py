"""Check for lab 02 exercise 02.6: the parameter list, zero-grad and SGD step of an MLP built on
the student's `Value` engine. `dlcourse.checks.lab02` imports it, which registers it with the
lab's other checks.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dlcourse.check import Mismatch, expect, expect_callable, exercise


# ------------------------------------------------------------------------------ 02.6 training pieces

def _walk_parameters(model: Any) -> list[Any]:
    """Every weight and bias of a skeleton MLP, found through .layers, .neurons, .w and .b."""
    try:
        return [p for layer in model.layers for neuron in layer.neurons for p in [*neuron.w, neuron.b]]
    except (AttributeError, TypeError):
        raise Mismatch("Your MLP should keep .layers, each Layer .neurons, and each Neuron .w (a list) and .b, "
                       "as in the given code: keep those lines as they are.") from None


def _pieces(**changed: str) -> list[str | None]:
    names = ("neuron", "layer", "mlp", "zero_grad", "sgd_step")
    return [changed.get(name) for name in names]


@exercise("02.6", "Parameters, zero-grad and the SGD step", wrong_answers={
    "Neuron.parameters forgot the bias": _pieces(neuron="return self.w"),
    "Layer.parameters lists only its first neuron": _pieces(layer="return self.neurons[0].parameters()"),
    "MLP.parameters lists only the last layer": _pieces(mlp="return self.layers[-1].parameters()"),
    "parameters returns the numbers (p.data), not the Values": _pieces(neuron="return [p.data for p in self.w + [self.b]]"),
    "zero_grad resets the data instead of the gradient": _pieces(zero_grad="for p in parameters:\n    p.data = 0.0"),
    "the step climbs the gradient (+=)": _pieces(sgd_step="for p in parameters:\n    p.data += lr * p.grad"),
    "the step ignores lr (always 0.1)": _pieces(sgd_step="for p in parameters:\n    p.data -= 0.1 * p.grad"),
}, accepted_answers={
    "bias first, loops with extend, grad = 0 as an integer": _pieces(
        neuron="return [self.b, *self.w]",
        layer="params = []\nfor neuron in self.neurons:\n    params.extend(neuron.parameters())\nreturn params",
        zero_grad="for p in parameters:\n    p.grad = 0",
        sgd_step="for p in parameters:\n    p.data = p.data - lr * p.grad"),
})
def check_training_pieces(MLP: Any, zero_grad: Any, sgd_step: Any) -> str:
    expect(isinstance(MLP, type), f"`MLP` should be the class you were given, but it is {type(MLP).__name__}.")
    expect_callable(zero_grad, name="zero_grad")
    expect_callable(sgd_step, name="sgd_step")
    rng = np.random.default_rng(206)
    model = MLP(3, [5, 4, 2], np.random.default_rng(7))  # 3 inputs, layers of 5, 4 and 2: 54 parameters
    want = _walk_parameters(model)
    params = model.parameters()
    expect(isinstance(params, (list, tuple)),
           f"MLP.parameters() should return a list of Values, but it returned {type(params).__name__}.")
    params = list(params)
    expect(all(hasattr(p, "data") and hasattr(p, "grad") for p in params),
           "MLP.parameters() should list the Value objects themselves (with .data and .grad), not their numbers: "
           "the step must change the Values the network computes with.")
    ids, want_ids = [id(p) for p in params], {id(p) for p in want}
    n_biases = sum(len(layer.neurons) for layer in model.layers)
    hint = (f"A 3-5-4-2 network has {len(want)} parameters: every neuron's weights .w and its bias .b "
            f"({n_biases} biases), in every neuron of every layer. Return the Values themselves, each once.")
    if len(params) == len(want) - n_biases:
        hint = "Exactly the biases are missing: a Neuron's parameters are its weights .w and its bias .b."
    expect(len(params) == len(want) and set(ids) == want_ids and len(set(ids)) == len(ids),
           f"For MLP(3, [5, 4, 2]) your parameters() lists {len(params)} values ({len(set(ids) & want_ids)} of the "
           f"network's own), but the network has {len(want)} weights and biases.", hint)
    for p in params:
        p.grad = float(rng.normal())
    data = [p.data for p in params]
    zero_grad(params)
    expect(all(p.grad == 0 for p in params), "After zero_grad(parameters) some gradients are not 0.",
           "Set p.grad = 0.0 for every p in the list, so the next backward pass starts from zero.")
    expect(all(p.data == d for p, d in zip(params, data)),
           "zero_grad changed the parameters' values (.data); it should reset only their gradients (.grad).")
    for lr in (0.037, 0.21):
        grads = rng.normal(size=len(params))
        for p, g in zip(params, grads):
            p.grad = float(g)
        before = np.array([p.data for p in params])
        sgd_step(params, lr)
        after = np.array([float(p.data) for p in params])
        hint = "One step of gradient descent: p.data -= lr * p.grad for every parameter, with the lr it is given."
        if np.allclose(after, before + lr * grads):
            hint = "You moved up the gradient: descent subtracts it, p.data -= lr * p.grad."
        expect(np.allclose(after, before - lr * grads, rtol=1e-12, atol=1e-14),
               f"After sgd_step(parameters, lr={lr}) the values are not p.data − lr · p.grad.", hint)
    return (f"parameters() lists all {len(want)} weights and biases of a 3-5-4-2 network, zero_grad resets every "
            "gradient, and sgd_step moves each value by −lr · grad at two learning rates.")
