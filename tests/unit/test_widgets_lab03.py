"""Lab 03's activation explorer builds headless, and its text follows every control."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from dlcourse.plot import max_slope, plot_activation_through_depth  # noqa: E402
from dlcourse.widgets import activation_explorer, activation_summary  # noqa: E402


def test_max_slope_finds_the_textbook_peaks() -> None:
    assert max_slope("sigmoid", (-6, 6)) == (pytest.approx(0.25), pytest.approx(0.0))
    assert max_slope("tanh", (-6, 6))[0] == pytest.approx(1.0)
    assert max_slope("relu", (-6, 6))[0] == 1.0
    assert max_slope("relu", (-6, -1))[0] == 0.0
    assert max_slope("gelu", (-6, 6))[0] == pytest.approx(1.129, abs=1e-3)


def test_summary_states_the_sigmoid_bound() -> None:
    text = activation_summary("sigmoid", (-6, 6), 10)
    assert "0.25" in text and "after 10 layers" in text and "9.5e-07" in text


def test_explorer_text_follows_the_sliders() -> None:
    box = activation_explorer()
    controls, summary, _output = box.children
    menu, z_slider, depth_slider = controls.children
    assert menu.value == "sigmoid" and depth_slider.value == 10 and tuple(z_slider.value) == (-6.0, 6.0)
    first = summary.value
    assert first == activation_summary("sigmoid", (-6.0, 6.0), 10)
    depth_slider.value = 20
    assert summary.value != first and "after 20 layers" in summary.value
    z_slider.value = (1.0, 6.0)
    assert "[1, 6]" in summary.value
    menu.value = "relu"
    assert summary.value.startswith("relu: the largest f′ on [1, 6] is 1")
    plt.close("all")


def test_plots_are_labelled_including_a_range_without_gradient() -> None:
    for name, z_range in (("gelu", (-6.0, 6.0)), ("relu", (-5.0, -1.0))):
        fig = plot_activation_through_depth(name, z_range, 5)
        for ax in fig.axes:
            assert ax.get_title() and ax.get_xlabel() and ax.get_ylabel()
        plt.close(fig)
