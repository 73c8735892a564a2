"""dlcourse.metrics agrees with sklearn.metrics: confusion matrix and per-class precision/recall/F1."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as sk

from dlcourse.metrics import confusion_matrix, metrics_table, precision_recall_f1


def _predictions(seed: int, n: int = 500, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, k, n)
    y_pred = np.where(rng.random(n) < 0.7, y_true, rng.integers(0, k, n))  # 70% right, the rest random
    return y_true, y_pred


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_confusion_matrix_matches_sklearn(seed: int) -> None:
    y_true, y_pred = _predictions(seed)
    ours = confusion_matrix(y_true, y_pred, 10)
    assert ours.dtype == np.int64 and ours.shape == (10, 10)
    np.testing.assert_array_equal(ours, sk.confusion_matrix(y_true, y_pred, labels=range(10)))
    assert ours.sum() == len(y_true) and np.trace(ours) == (y_true == y_pred).sum()


def test_rows_are_true_classes() -> None:
    matrix = confusion_matrix([0, 0, 0, 1], [0, 1, 1, 1])
    np.testing.assert_array_equal(matrix, [[1, 2], [0, 1]])


@pytest.mark.parametrize("zero_division", [0.0, 1.0])
@pytest.mark.parametrize("seed", [0, 3])
def test_precision_recall_f1_match_sklearn(seed: int, zero_division: float) -> None:
    y_true, y_pred = _predictions(seed, n=60, k=12)  # small: some classes are never predicted or absent
    y_pred = np.where(y_pred == 11, 10, y_pred)  # class 11 is never predicted: its precision is 0/0
    matrix = confusion_matrix(y_true, y_pred, 12)
    want = sk.precision_recall_fscore_support(y_true, y_pred, labels=range(12), zero_division=zero_division)
    for ours, theirs in zip(precision_recall_f1(matrix, zero_division=zero_division), want[:3]):
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-12)


def test_perfect_and_hopeless_predictions() -> None:
    precision, recall, f1 = precision_recall_f1(confusion_matrix([0, 1, 2], [0, 1, 2]))
    assert precision.tolist() == recall.tolist() == f1.tolist() == [1.0, 1.0, 1.0]
    precision, recall, f1 = precision_recall_f1(confusion_matrix([0, 1], [1, 0]))
    assert precision.tolist() == recall.tolist() == f1.tolist() == [0.0, 0.0]


def test_bad_inputs_say_what_is_wrong() -> None:
    with pytest.raises(ValueError, match="same length"):
        confusion_matrix([0, 1], [0])
    with pytest.raises(ValueError, match="integer class labels"):
        confusion_matrix([0.5, 1.0], [0, 1])
    with pytest.raises(ValueError, match="0..1"):
        confusion_matrix([0, 2], [0, 1], n_classes=2)
    with pytest.raises(ValueError, match="square"):
        precision_recall_f1(np.zeros((2, 3)))


def test_metrics_table_has_a_row_per_class_and_a_macro_average() -> None:
    table = metrics_table(confusion_matrix([0, 0, 1, 1], [0, 1, 1, 1]), class_names=["cat", "dog"])
    lines = table.splitlines()
    assert lines[0].split() == ["class", "precision", "recall", "F1", "support"]
    assert lines[2].split() == ["cat", "1.0000", "0.5000", "0.6667", "2"]
    assert lines[3].split() == ["dog", "0.6667", "1.0000", "0.8000", "2"]
    assert lines[4].split() == ["macro", "avg", "0.8333", "0.7500", "0.7333", "4"]
