"""Lab 04's learning-rate explorer builds headless, and its text follows the slider and the menu."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from dlcourse.widgets import learning_rate_explorer, learning_rate_summary  # noqa: E402


def test_summary_names_the_stability_limit_and_divergence() -> None:
    stable, path = learning_rate_summary("GD", 0.035, steps=50)
    assert stable.startswith("GD, lr 0.035: loss after 50 steps") and "2/L = 0.040" in stable
    assert path.shape == (51, 2) and np.all(np.isfinite(path))
    unstable, path = learning_rate_summary("GD", 0.05, steps=50)
    assert "diverges" in unstable and np.isnan(path[-1]).all()
    assert "2/L" not in learning_rate_summary("Adam", 0.05)[0], "the GD limit is only stated for GD"


def test_explorer_text_follows_the_slider_and_menu() -> None:
    box = learning_rate_explorer()
    (slider, menu), summary, _output = box.children[0].children, box.children[1], box.children[2]
    first = summary.value
    assert "GD, lr 0.02:" in first
    slider.value = 0.1
    assert summary.value != first and "diverges" in summary.value
    before = summary.value
    menu.value = "Adam"
    assert summary.value != before and summary.value.startswith("<b>Adam, lr 0.1")
    plt.close("all")


def test_paths_end_markers_differ_and_loss_curves_are_log_scale() -> None:
    from dlcourse import optim

    objective, _ = optim.ill_conditioned_quadratic(50.0)
    start = np.array([-4.0, 3.0])
    paths = {name: optim.run(step, objective.grad, start, 30, lr=0.01) for name, step in optim.OPTIMIZERS.items()}
    fig, (left, right) = plt.subplots(1, 2)
    optim.plot_paths(left, objective, paths)
    ends = [line for line in left.get_lines() if line.get_label().endswith(": end")]
    assert [line.get_label() for line in ends] == [f"{name}: end" for name in paths], "each end is named in the legend"
    assert len({line.get_marker() for line in ends}) == len(paths), "and has a shape of its own"
    optim.plot_loss_curves(right, objective, paths)
    assert right.get_yscale() == "log" and [line.get_label() for line in right.get_lines()] == list(paths)
    np.testing.assert_allclose(right.get_lines()[0].get_ydata()[0], objective.f(start))
    plt.close(fig)
