"""Lab 15 (Part IV): pre-train, then fine-tune. The shipped tiny BERT (``shipped``), the downstream question task
(``task``), fine-tuning methods and their comparison (``classify``), LoRA (``lora``) and the bridge to Hugging Face
``transformers`` (``hf``). Nothing here is imported by ``import dlcourse``: transformers, peft and safetensors load
only when lab 15 asks for them.
"""

import importlib
from types import ModuleType

from dlcourse.errors import DlcourseError


class MissingPackageError(DlcourseError):
    """A package lab 15 needs (transformers, peft, safetensors) is not installed."""


def require(name: str) -> ModuleType:
    """Import ``name``, or say in one sentence how to install it (Colab, for one, may lack peft)."""
    try:
        return importlib.import_module(name)
    except ImportError as error:
        raise MissingPackageError(f"Lab 15 needs the package {name!r}, which is not installed here: run "
                                  f"`pip install {name}` (the course's own environment, `make lab`, has it), "
                                  "then run the cell again.") from error
