"""Reference classification metrics in NumPy (lab 06 onwards): the confusion matrix and
per-class precision, recall and F1, written out so every step can be read.

Conventions are scikit-learn's: ``matrix[i, j]`` counts the examples of **true** class i that
were **predicted** as class j; a ratio whose denominator is 0 (a class never predicted, or
never present) is reported as ``zero_division`` (0.0, as ``sklearn.metrics`` does with
``zero_division=0``). tests/unit/test_metrics.py compares every function with sklearn.metrics.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from dlcourse.tables import format_table

__all__ = ["confusion_matrix", "precision_recall_f1", "metrics_table"]


def _labels(values: Sequence[int] | np.ndarray, name: str) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1 or not (np.issubdtype(array.dtype, np.integer) or array.size == 0):
        raise ValueError(f"{name} must be a 1-D array of integer class labels, not {array.dtype} of shape {array.shape}.")
    return array.astype(np.int64)


def confusion_matrix(y_true: Sequence[int] | np.ndarray, y_pred: Sequence[int] | np.ndarray,
                     n_classes: int | None = None) -> np.ndarray:
    """An (n_classes, n_classes) int64 matrix: rows are true classes, columns predicted classes.

    ``n_classes`` defaults to one more than the largest label seen in either array.
    """
    y_true, y_pred = _labels(y_true, "y_true"), _labels(y_pred, "y_pred")
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true and y_pred must have the same length, not {len(y_true)} and {len(y_pred)}.")
    if n_classes is None:
        n_classes = int(max(y_true.max(initial=-1), y_pred.max(initial=-1))) + 1
    if y_true.size and (min(y_true.min(), y_pred.min()) < 0 or max(y_true.max(), y_pred.max()) >= n_classes):
        raise ValueError(f"labels must lie in 0..{n_classes - 1}.")
    matrix = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(matrix, (y_true, y_pred), 1)  # add.at counts repeated (i, j) pairs; matrix[i, j] += 1 would not
    return matrix


def _ratio(numerator: np.ndarray, denominator: np.ndarray, zero_division: float) -> np.ndarray:
    out = np.full(numerator.shape, float(zero_division))
    np.divide(numerator, denominator, out=out, where=denominator != 0)
    return out


def precision_recall_f1(matrix: np.ndarray, zero_division: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-class precision, recall and F1 from a confusion matrix (rows true, columns predicted).

    precision_k = TP_k / (column k sum): of everything predicted as k, the share that is k.
    recall_k    = TP_k / (row k sum):    of everything that is k, the share found.
    F1_k        = 2 P R / (P + R), their harmonic mean (low if either is low), computed as
                  2 TP / (row sum + column sum), the same number, so that it stays defined
                  exactly where sklearn's is.
    """
    matrix = np.asarray(matrix, dtype=float)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"a confusion matrix must be square, not of shape {matrix.shape}.")
    true_positives = np.diag(matrix)
    precision = _ratio(true_positives, matrix.sum(axis=0), zero_division)
    recall = _ratio(true_positives, matrix.sum(axis=1), zero_division)
    f1 = _ratio(2.0 * true_positives, matrix.sum(axis=0) + matrix.sum(axis=1), zero_division)
    return precision, recall, f1


def metrics_table(matrix: np.ndarray, class_names: Sequence[str] | None = None, digits: int = 4) -> str:
    """A plain-text table: one row per class (precision, recall, F1, support) and a macro-average row."""
    matrix = np.asarray(matrix)
    precision, recall, f1 = precision_recall_f1(matrix)
    support = matrix.sum(axis=1)
    names = list(class_names) if class_names is not None else [str(k) for k in range(len(matrix))]
    rows = [[name, f"{p:.{digits}f}", f"{r:.{digits}f}", f"{f:.{digits}f}", str(int(s))]
            for name, p, r, f, s in zip(names, precision, recall, f1, support)]
    rows.append(["macro avg", f"{precision.mean():.{digits}f}", f"{recall.mean():.{digits}f}",
                 f"{f1.mean():.{digits}f}", str(int(support.sum()))])
    return format_table(["class", "precision", "recall", "F1", "support"], rows)
