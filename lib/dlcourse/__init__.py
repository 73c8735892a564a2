"""dlcourse: the companion library of an open deep-learning course.

One module per concern (``data``, ``env``, ``check``, ``notebooks``, ``cli``) and one checks
module per lab (``dlcourse.checks.lab00`` ...). Importing the package is cheap: TensorFlow and
PyTorch are imported only by the functions that need them.
"""

from dlcourse.errors import DlcourseError, show_errors_as_sentences

__version__ = "0.1.0"
__all__ = ["DlcourseError", "__version__"]

show_errors_as_sentences()
