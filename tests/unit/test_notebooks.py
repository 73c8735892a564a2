"""dlcourse.notebooks: stubs, structure validation, lab generation and drift detection."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from dlcourse.notebooks import (COLAB_SETUP, NotebookError, build_lab, build_labs, find_exercises, read,
                                replace_regions, validate_solution, write)

FUNCTION = '''def relu(x):
    """Elementwise max(0, x)."""
    ### BEGIN SOLUTION
    return np.maximum(0, x)
    ### END SOLUTION'''
VALUE = '''# compute z by hand
### BEGIN SOLUTION
z = 1.4
a, (b, c) = 1, (2, 3)
### END SOLUTION
print("after")'''


def _cell(source: str, **dlcourse) -> nbformat.NotebookNode:
    cell = new_code_cell(source)
    if dlcourse:
        cell.metadata["dlcourse"] = dlcourse
    return cell


def solution_nb(*cells) -> nbformat.NotebookNode:
    params = new_code_cell("FAST = False")
    params.metadata["tags"] = ["parameters"]
    out = new_code_cell("print(1)")
    out.outputs = [nbformat.v4.new_output("stream", text="1\n")]
    out.execution_count = 3
    return new_notebook(cells=[new_markdown_cell("# Lab"), new_code_cell(COLAB_SETUP), params, out, *cells])


def test_function_region_becomes_not_implemented() -> None:
    stub = replace_regions(FUNCTION, None, "99.1")
    assert "np.maximum" not in stub and BEGIN_NOT_IN(stub)
    assert '    raise NotImplementedError("Exercise 99.1: replace this line with your code.")' in stub
    assert stub.startswith('def relu(x):\n    """Elementwise max(0, x)."""\n    # YOUR CODE HERE\n')
    compile(stub, "stub", "exec")


def BEGIN_NOT_IN(text: str) -> bool:
    return "BEGIN SOLUTION" not in text and "END SOLUTION" not in text


def test_top_level_region_becomes_none_assignments() -> None:
    stub = replace_regions(VALUE, None, "99.2")
    assert stub == ("# compute z by hand\nz = None  # YOUR ANSWER: replace None\na = None  # YOUR ANSWER: replace None\n"
                    "b = None  # YOUR ANSWER: replace None\nc = None  # YOUR ANSWER: replace None\nprint(\"after\")")


def test_top_level_region_without_assignment_is_refused() -> None:
    with pytest.raises(NotebookError, match="must assign the answer to a name"):
        replace_regions("### BEGIN SOLUTION\nprint(3)\n### END SOLUTION", None, "99.3")


def test_replacement_code_is_indented_into_place() -> None:
    wrong = replace_regions(FUNCTION, "return x\n", "99.1")
    assert wrong.endswith('    """Elementwise max(0, x)."""\n    return x')


TWO_METHODS = """class Pair:
    def first(self):
        ### BEGIN SOLUTION
        return 1
        ### END SOLUTION

    def second(self):
        ### BEGIN SOLUTION
        return 2
        ### END SOLUTION"""


def test_a_list_replaces_one_region_each_and_none_keeps_the_solution() -> None:
    wrong = replace_regions(TWO_METHODS, [None, "return -2"], "99.4")
    assert "        ### BEGIN SOLUTION\n        return 1\n        ### END SOLUTION\n" in wrong
    assert wrong.endswith("    def second(self):\n        return -2")
    assert replace_regions(TWO_METHODS, None, "99.4").count("raise NotImplementedError") == 2
    with pytest.raises(NotebookError, match="2 solution regions"):
        replace_regions(TWO_METHODS, ["return 0"], "99.4")


def test_unbalanced_markers_are_refused() -> None:
    nb = solution_nb(_cell("### BEGIN SOLUTION\nz = 1\n", exercise="99.1"), _cell("check(z)", check="99.1"))
    with pytest.raises(NotebookError, match="unbalanced"):
        find_exercises(nb)


