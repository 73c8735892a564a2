"""Small plotting helpers shared by the labs (matplotlib, imported on first use)."""

from __future__ import annotations

from typing import Sequence

import numpy as np


def show_images(images: np.ndarray, labels: Sequence | None = None, *, ncols: int = 10,
                size: float = 1.2, title: str | None = None, class_names: Sequence[str] | None = None):
    """A grid of greyscale images with their labels underneath; returns the figure."""
    import matplotlib.pyplot as plt

    images = np.asarray(images)
    if images.ndim == 4:  # drop a channel axis of length 1, wherever it is
        images = images.squeeze(axis=1 if images.shape[1] == 1 else -1)
    n = len(images)
    nrows = max(1, -(-n // ncols))
    fig, axes = plt.subplots(nrows, min(n, ncols), figsize=(size * min(n, ncols), size * nrows + 0.3), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            ax.imshow(images[i], cmap="gray_r")
            if labels is not None:
                label = labels[i]
                ax.set_title(class_names[int(label)] if class_names else str(label), fontsize=9)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
