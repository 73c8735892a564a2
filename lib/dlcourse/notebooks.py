"""Single-source labs: solutions/NN_name.ipynb is the source, labs/NN_name.ipynb is generated.

In a solution notebook, an exercise cell carries ``{"dlcourse": {"exercise": "NN.k"}}`` in its
metadata and marks the answer with nbgrader's markers::

    def relu(x):
        ### BEGIN SOLUTION
        return np.maximum(0, x)
        ### END SOLUTION

The lab version replaces an indented region with ``raise NotImplementedError(...)`` and a
top-level region (which must assign names) with ``name = None``; the check that follows
recognises both as "not attempted yet". Outputs, execution counts and execution metadata are
cleared; everything else is kept as it is.
"""

from __future__ import annotations

import ast
import copy
import os
import re
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import nbformat
from nbformat import NotebookNode

from dlcourse.errors import DlcourseError
from dlcourse.student import STUB_MESSAGE

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
NB_VERSION = 4
_REGION = re.compile(rf"^(?P<indent>[ \t]*){re.escape(BEGIN)}[ \t]*\n(?P<body>.*?)^[ \t]*{re.escape(END)}[ \t]*(\n|$)",
                     re.MULTILINE | re.DOTALL)
_ID = re.compile(r"^\d\d\.\d+$")
_NAME = re.compile(r"^(\d\d)_[a-z0-9_]+\.ipynb$")

# The first code cell of every notebook (see tests/test_notebook_structure.py).
COLAB_SETUP = '''\
# Colab set-up: on Google Colab this installs dlcourse and keeps data in a writable cache.
# Everywhere else (JupyterLab, Binder, JupyterHub, the course's automatic runs) it does nothing.
import os, subprocess, sys
if "google.colab" in sys.modules:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "dlcourse @ git+https://github.com/dlcourse/dlcourse"], check=True)
    os.environ.setdefault("DLCOURSE_CACHE", "/content/dlcourse-data")'''


class NotebookError(DlcourseError):
    """A solution notebook breaks the course conventions."""


@dataclass(frozen=True)
class ExerciseCells:
    id: str
    exercise_index: int
    check_index: int


def read(path: str | Path) -> NotebookNode:
    try:
        return nbformat.read(str(path), as_version=NB_VERSION)
    except FileNotFoundError:
        raise NotebookError(f"{path} does not exist.") from None
    except Exception as exc:  # invalid JSON, not a notebook
        raise NotebookError(f"{path} is not a readable Jupyter notebook ({type(exc).__name__}: {exc}).") from None


def dumps(nb: NotebookNode) -> str:
    """The exact text a notebook is saved as (so drift checks compare like with like)."""
    return nbformat.writes(nb, version=NB_VERSION) + "\n"


