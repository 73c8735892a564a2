"""dlcourse.plot and dlcourse.widgets render headless and react to input."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402

from dlcourse.plot import show_images  # noqa: E402
from dlcourse.widgets import image_browser  # noqa: E402


def _images(n: int) -> np.ndarray:
    return np.arange(n * 28 * 28, dtype=np.float32).reshape(n, 28, 28) % 255


def test_show_images_grid_labels_and_channel_axes() -> None:
    fig = show_images(_images(12), list(range(12)), ncols=5, title="t")
    assert len(fig.axes) == 15 and fig.axes[3].get_title() == "3"
    assert not fig.axes[14].images, "padding cells stay empty"
    fig = show_images(_images(3)[:, None], [0, 1, 2], class_names=["zero", "one", "two"])
    assert [ax.get_title() for ax in fig.axes] == ["zero", "one", "two"]
    assert show_images(_images(2)[..., None]).axes[0].images[0].get_array().shape == (28, 28)


def test_image_browser_follows_the_slider() -> None:
    labels = np.array([3, 1, 4, 1, 5])
    box = image_browser(_images(5), labels, class_names=[str(i) * 2 for i in range(10)])
    slider, caption, _output = box.children
    assert (slider.min, slider.max, slider.value) == (0, 4, 0)
    assert caption.value == "image 0: label 33"
    slider.value = 4
    assert caption.value == "image 4: label 55"


def test_history_confusion_and_mistake_plots() -> None:
    import numpy as np
    import pytest

    from dlcourse.plot import plot_confusion_matrix, plot_history, show_mistakes

    fig = plot_history({"loss": [1.0, 0.5], "val_loss": [1.1, 0.7], "accuracy": [0.6, 0.8]}, title="t")
    assert [ax.get_ylabel() for ax in fig.axes] == ["loss", "accuracy"]
    assert [line.get_label() for line in fig.axes[0].lines] == ["train", "validation"]
    fig = plot_history({"val_accuracy": [0.6, 0.7], "accuracy": [0.5, 0.8], "loss": [1.0, 0.5]}, restored_epoch=2)
    assert [ax.get_ylabel() for ax in fig.axes] == ["loss", "accuracy"], "loss first, whatever the dict's order"
    assert fig.axes[1].get_legend_handles_labels()[1][-1] == "restored (epoch 2)"
    with pytest.raises(ValueError, match="at least one curve"):
        plot_history({})
    fig = plot_confusion_matrix(np.array([[5, 1], [2, 7]]), ["cat", "dog"])
    assert fig.axes[0].get_xlabel() == "predicted class" and len(fig.axes[0].texts) == 4
    probabilities = np.array([[0.9, 0.1], [0.2, 0.8], [0.4, 0.6], [0.3, 0.7]])
    fig = show_mistakes(np.zeros((4, 28, 28)), [1, 1, 0, 0], probabilities, n=5)
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles == ["1→0 (0.90)", "0→1 (0.70)", "0→1 (0.60)"]  # most confident mistake first
    assert "3 wrong of 4" in fig._suptitle.get_text()
    with pytest.raises(ValueError, match="no mistakes"):
        show_mistakes(np.zeros((1, 28, 28)), [0], np.array([[0.9, 0.1]]))
