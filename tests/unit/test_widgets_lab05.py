"""Lab 05's prediction explorer builds headless, and its text follows the slider."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from dlcourse.widgets import plot_prediction, prediction_explorer, prediction_summary  # noqa: E402


def _fixture():
    images = np.zeros((3, 28, 28), dtype=np.uint8)
    labels = np.array([4, 7, 1])
    probs = np.full((3, 10), 0.01)
    probs[0, 4], probs[1, 2], probs[2, 1] = 0.91, 0.91, 0.91
    return images, labels, probs


def test_summary_says_right_or_wrong() -> None:
    images, labels, probs = _fixture()
    assert prediction_summary(0, labels, probs) == ("image 0: label 4, predicted 4 with probability 0.910 (right); "
                                                    "probability of the true label 0.910")
    assert "predicted 2" in prediction_summary(1, labels, probs) and "WRONG" in prediction_summary(1, labels, probs)


def test_explorer_text_follows_the_slider() -> None:
    images, labels, probs = _fixture()
    box = prediction_explorer(images, labels, probs, start=1)
    slider, summary, _output = box.children
    first = summary.value
    assert "image 1: label 7" in first and "WRONG" in first
    slider.value = 2
    assert summary.value != first and "image 2: label 1" in summary.value
    plt.close("all")


def test_static_figure_is_labelled() -> None:
    images, labels, probs = _fixture()
    fig = plot_prediction(images[1], labels[1], probs[1])
    bars = fig.axes[1]
    assert bars.get_xlabel() == "class (digit)" and bars.get_ylabel() == "predicted probability"
    assert bars.get_title() == "predicted 2 (0.91)" and fig.axes[0].get_title() == "label 7"
    plt.close(fig)
