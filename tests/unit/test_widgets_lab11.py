"""Lab 11's fill-in-the-blank explorer builds headless with a tiny untrained model; its text follows the slider."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from dlcourse.mlm import CharTokenizer  # noqa: E402
from dlcourse.mlm_model import BertConfig, TinyBert  # noqa: E402
from dlcourse.widgets import fill_mask_explorer, fill_mask_summary  # noqa: E402


def _tiny():
    torch.manual_seed(0)
    tokenizer = CharTokenizer.from_text("To be or not to be, that is the question.\n")
    model = TinyBert(BertConfig(tokenizer.vocab_size, max_len=32, d_model=16, n_heads=2, n_layers=1, d_ff=32))
    return model, tokenizer


def test_summary_shows_spaces_and_probabilities() -> None:
    assert fill_mask_summary([(" ", 0.5), ("e", 0.25)]) == "“␣” 0.500 · “e” 0.250"


def test_explorer_text_follows_the_slider_and_the_text() -> None:
    model, tokenizer = _tiny()
    box = fill_mask_explorer(model, tokenizer, "To be or not to b[MASK]", k=3)
    line, slider, summary, _output = box.children
    first = summary.value
    assert first.startswith("<b>top 3:") and first.count("·") == 2
    slider.value = 5
    assert summary.value != first and summary.value.count("·") == 4
    line.value = "no mask here"
    assert "No mask token found" in summary.value
    plt.close("all")
