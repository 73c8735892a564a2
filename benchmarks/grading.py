"""What grading a class costs: `dlcourse grade` on copies of a solved lab 00 and one that loops forever.

Prints seconds per submission for --jobs 1 and --jobs 2, with the sandbox (bubblewrap) and without
(--no-sandbox), and how much longer the looping notebook took than a solved one next to the
per-cell timeout (the loop should cost about that timeout).

    python benchmarks/grading.py [--students 6] [--timeout 30] [--fast]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import tempfile
import time
from pathlib import Path

from dlcourse.grading import grade_all, student_answers
from dlcourse.sandbox import sandbox_problem
from dlcourse.notebooks import find_exercises, read, write
from dlcourse.tables import format_table

ROOT = Path(__file__).resolve().parents[1]
LOOP = "while True:\n    pass"


def make_class(folder: Path, students: int) -> list[Path]:
    """``students`` solved copies of lab 00 and one whose first exercise never ends."""
    skeleton = read(ROOT / "labs" / "00_setup.ipynb")
    answers = student_answers(read(ROOT / "solutions" / "00_setup.ipynb"))
    paths = []
    for name, chosen in [*((f"solved{i:02d}", answers) for i in range(students)), ("looping", {**answers, "00.1": LOOP})]:
        nb = copy.deepcopy(skeleton)
        for ex in find_exercises(nb, solution=False):
            nb.cells[ex.exercise_index].source = chosen[ex.id]
        paths.append(folder / f"{name}.ipynb")
        write(nb, paths[-1])
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=6, help="solved copies of lab 00")
    parser.add_argument("--timeout", type=float, default=30.0, help="per-cell timeout in seconds")
    parser.add_argument("--fast", action="store_true",
                        help="one solved copy, a 15 s timeout, --jobs 2 only, sandboxed where bubblewrap runs")
    args = parser.parse_args()
    sandboxes = [True, False] if not sandbox_problem() else [False]
    students, timeout, job_counts = (1, 15.0, [2]) if args.fast else (args.students, args.timeout, [1, 2])
    runs = [(jobs, sandboxed) for jobs in job_counts for sandboxed in (sandboxes[:1] if args.fast else sandboxes)]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        paths = make_class(Path(tmp), students)
        for jobs, sandboxed in runs:
            start = time.perf_counter()
            reports = grade_all(paths, "00", ROOT, cell_timeout=timeout, notebook_timeout=20 * timeout + 300,
                                jobs=jobs, progress=False, sandboxed=sandboxed)
            wall = time.perf_counter() - start
            solved = [r.seconds for r in reports if r.student != "looping"]
            looping = next(r for r in reports if r.student == "looping")
            failed = [(r.student, r.exercises) for r in reports if r.student != "looping" and r.passed != r.total]
            assert not failed, f"a solved copy failed: {failed}"
            assert [row.status for row in looping.exercises] == ["timeout", "passed"], looping.exercises
            rows.append((jobs, "bwrap" if sandboxed else "none", len(reports), f"{wall:.1f}", f"{wall / len(reports):.1f}",
                         f"{statistics.median(solved):.1f}", f"{looping.seconds:.1f}",
                         f"{looping.seconds - statistics.median(solved):.1f}", f"{timeout:.0f}"))
    print(f"dlcourse grade on lab 00 (FAST mode, one fresh kernel per notebook), {students} solved + 1 looping")
    print(format_table(["jobs", "sandbox", "notebooks", "wall s", "s/notebook", "solved s (median)", "looping s",
                        "loop's extra s", "cell timeout s"], rows))


if __name__ == "__main__":
    main()
