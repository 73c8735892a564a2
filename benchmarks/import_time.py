"""How long does `import dlcourse` take, next to the frameworks it keeps out of that import?

Each import runs in a fresh interpreter, several times; the table shows the median wall time
and whether TensorFlow or PyTorch ended up imported.
"""

from __future__ import annotations

import statistics
import subprocess
import sys

from dlcourse.tables import format_table

STATEMENTS = {
    "python (nothing)": "pass",
    "import dlcourse": "import dlcourse",
    "import dlcourse.data, .check, .env": "import dlcourse.data, dlcourse.check, dlcourse.env",
    "import torch": "import torch",
    "import tensorflow": "import tensorflow",
}
PROBE = "import sys, time; t = time.perf_counter(); {stmt}; dt = time.perf_counter() - t; print(dt, 'torch' in sys.modules, 'tensorflow' in sys.modules)"


def measure(statement: str, repeats: int) -> tuple[float, bool, bool]:
    times, torch_in, tf_in = [], False, False
    for _ in range(repeats):
        out = subprocess.run([sys.executable, "-c", PROBE.format(stmt=statement)], capture_output=True, text=True, check=True)
        seconds, torch_flag, tf_flag = out.stdout.split()
        times.append(float(seconds))
        torch_in, tf_in = torch_flag == "True", tf_flag == "True"
    return statistics.median(times), torch_in, tf_in


def main(repeats: int = 5) -> None:
    rows = []
    for label, statement in STATEMENTS.items():
        seconds, torch_in, tf_in = measure(statement, repeats if "tensorflow" not in statement else 2)
        rows.append((label, f"{seconds * 1000:.0f}", "yes" if torch_in else "no", "yes" if tf_in else "no"))
    print(f"import times, median of fresh interpreters ({sys.version.split()[0]})")
    print(format_table(["statement", "ms", "torch loaded", "tensorflow loaded"], rows))


if __name__ == "__main__":
    main()
