"""The lab 00 checks, called directly: they accept right answers and explain wrong ones."""

from __future__ import annotations

import pytest

from dlcourse.checks.lab00 import check_count_sevens, check_dense_param_count


@pytest.fixture(autouse=True)
def _data(shared_data, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DLCOURSE_DATA", str(shared_data))


def test_count_sevens() -> None:
    from dlcourse.data import load_mnist

    y_train = load_mnist().train.y
    assert check_count_sevens.evaluate(int((y_train == 7).sum())).passed
    assert check_count_sevens.evaluate((y_train == 7).sum()).passed, "a NumPy integer is fine"
    assert check_count_sevens.evaluate(None).status == "not_attempted"
    off = check_count_sevens.evaluate(int((y_train == 1).sum()))
    assert off.status == "failed" and "training labels" in off.hint
    assert "whole number" in check_count_sevens.evaluate(0.1044).message
    assert "remove the quotes" in check_count_sevens.evaluate("6265").message


def test_dense_param_count() -> None:
    def right(sizes):
        return sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))

    def no_biases(sizes):
        return sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))

    def stub(sizes):
        raise NotImplementedError("Exercise 00.2: replace this line with your code.")

    passed = check_dense_param_count.evaluate(right)
    assert passed.passed and "101,770" in passed.message
    failed = check_dense_param_count.evaluate(no_biases)
    assert failed.status == "failed" and "dense_param_count([784, 128, 10])` is 101632" in failed.message
    assert "n_out biases" in failed.hint
    assert check_dense_param_count.evaluate(stub).status == "not_attempted"
    assert "should be a function" in check_dense_param_count.evaluate(101770).message
    assert check_dense_param_count.evaluate(lambda sizes: None).status == "failed"


def test_dense_param_count_turns_a_crash_into_a_sentence() -> None:
    # The coincidences (one bias per input, only the first layer, 101,770) are registered wrong answers, probed in the notebook.
    crashes = check_dense_param_count.evaluate(
        lambda s: s[1] * 0 + sum(a * b + b for a, b in zip(s[:-1], s[1:])))  # IndexError for one layer
    assert crashes.status == "failed" and "any number of layers" in crashes.hint


def test_count_sevens_reports_its_own_data_problem(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    import dlcourse.data

    def broken(*args, **kwargs):
        raise OSError("disk gone")

    monkeypatch.setattr(dlcourse.data, "load_mnist", broken)
    result = check_count_sevens.evaluate(6265)
    assert result.status == "failed" and "not about your answer" in result.message
