"""dlcourse.student: a lab cell knows which of the student's functions and classes are still stubs."""

from __future__ import annotations

from dlcourse.notebooks import BEGIN, END, replace_regions
from dlcourse.student import not_ready_sentence, ready, stub_exercises, unsolved

_CELL = f"""
def forward(x):
    {BEGIN}
    return 2 * x
    {END}

class Engine:
    def step(self, lr):
        {BEGIN}
        return lr
        {END}

    @property
    def size(self):
        return 3

{BEGIN}
answer = 42
{END}
"""


def _run(source: str) -> dict:
    scope: dict = {}
    exec(source, scope)
    return scope


def test_stubs_are_found_in_functions_methods_and_values_without_calling_them() -> None:
    lab = _run(replace_regions(_CELL, None, "05.2"))
    assert stub_exercises(lab["forward"]) == ["05.2"]
    assert stub_exercises(lab["Engine"]) == ["05.2"]
    assert stub_exercises(lab["Engine"]().step) == ["05.2"]
    assert stub_exercises(lab["answer"]) == ["?"]
    solved = _run(replace_regions(_CELL, [None, None, None], "05.2"))
    assert unsolved(forward=solved["forward"], Engine=solved["Engine"], answer=solved["answer"]) == {}


def test_the_sentence_names_the_functions_and_their_exercises(capsys) -> None:
    lab = _run(replace_regions(_CELL, None, "05.2"))
    assert not ready("train", forward=lab["forward"], answer=lab["answer"])
    printed = capsys.readouterr().out.strip()
    assert printed == "This cell will train with your `forward` and `answer`: solve exercise 05.2 first, then run it again."
    assert ready("train", forward=len) and capsys.readouterr().out == ""
    two = not_ready_sentence({"a": ["05.2"], "b": ["05.4"], "c": ["05.5"]})
    assert two == "This cell will run with your `a`, `b` and `c`: solve exercises 05.2, 05.4 and 05.5 first, then run it again."


def test_yours_or_reference_picks_each_solved_function_and_says_which_wait(capsys) -> None:
    from dlcourse.student import yours_or_reference

    lab = _run(replace_regions(_CELL, None, "05.2"))
    solved = _run(replace_regions(_CELL, [None, None, None], "05.2"))
    first, second = yours_or_reference("plot", forward=(lab["forward"], abs), other=(solved["forward"], abs))
    assert first is abs and second is solved["forward"]
    assert capsys.readouterr().out.strip() == ("This cell will plot with your `forward`: solve exercise 05.2 first, "
                                               "then run it again. Until then the course's reference stands in.")
    assert yours_or_reference("plot", forward=(solved["forward"], abs)) == [solved["forward"]]
    assert capsys.readouterr().out == ""
