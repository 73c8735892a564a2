"""Interactive widgets for the labs. Each also runs headless (CI), where it simply renders once."""

from __future__ import annotations

from typing import Sequence

import numpy as np


def image_browser(images: np.ndarray, labels: Sequence, *, class_names: Sequence[str] | None = None):
    """A slider over a set of images that shows the chosen image and its label."""
    import ipywidgets as widgets
    import matplotlib.pyplot as plt

    slider = widgets.IntSlider(value=0, min=0, max=len(images) - 1, description="image", continuous_update=False)
    caption = widgets.Label()
    output = widgets.Output()

    def draw(index: int) -> None:
        label = int(labels[index])
        name = class_names[label] if class_names else str(label)
        caption.value = f"image {index}: label {name}"
        with output:
            output.clear_output(wait=True)
            fig, ax = plt.subplots(figsize=(2.2, 2.2))
            ax.imshow(np.asarray(images[index]).squeeze(), cmap="gray_r")
            ax.set_title(f"label {name}")
            ax.axis("off")
            plt.show()

    slider.observe(lambda change: draw(change["new"]), names="value")
    draw(0)
    return widgets.VBox([slider, caption, output])
