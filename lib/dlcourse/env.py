"""The lab environment: FAST mode, seeding, device choice and an environment report.

TensorFlow and PyTorch are imported only inside the functions that need them, so
``import dlcourse`` stays quick and a lab that uses one framework never pays for the other.
"""

from __future__ import annotations

import os
import platform
import random
import sys
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from dlcourse.errors import DlcourseError

Framework = Literal["torch", "tensorflow"]
_TRUE = {"1", "true", "yes", "on"}


def fast_default() -> bool:
    """FAST mode from $DLCOURSE_FAST: CI sets it to keep runs short; students leave it unset."""
    return os.environ.get("DLCOURSE_FAST", "").strip().lower() in _TRUE


def seed_everything(seed: int = 0, *, deterministic: bool = False) -> list[str]:
    """Seed Python, NumPy, and PyTorch / TensorFlow if they are imported; return what was seeded.

    Import your framework first, then call this: seeding a framework means importing it, and
    a lab should not pay seconds for a framework it does not use. ``deterministic=True`` also
    asks the frameworks for deterministic kernels (slower on GPU, identical runs).
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**32:
        raise DlcourseError(f"seed must be a whole number from 0 to 2**32 - 1, not {seed!r}.")
    seed = int(seed)
    os.environ["PYTHONHASHSEED"] = str(seed)  # affects subprocesses (e.g. torchrun workers)
    random.seed(seed)
    np.random.seed(seed)
    seeded = ["random", "numpy"]
    if "torch" in sys.modules:
        import torch

        torch.manual_seed(seed)  # also seeds every CUDA device
        if deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)
        seeded.append("torch")
    if "tensorflow" in sys.modules or "keras" in sys.modules:
        import keras

        keras.utils.set_random_seed(seed)  # python, numpy and the backend (TensorFlow)
        if deterministic and "tensorflow" in sys.modules:
            import tensorflow as tf

            tf.config.experimental.enable_op_determinism()
        seeded.append("tensorflow/keras")
    return seeded


def pick_device(framework: Framework = "torch") -> Any:
    """The fastest device available: CUDA, then Apple MPS, then CPU (torch); GPU or CPU (TF).

    Set DLCOURSE_DEVICE=cpu to force the CPU (e.g. to compare timings).
    """
    forced = os.environ.get("DLCOURSE_DEVICE", "").strip().lower()
    if framework == "torch":
        import torch

        if forced:
            return torch.device(forced)
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if framework == "tensorflow":
        if forced == "cpu":
            return "/CPU:0"
        import tensorflow as tf

        return "/GPU:0" if tf.config.list_physical_devices("GPU") else "/CPU:0"
    raise DlcourseError(f"framework must be 'torch' or 'tensorflow', not {framework!r}.")


@dataclass
class EnvReport:
    """Rows of (what, value); prints as an aligned table and renders as HTML in notebooks."""

    rows: list[tuple[str, str]] = field(default_factory=list)

    def add(self, key: str, value: object) -> None:
        self.rows.append((key, str(value)))

    def __str__(self) -> str:
        width = max((len(k) for k, _ in self.rows), default=0)
        return "\n".join(f"{k:<{width}}  {v}" for k, v in self.rows)

    def _repr_html_(self) -> str:
        from html import escape

        body = "".join(f"<tr><th style='text-align:left'>{escape(k)}</th><td style='text-align:left'>{escape(v)}</td></tr>" for k, v in self.rows)
        return f"<table>{body}</table>"

    def __repr__(self) -> str:
        return str(self)

    def as_dict(self) -> dict[str, str]:
        return dict(self.rows)


def _torch_rows(report: EnvReport) -> None:
    try:
        import torch
    except ImportError:
        report.add("torch", "not installed")
        return
    report.add("torch", torch.__version__)
    report.add("torch device", pick_device("torch"))
    if torch.cuda.is_available():
        report.add("torch CUDA", f"{torch.version.cuda}, {torch.cuda.get_device_name(0)}")
    report.add("torch threads", torch.get_num_threads())


def _tensorflow_rows(report: EnvReport) -> None:
    try:
        import tensorflow as tf
    except ImportError:
        report.add("tensorflow", "not installed")
        return
    import keras

    report.add("tensorflow", tf.__version__)
    report.add("keras", keras.__version__)
    gpus = tf.config.list_physical_devices("GPU")
    report.add("tensorflow devices", ", ".join(d.name for d in tf.config.list_physical_devices()) or "none")
    report.add("tensorflow device", "/GPU:0" if gpus else "/CPU:0")
    report.add("tensorflow oneDNN kernels", {True: "on", False: "off", None: "unknown"}[tensorflow_onednn()])


ONEDNN_VARIABLE = "TF_ENABLE_ONEDNN_OPTS"  # read once, when TensorFlow loads: set it before `import tensorflow`


def tensorflow_onednn() -> bool | None:
    """Whether this TensorFlow process runs oneDNN's CPU kernels (None if the build cannot say).

    TensorFlow turns them on by default only on some CPUs; ``TF_ENABLE_ONEDNN_OPTS=1`` in the environment before
    TensorFlow is imported turns them on anywhere (labs 07, 08, 12 and 13 set it; it is much faster for their CNN).
    """
    try:
        from tensorflow.python.util import _pywrap_util_port  # private, so the answer may be unknown
    except ImportError:
        return None
    return bool(_pywrap_util_port.IsMklEnabled())


def _data_rows(report: EnvReport) -> None:
    from dlcourse.data import DataError, known_datasets, verify_dataset

    for name in known_datasets():
        try:
            statuses = verify_dataset(name)
        except DataError as exc:
            report.add(f"data: {name}", f"problem: {exc}")
            continue
        if all(s.ok for s in statuses):
            folder = statuses[0].path.parent if statuses[0].path else "?"
            report.add(f"data: {name}", f"verified, {len(statuses)} file(s) in {folder}")
        else:
            bad = next(s for s in statuses if not s.ok)
            report.add(f"data: {name}", f"not ready: {bad.message}")


def report(frameworks: bool = True, data: bool = True) -> EnvReport:
    """Versions, devices, threads and where each dataset was found (and whether it verified)."""
    import dlcourse

    rep = EnvReport()
    rep.add("python", f"{platform.python_version()} ({sys.executable})")
    rep.add("platform", f"{platform.system()} {platform.machine()}")
    rep.add("CPU cores", os.cpu_count())
    rep.add("dlcourse", dlcourse.__version__)
    rep.add("numpy", np.__version__)
    rep.add("FAST mode", fast_default())
    if frameworks:
        _torch_rows(rep)
        _tensorflow_rows(rep)
    if data:
        rep.add("DLCOURSE_DATA", os.environ.get("DLCOURSE_DATA", "(unset)"))
        _data_rows(rep)
    return rep


def kernel_usage() -> str:
    """'This kernel has run for 412 s; its memory peaked at 1,830 MiB.' (peak resident memory where the
    system reports it: Linux and macOS; elsewhere the current size)."""
    import time

    import psutil

    process = psutil.Process()
    seconds = time.time() - process.create_time()
    try:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        peak_mib = peak / 2**20 if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB on Linux
        what = "its memory peaked at"
    except ImportError:  # Windows
        peak_mib, what = process.memory_info().rss / 2**20, "it now holds"
    return f"This kernel has run for {seconds:,.0f} s; {what} {peak_mib:,.0f} MiB."
