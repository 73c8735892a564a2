"""dlcourse.tf_distribute's command line: bad options fail with a sentence before TensorFlow starts.
(The job itself runs in lab 12, in every notebook test.)"""

from __future__ import annotations

import subprocess
import sys


def test_unknown_batchnorm_mode_is_refused() -> None:
    out = subprocess.run([sys.executable, "-m", "dlcourse.tf_distribute", "--out", "x", "--bn-modes", "frozen,magic"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "unknown --bn-modes ['magic']" in out.stderr
    assert "tensorflow" not in out.stderr.lower()
