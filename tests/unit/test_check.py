"""dlcourse.check: verdicts, stub recognition, friendly sentences for bad input, no mutation."""

from __future__ import annotations

import numpy as np
import pytest

from dlcourse.check import (CHECK_MIME, CheckResult, Exercise, Mismatch, expect, expect_array, expect_callable,
                            expect_number, exercise, registry)


def _array_check() -> Exercise:
    def check_double(values):
        expect_array(values, np.array([[2.0, 4.0, 6.0]]), name="values")
        return "Doubled."
    return Exercise("99.1", "Double it", check_double)


def _function_check() -> Exercise:
    def check_square(square):
        expect_callable(square, name="square")
        for x in (0.0, 1.5, -3.0):
            expect_number(square(x), x * x, name=f"square({x})")
        return "Squares right."
    return Exercise("99.2", "Square it", check_square)


def test_pass_fail_and_not_attempted() -> None:
    check = _array_check()
    assert check.evaluate(np.array([[2, 4, 6]])).status == "passed"
    assert check.evaluate([[2.0, 4.0, 6.0]]).message == "Doubled."
    assert check.evaluate(None).status == "not_attempted"
    wrong = check.evaluate(np.array([[2.0, 4.0, 7.0]]))
    assert wrong.status == "failed" and "1 of 3 entries" in wrong.message and "index (0, 2)" in wrong.message


def test_function_stub_is_not_attempted() -> None:
    def square(x):
        raise NotImplementedError("Exercise 99.2: replace this line with your code.")
    result = _function_check().evaluate(square)
    assert result.status == "not_attempted" and "NotImplementedError" in result.message


@pytest.mark.parametrize("value, phrase", [
    ("2, 4, 6", "should be an array of numbers, but it is the text"),
    ([[2, 4], [6]], "rows have different lengths"),
    (np.array([2.0, 4.0, 6.0]), "has shape (3,), but the expected shape is (1, 3)"),
    (np.array([[2.0], [4.0], [6.0]]), "shape (3, 1)"),
    ({"a": 1}, "should be an array of numbers"),
    (np.array([[2.0, np.nan, 6.0]]), "NaN or infinite"),
    (np.array([["a", "b", "c"]]), "should hold numbers"),
])
def test_wrong_types_and_shapes_get_sentences(value, phrase) -> None:
    result = _array_check().evaluate(value)
    assert result.status == "failed"
    assert phrase in result.message


def test_shape_hints() -> None:
    def check(m):
        expect_array(m, np.zeros((2, 3)), name="m")
    assert "transposed" in Exercise("99.3", "t", check).evaluate(np.zeros((3, 2))).hint
    assert "keepdims" in Exercise("99.3", "t", check).evaluate(np.zeros((2, 3, 1))).hint


@pytest.mark.parametrize("value, phrase", [
    ("3", "remove the quotes"),
    (True, "True/False"),
    (np.array([1.0, 2.0]), "single number"),
    (float("nan"), "not a finite number"),
    (2.5, "not the expected value"),
])
def test_expect_number_sentences(value, phrase) -> None:
    def check(x):
        expect_number(x, 3, name="x", integer=phrase != "not the expected value")
    result = Exercise("99.4", "n", check).evaluate(value)
    assert result.status == "failed" and phrase in result.message


def test_numbers_from_numpy_and_torch_are_accepted() -> None:
    torch = pytest.importorskip("torch")
    def check(x):
        expect_number(x, 3, name="x", integer=True)
    ex = Exercise("99.5", "n", check)
    for value in (3, 3.0, np.int64(3), np.array(3), np.array([3]), torch.tensor(3), torch.tensor([3.0])):
        assert ex.evaluate(value).passed, value


def test_torch_tensors_are_compared_as_arrays() -> None:
    torch = pytest.importorskip("torch")
    assert _array_check().evaluate(torch.tensor([[2.0, 4.0, 6.0]], requires_grad=True) * 1).passed


def test_student_exceptions_become_a_sentence() -> None:
    def square(x):
        return x / 0
    result = _function_check().evaluate(square)
    assert result.status == "failed" and result.message.startswith("Running your code raised ZeroDivisionError")
    result = _function_check().evaluate(42)
    assert result.status == "failed" and "should be a function, but it is an int" in result.message
    def forever(x):
        return forever(x)
    assert "RecursionError" in _function_check().evaluate(forever).message


def test_wrong_number_of_arguments() -> None:
    result = _array_check().evaluate(1, 2)
    assert result.status == "failed" and "takes 1 value(s): values" in result.message


def test_checks_never_mutate_student_objects() -> None:
    def check(values):
        values.append(99)
        values[0] = -1
        expect(False, "always fails")
    student = [1, 2, 3]
    array = np.array([1.0, 2.0])
    Exercise("99.6", "m", check).evaluate(student)
    assert student == [1, 2, 3]
    def check_array(a):
        a *= 0
    Exercise("99.7", "m", check_array).evaluate(array)
    assert array.tolist() == [1.0, 2.0]


def test_result_rendering_carries_machine_readable_json() -> None:
    result = CheckResult("99.1", "Title", "failed", "It is off.", "Look again.")
    bundle = result._repr_mimebundle_()
    assert bundle[CHECK_MIME] == {"exercise": "99.1", "title": "Title", "status": "failed",
                                  "message": "It is off.", "hint": "Look again."}
    assert "not yet" in bundle["text/plain"] and "Hint: Look again." in bundle["text/plain"]
    assert "&lt;" in CheckResult("1", "<b>", "passed", "<script>")._repr_mimebundle_()["text/html"]


def test_calling_a_check_prints_in_a_terminal(capsys) -> None:
    _array_check()(None)
    out = capsys.readouterr().out
    assert "Exercise 99.1 (Double it): ✏️ not attempted yet." in out and "`values` is still None" in out


def test_registry_and_duplicate_ids() -> None:
    checks = registry("00")
    assert set(checks) == {"00.1", "00.2"} and all(c.wrong_answers for c in checks.values())
    with pytest.raises(ValueError, match="registered twice"):
        exercise("00.1", "again")(lambda x: None)


def test_mismatch_carries_reason_and_hint() -> None:
    err = Mismatch("reason", "hint")
    assert (err.reason, err.hint, str(err)) == ("reason", "hint", "reason")
