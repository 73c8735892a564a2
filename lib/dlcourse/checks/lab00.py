"""Checks for lab 00 (setup): two warm-up exercises that show how every lab's checks work."""

from __future__ import annotations

from typing import Any

from dlcourse.check import expect_callable, expect_number, exercise


@exercise("00.1", "Count the sevens", wrong_answers={
    "counted the test labels": "n_sevens = int((y_test == 7).sum())",
    "gave the fraction, not the count": "n_sevens = float((y_train == 7).mean())",
})
def check_count_sevens(n_sevens: Any) -> str:
    from dlcourse.data import load_mnist

    y_train = load_mnist().train.y
    expected = int((y_train == 7).sum())
    expect_number(n_sevens, expected, name="n_sevens", integer=True, rtol=0, atol=0,
                  hint="(y_train == 7) is True where the label is 7 and .sum() counts the Trues; "
                       "use the training labels.")
    return f"The training set holds {expected:,} sevens, {expected / len(y_train):.2%} of its {len(y_train):,} images."


def _reference_param_count(sizes: list[int]) -> int:
    return sum(n_in * n_out + n_out for n_in, n_out in zip(sizes[:-1], sizes[1:]))


_CASES = ([784, 128, 10], [3, 3], [2, 4, 4, 1], [10])


@exercise("00.2", "Count a network's parameters", wrong_answers={
    "forgot the biases": "return sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))",
    "gave the input layer biases too": "return sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:])) + sizes[0]",
})
def check_dense_param_count(dense_param_count: Any) -> str:
    expect_callable(dense_param_count, name="dense_param_count")
    for sizes in _CASES:
        expected = _reference_param_count(sizes)
        expect_number(dense_param_count(list(sizes)), expected, name=f"dense_param_count({sizes})",
                      integer=True, rtol=0, atol=0,
                      hint="A layer from n_in to n_out units has n_in * n_out weights and n_out biases; "
                           "the input layer has no parameters of its own.")
    return f"dense_param_count({_CASES[0]}) = {_reference_param_count(_CASES[0]):,}, right for all {len(_CASES)} test networks."