def write(nb: NotebookNode, path: str | Path) -> None:
    """Write atomically: a reader (JupyterLab, another test process) never sees half a notebook."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    partial.write_text(dumps(nb), encoding="utf-8")
    os.replace(partial, path)


def meta(cell: NotebookNode) -> dict:
    return cell.get("metadata", {}).get("dlcourse", {})


def lab_notebook(folder: Path, number: str) -> Path | None:
    """The notebook NN_name.ipynb of lab ``number`` in ``folder``, or None."""
    found = sorted(Path(folder).glob(f"{str(number).zfill(2)}_*.ipynb"))
    return found[0] if found else None


def lab_number(path: str | Path) -> str:
    match = _NAME.match(Path(path).name)
    if not match:
        raise NotebookError(f"{Path(path).name} should be named NN_name.ipynb (two digits, lower-case name).")
    return match.group(1)


# ------------------------------------------------------------------------------ regions

def solution_regions(source: str) -> list[re.Match]:
    regions = list(_REGION.finditer(source))
    if source.count(BEGIN) != len(regions) or source.count(END) != len(regions):
        raise NotebookError(f"unbalanced {BEGIN} / {END} markers in:\n{source}")
    return regions


def _assigned_names(body: str) -> list[str]:
    names: list[str] = []
    for node in ast.parse(textwrap.dedent(body)).body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        for target in targets:
            for sub in ast.walk(target):
                if isinstance(sub, ast.Name) and sub.id not in names:
                    names.append(sub.id)
    return names


def stub_for(region: re.Match, exercise_id: str) -> str:
    """What the student sees in place of a solution region."""
    indent, body = region.group("indent"), region.group("body")
    if indent:
        return (f"{indent}# YOUR CODE HERE\n"
                f"{indent}raise NotImplementedError(\"{STUB_MESSAGE.format(exercise_id=exercise_id)}\")\n")
    names = _assigned_names(body)
    if not names:
        raise NotebookError(f"exercise {exercise_id}: a top-level solution must assign the answer to a name, so the lab can set it to None.")
    return "".join(f"{name} = None  # YOUR ANSWER: replace None\n" for name in names)


def replace_regions(source: str, replacement: str | Sequence[str | None] | None, exercise_id: str) -> str:
    """Replace every solution region with the stub (replacement=None) or the given code.

    A cell with several regions (a class whose methods the student completes) may take a list
    with one entry per region, in order; an entry of None keeps that region's solution, so a
    wrong answer can break one method and leave the others right.
    """
    regions = solution_regions(source)
    if isinstance(replacement, (list, tuple)) and len(replacement) != len(regions):
        raise NotebookError(f"exercise {exercise_id}: {len(replacement)} replacements for {len(regions)} solution regions.")
    counter = iter(range(len(regions)))

    def substitute(region: re.Match) -> str:
        code = replacement[next(counter)] if isinstance(replacement, (list, tuple)) else replacement
        if replacement is None:
            return stub_for(region, exercise_id)
        if code is None:
            return region.group(0)
        return textwrap.indent(textwrap.dedent(code).rstrip("\n") + "\n", region.group("indent"))

    return _REGION.sub(substitute, source).rstrip("\n")


# ------------------------------------------------------------------------------ structure

def find_exercises(nb: NotebookNode, solution: bool = True) -> list[ExerciseCells]:
    """Each exercise cell with the check cell that follows it; raises on a broken layout.

    In a solution (``solution=True``) every exercise cell must hold solution markers; in a lab
    or a student's copy they are gone.
    """
    found: list[ExerciseCells] = []
    pending: tuple[str, int] | None = None
    for index, cell in enumerate(nb.cells):
        info = meta(cell)
        if cell.cell_type != "code":
            continue
        has_markers = BEGIN in cell.source
        if has_markers and "exercise" not in info:
            raise NotebookError(f"cell {index} has solution markers but no dlcourse.exercise id in its metadata.")
        if "exercise" in info:
            if pending:
                raise NotebookError(f"exercise {pending[0]} has no check cell before the next exercise.")
            if not _ID.match(info["exercise"]) or (solution and not has_markers):
                raise NotebookError(f"cell {index}: exercise id {info['exercise']!r} must look like 'NN.k' and the cell needs solution markers.")
            solution_regions(cell.source)
            pending = (info["exercise"], index)
        elif "check" in info:
            if not pending or info["check"] != pending[0]:
                raise NotebookError(f"cell {index} checks exercise {info['check']!r}, which is not the exercise just above it.")
            found.append(ExerciseCells(pending[0], pending[1], index))
            pending = None
    if pending:
        raise NotebookError(f"exercise {pending[0]} has no check cell.")
    ids = [e.id for e in found]
    if len(ids) != len(set(ids)):
        raise NotebookError(f"exercise ids repeat: {ids}.")
    return found


def validate_solution(nb: NotebookNode, path: str | Path) -> None:
    """Raise NotebookError unless the notebook follows the course conventions."""
    number = lab_number(path)
    code = [c for c in nb.cells if c.cell_type == "code"]
    if not code or code[0].source != COLAB_SETUP:
        raise NotebookError(f"{Path(path).name}: the first code cell must be the standard Colab set-up cell (dlcourse.notebooks.COLAB_SETUP).")
    parameters = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    if len(parameters) != 1 or "FAST" not in parameters[0].source:
        raise NotebookError(f"{Path(path).name}: exactly one cell must be tagged 'parameters' and define FAST.")
    for ex in find_exercises(nb):
        if ex.id.split(".")[0] != number:
            raise NotebookError(f"{Path(path).name}: exercise {ex.id} belongs to lab {ex.id[:2]}, not {number}.")


# ------------------------------------------------------------------------------ build

def clean_outputs(nb: NotebookNode) -> NotebookNode:
    """A copy with outputs, execution counts and run metadata removed."""
    nb = copy.deepcopy(nb)
    nb.metadata.pop("papermill", None)
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
        cell.metadata.pop("papermill", None)
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    return nb


def build_lab(solution: NotebookNode) -> NotebookNode:
    """The student version of a solution notebook."""
    lab = clean_outputs(solution)
    for ex in find_exercises(lab):
        cell = lab.cells[ex.exercise_index]
        cell.source = replace_regions(cell.source, None, ex.id)
    return lab


def back_up(target: Path) -> Path | None:
    """Keep a timestamped copy of a lab before it is regenerated: a student may have worked in it."""
    if not target.is_file():
        return None
    from datetime import datetime

    backup_dir = target.parent.parent / "build" / "lab-backups"
    backup_dir.mkdir(parents=True, exist_ok=True)
    backup = backup_dir / f"{target.stem}.{datetime.now():%Y%m%d-%H%M%S-%f}.ipynb"
    backup.write_bytes(target.read_bytes())
    return backup


def build_labs(solutions_dir: str | Path, labs_dir: str | Path, check: bool = False) -> list[str]:
    """Regenerate labs/ from solutions/; with ``check`` only report what differs. Returns names."""
    solutions = sorted(Path(solutions_dir).glob("[0-9][0-9]_*.ipynb"))
    if not solutions:
        raise NotebookError(f"no NN_name.ipynb notebooks in {solutions_dir}.")
    changed = []
    for source in solutions:
        nb = read(source)
        validate_solution(nb, source)
        target = Path(labs_dir) / source.name
        text = dumps(build_lab(nb))
        if not target.is_file() or target.read_text(encoding="utf-8") != text:
            changed.append(source.name)
            if not check:
                back_up(target)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(text, encoding="utf-8")
    expected = {s.name for s in solutions}
    changed += sorted(f"{p.name} (no solution)" for p in Path(labs_dir).glob("*.ipynb") if p.name not in expected)
    return changed
