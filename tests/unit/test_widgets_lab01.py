"""Lab 01's neuron explorer and activation plot render headless and follow their controls."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402

from dlcourse.plot import plot_activation  # noqa: E402
from dlcourse.widgets import neuron_explorer  # noqa: E402


def test_neuron_explorer_follows_the_bias_slider_and_the_menu() -> None:
    box = neuron_explorer([0.5, -1.0, 2.0], [2.0, 1.0, 0.5], b=-0.5)
    (bias, menu), caption, _output = box.children[0].children, box.children[1], box.children[2]
    assert bias.value == -0.5 and menu.value == "sigmoid"
    assert "z = w·x + b = 1.0000 + (-0.5) = 0.5000" in caption.value and "0.6225" in caption.value
    bias.value = 0.4
    assert "= 1.4000" in caption.value and "sigmoid(z) = 0.8022" in caption.value
    menu.value = "relu"
    assert "relu(z) = 1.4000" in caption.value


def test_plot_activation_marks_and_labels_the_points() -> None:
    fig = plot_activation("sigmoid", [0.0, 0.7, 1.4], title="worked points")
    ax = fig.axes[0]
    assert ax.get_title() == "worked points" and ax.get_xlabel() and ax.get_ylabel()
    labels = [t.get_text() for t in ax.texts]
    assert labels == ["σ(0) = 0.5000", "σ(0.7) = 0.6682", "σ(1.4) = 0.8022"]
    marked = [line for line in ax.lines if line.get_marker() == "o"]
    assert np.allclose([line.get_ydata()[0] for line in marked], [0.5, 0.668188, 0.802184], atol=1e-6)
