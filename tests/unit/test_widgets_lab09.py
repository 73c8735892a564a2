"""Lab 09's attention explorer builds headless, and its text follows the query slider."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from dlcourse.plot import plot_attention  # noqa: E402
from dlcourse.widgets import attention_explorer, attention_summary, plot_attention_row  # noqa: E402

TOKENS = ["the", "king", "and", "<queen>"]
WEIGHTS = np.array([[0.7, 0.1, 0.1, 0.1],
                    [0.05, 0.15, 0.2, 0.6],
                    [0.25, 0.25, 0.25, 0.25],
                    [0.1, 0.5, 0.3, 0.1]])


def test_summary_names_the_query_and_its_top_keys() -> None:
    text = attention_summary(TOKENS, WEIGHTS, 1)
    assert text.startswith("query 1 “king” attends most to: “<queen>” (3) 0.600, “and” (2) 0.200")
    assert attention_summary(TOKENS, WEIGHTS, 2, top=1).endswith("“the” (0) 0.250")  # ties: the first key


def test_explorer_text_follows_the_slider() -> None:
    box = attention_explorer(TOKENS, WEIGHTS, start=1)
    slider, summary, _output = box.children
    assert slider.value == 1 and slider.max == len(TOKENS) - 1
    first = summary.value
    assert "“king”" in first and "&lt;queen&gt;" in first  # token text is escaped in the HTML
    slider.value = 3
    assert summary.value != first and "query 3" in summary.value and "“king” (1) 0.500" in summary.value
    plt.close("all")


def test_plots_are_labelled() -> None:
    for fig in (plot_attention_row(TOKENS, WEIGHTS, 0), plot_attention(WEIGHTS, TOKENS, title="demo")):
        ax = fig.axes[0]
        assert ax.get_title() and ax.get_xlabel() and ax.get_ylabel()
        assert [t.get_text() for t in ax.get_xticklabels()] == TOKENS
        plt.close(fig)