@pytest.mark.parametrize("cells, phrase", [
    ([_cell(VALUE)], "no dlcourse.exercise id"),
    ([_cell(VALUE, exercise="99.1")], "has no check cell"),
    ([_cell(VALUE, exercise="99.1"), _cell("check(z)", check="99.2")], "not the exercise just above"),
    ([_cell(VALUE, exercise="9.1"), _cell("check(z)", check="9.1")], "must look like 'NN.k'"),
    ([_cell(VALUE, exercise="99.1"), _cell(FUNCTION, exercise="99.2"), _cell("c", check="99.2")], "no check cell before"),
])
def test_broken_exercise_layouts_are_named(cells, phrase) -> None:
    with pytest.raises(NotebookError, match=phrase):
        find_exercises(solution_nb(*cells))


def test_validate_solution_conventions(tmp_path: Path) -> None:
    good = solution_nb(_cell(VALUE, exercise="99.1"), _cell("check(z)", check="99.1"))
    validate_solution(good, tmp_path / "99_demo.ipynb")
    with pytest.raises(NotebookError, match="belongs to lab 99, not 98"):
        validate_solution(good, tmp_path / "98_demo.ipynb")
    with pytest.raises(NotebookError, match="NN_name.ipynb"):
        validate_solution(good, tmp_path / "demo.ipynb")
    no_colab = solution_nb()
    no_colab.cells[1].source = "import os"
    with pytest.raises(NotebookError, match="Colab set-up cell"):
        validate_solution(no_colab, tmp_path / "99_demo.ipynb")
    no_params = solution_nb()
    no_params.cells[2].metadata["tags"] = []
    with pytest.raises(NotebookError, match="tagged 'parameters'"):
        validate_solution(no_params, tmp_path / "99_demo.ipynb")


def test_build_lab_strips_solutions_and_outputs_but_keeps_the_rest() -> None:
    nb = solution_nb(_cell(VALUE, exercise="99.1"), _cell("check(z)", check="99.1"))
    nb.metadata["papermill"] = {"x": 1}
    lab = build_lab(nb)
    assert all(c.outputs == [] and c.execution_count is None for c in lab.cells if c.cell_type == "code")
    assert "papermill" not in lab.metadata
    assert "z = None" in lab.cells[4].source and lab.cells[4].metadata["dlcourse"] == {"exercise": "99.1"}
    assert [c.id for c in lab.cells] == [c.id for c in nb.cells]
    assert nb.cells[3].outputs, "the solution itself is not modified"


def test_build_labs_detects_drift_and_backs_up(tmp_path: Path) -> None:
    solutions, labs = tmp_path / "solutions", tmp_path / "labs"
    write(solution_nb(_cell(VALUE, exercise="99.1"), _cell("check(z)", check="99.1")), solutions / "99_demo.ipynb")
    assert build_labs(solutions, labs, check=True) == ["99_demo.ipynb"]
    assert not labs.exists(), "--check writes nothing"
    assert build_labs(solutions, labs) == ["99_demo.ipynb"]
    assert build_labs(solutions, labs, check=True) == []
    lab = read(labs / "99_demo.ipynb")
    lab.cells[4].source = "z = 1.4  # the student's answer"
    write(lab, labs / "99_demo.ipynb")
    assert build_labs(solutions, labs, check=True) == ["99_demo.ipynb"]
    build_labs(solutions, labs)
    backups = list((tmp_path / "build" / "lab-backups").glob("99_demo.*.ipynb"))
    assert len(backups) == 1 and "the student's answer" in backups[0].read_text()
    (labs / "98_orphan.ipynb").write_text("{}")
    assert build_labs(solutions, labs, check=True) == ["98_orphan.ipynb (no solution)"]


def test_read_gives_sentences_for_bad_files(tmp_path: Path) -> None:
    with pytest.raises(NotebookError, match="does not exist"):
        read(tmp_path / "missing.ipynb")
    (tmp_path / "bad.ipynb").write_text("{not json")
    with pytest.raises(NotebookError, match="not a readable Jupyter notebook"):
        read(tmp_path / "bad.ipynb")
