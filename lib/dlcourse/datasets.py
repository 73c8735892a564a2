"""The registry of course data files: names, sizes, pinned SHA-256 and download URLs.

The checksums are the ones Keras and torchvision pin for the same files (see
shared/data/SOURCES.md). Nothing here touches the disk or the network.
"""

from __future__ import annotations

from dataclasses import dataclass

_MNIST_URLS = (
    "http://yann.lecun.com/exdb/mnist/",  # canonical: the original site
    "https://ossci-datasets.s3.amazonaws.com/mnist/",  # torchvision's mirror, same bytes
)
_FASHION_URLS = (
    "https://storage.googleapis.com/tensorflow/tf-keras-datasets/",  # keras.datasets.fashion_mnist
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",  # torchvision's mirror
)
_SHAKESPEARE_URLS = (
    "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/",
)


@dataclass(frozen=True)
class DataFile:
    """One file of a dataset, as published at its canonical URL."""

    dataset: str
    name: str
    size: int
    sha256: str
    base_urls: tuple[str, ...]

    @property
    def relpath(self) -> str:
        """Where the file lives below a data folder, e.g. ``mnist/t10k-labels-idx1-ubyte.gz``."""
        return f"{self.dataset}/{self.name}"

    @property
    def urls(self) -> tuple[str, ...]:
        return tuple(base + self.name for base in self.base_urls)


def _files(dataset: str, urls: tuple[str, ...], rows: list[tuple[str, int, str]]) -> tuple[DataFile, ...]:
    return tuple(DataFile(dataset, name, size, sha, urls) for name, size, sha in rows)


DATASETS: dict[str, tuple[DataFile, ...]] = {
    "mnist": _files("mnist", _MNIST_URLS, [
        ("train-images-idx3-ubyte.gz", 9912422, "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"),
        ("train-labels-idx1-ubyte.gz", 28881, "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"),
        ("t10k-images-idx3-ubyte.gz", 1648877, "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"),
        ("t10k-labels-idx1-ubyte.gz", 4542, "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"),
    ]),
    "fashion-mnist": _files("fashion-mnist", _FASHION_URLS, [
        ("train-images-idx3-ubyte.gz", 26421880, "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84"),
        ("train-labels-idx1-ubyte.gz", 29515, "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845"),
        ("t10k-images-idx3-ubyte.gz", 4422102, "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073"),
        ("t10k-labels-idx1-ubyte.gz", 5148, "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5"),
    ]),
    "tinyshakespeare": _files("tinyshakespeare", _SHAKESPEARE_URLS, [
        ("input.txt", 1115394, "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"),
    ]),
}

FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)


def dataset_files(name: str) -> tuple[DataFile, ...]:
    """The files of dataset `name`, or a clear error listing the known names."""
    from dlcourse.errors import DlcourseError

    try:
        return DATASETS[name]
    except KeyError:
        known = ", ".join(sorted(DATASETS))
        raise DlcourseError(f"There is no dataset called {name!r}; the course knows {known}.") from None


def image_file(dataset: str, split: str, kind: str) -> DataFile:
    """The IDX file of `dataset` for split 'train'/'test' and kind 'images'/'labels'."""
    prefix = "train" if split == "train" else "t10k"
    ndim = 3 if kind == "images" else 1
    wanted = f"{prefix}-{kind}-idx{ndim}-ubyte.gz"
    return next(f for f in dataset_files(dataset) if f.name == wanted)
