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
