"""Checks for lab 00 (setup): two warm-up exercises that show how every lab's checks work."""

from __future__ import annotations

from typing import Any

from dlcourse.check import Mismatch, expect_callable, expect_number, exercise


@exercise("00.1", "Count the sevens", wrong_answers={
    "counted the test labels": "n_sevens = int((y_test == 7).sum())",
    "gave the fraction, not the count": "n_sevens = float((y_train == 7).mean())",
    "counted the sevens of both sets": "n_sevens = int((y_train == 7).sum() + (y_test == 7).sum())",
}, accepted_answers={
    "np.count_nonzero": "n_sevens = np.count_nonzero(y_train == 7)",
    "a NumPy integer": "n_sevens = (y_train == 7).sum()",
    "a loop over the labels": "n_sevens = sum(1 for label in y_train if label == 7)",
})
def check_count_sevens(n_sevens: Any) -> str:
    from dlcourse.data import load_mnist

    try:
        y_train = load_mnist().train.y
    except Exception as error:  # the check's own data problem, not the student's answer
        raise Mismatch(f"The check could not load the MNIST labels to compare with ({error}). That is not about "
                       "your answer: run the data cells of section 2 and fix what they report, then run this check again.") from None
    expected = int((y_train == 7).sum())
    expect_number(n_sevens, expected, name="n_sevens", integer=True, rtol=0, atol=0,
                  hint="(y_train == 7) is True where the label is 7 and .sum() counts the Trues; "
                       "use the training labels.")
    return f"The training set holds {expected:,} sevens, {expected / len(y_train):.2%} of its {len(y_train):,} images."


def _reference_param_count(sizes: list[int]) -> int:
    return sum(n_in * n_out + n_out for n_in, n_out in zip(sizes[:-1], sizes[1:]))


# Sizes that differ from layer to layer, so swapping n_in and n_out anywhere changes the count.
_CASES = ([784, 128, 10], [3, 5], [2, 7, 4, 1], [6, 1, 9], [10])


@exercise("00.2", "Count a network's parameters", wrong_answers={
    "forgot the biases": "return sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))",
    "gave the input layer biases too": "return sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:])) + sizes[0]",
    "one bias per input instead of per output": "return sum(a * b + a for a, b in zip(sizes[:-1], sizes[1:]))",
    "counted only the first layer": "return sizes[0] * sizes[1] + sizes[1]",
    "hard-coded the lab's network": "return 101770",
}, accepted_answers={
    "(n_in + 1) · n_out in a loop": "total = 0\nfor i in range(len(sizes) - 1):\n    total += (sizes[i] + 1) * sizes[i + 1]\nreturn total",
    "NumPy": "import numpy as np\nreturn int(np.dot(sizes[:-1], sizes[1:]) + np.sum(sizes[1:]))",
})
def check_dense_param_count(dense_param_count: Any) -> str:
    expect_callable(dense_param_count, name="dense_param_count")
    for sizes in _CASES:
        expected = _reference_param_count(sizes)
        try:
            got = dense_param_count(list(sizes))
        except IndexError:
            raise Mismatch(f"dense_param_count({sizes}) raised IndexError.",
                           "Your function must work for any number of layers, also one layer (no parameters) "
                           "and three or more.") from None
        expect_number(got, expected, name=f"dense_param_count({sizes})",
                      integer=True, rtol=0, atol=0,
                      hint="A layer from n_in to n_out units has n_in * n_out weights and n_out biases; "
                           "the input layer has no parameters of its own.")
    return f"dense_param_count({_CASES[0]}) = {_reference_param_count(_CASES[0]):,}, right for all {len(_CASES)} test networks."
