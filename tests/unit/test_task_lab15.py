"""Lab 15's question task and its checks (15.1 the split, 15.2 mean pooling): the checks accept the reference, the
solution cells and every registered alternative, wait for the stub, reject every registered wrong answer with a
sentence; the split on the real text has the sizes the lab reports and no test sentence was read in pre-training."""

from __future__ import annotations

import pytest
import torch

from dlcourse.checks.lab15_task import (SOLUTION_15_1, SOLUTION_15_2, check_mean_pool, check_split_task,
                                        small_play)
from dlcourse.finetune import classify, task
from dlcourse.mlm import CharTokenizer, split_by_position
from dlcourse.notebooks import replace_regions

CELLS = {"15.1": (SOLUTION_15_1, "split_task", check_split_task), "15.2": (SOLUTION_15_2, "mean_pool", check_mean_pool)}


def _stub(*args, **kwargs):
    raise NotImplementedError("Exercise 15.1: replace this line with your code.")


def cell_function(exercise_id: str, replacement=None, *, stub: bool = False):
    """The exercise cell's function: the solution, its region replaced by ``replacement``, or the lab's stub."""
    source, name, _ = CELLS[exercise_id]
    if replacement is not None or stub:
        source = replace_regions(source, replacement, exercise_id)
    namespace: dict = {}
    exec(compile(source, f"<exercise {exercise_id}>", "exec"), namespace)
    return namespace[name]


@pytest.fixture(scope="module")
def text() -> str:
    from dlcourse.data import load_text

    return load_text()


@pytest.fixture(scope="module")
def splits(text):
    return task.split_task(text, 0.9, 500, 64, 0)


# ------------------------------------------------------------------------------------------- the checks
@pytest.mark.parametrize("exercise_id", sorted(CELLS))
def test_the_check_passes_the_reference_and_the_solution_cell(exercise_id) -> None:
    _, _, check = CELLS[exercise_id]
    reference = task.split_task if exercise_id == "15.1" else classify.mean_pool
    for answer in (reference, cell_function(exercise_id)):
        result = check.evaluate(answer)
        assert result.passed, result.message
    assert check.evaluate(None).status == "not_attempted"
    assert check.evaluate(_stub).status == "not_attempted"
    assert check.evaluate(cell_function(exercise_id, stub=True)).status == "not_attempted"


@pytest.mark.parametrize("exercise_id, label", [(e, label) for e in sorted(CELLS)
                                                for label in CELLS[e][2].wrong_answers])
def test_every_wrong_answer_is_rejected_with_a_sentence(exercise_id, label) -> None:
    check = CELLS[exercise_id][2]
    result = check.evaluate(cell_function(exercise_id, check.wrong_answers[label]))
    assert result.status == "failed", (label, result)
    assert result.message.endswith((".", ")")) and len(result.message) > 30, (label, result.message)
    assert "raised" not in result.message, (label, result.message)  # a sentence, not the student's crash


@pytest.mark.parametrize("exercise_id, label", [(e, label) for e in sorted(CELLS)
                                                for label in CELLS[e][2].accepted_answers])
def test_every_accepted_alternative_passes(exercise_id, label) -> None:
    check = CELLS[exercise_id][2]
    result = check.evaluate(cell_function(exercise_id, check.accepted_answers[label]))
    assert result.passed, (label, result.message)


def test_the_checks_turn_bad_input_into_a_sentence() -> None:
    assert "should be a function" in check_split_task.evaluate("split").message
    assert "three lists" in check_split_task.evaluate(lambda *a: [1, 2]).message
    assert "(sentence, label)" in check_split_task.evaluate(lambda *a: ([("a", 2)], [], [])).message
    assert "torch tensor" in check_mean_pool.evaluate(lambda h, m: h.numpy().mean(1)).message


def test_the_small_play_has_the_traps_the_check_needs() -> None:
    play = small_play()
    for fraction, n_val, max_chars, seed in ((0.7, 7, 40, 3), (0.78, 5, 50, 11)):
        train, val, test = task.split_task(play, fraction, n_val, max_chars, seed)
        pretrain, heldout = split_by_position(play, fraction)
        held = task.question_examples(task.speech_sentences(heldout), max_chars)
        dropped = {s for s, _ in held} - {s for s, _ in test}
        # a repeat on both sides, one inside a longer line, one with another mark
        assert {"Good morrow, gentle Katharina", "Come hither, sirrah", "Thou art a traitor",
            "I pray you, bring the horses to the gate"} <= dropped
        assert "Come hither, sirrah" not in {s for s, _ in train + val}
        assert {y for _, y in train} == {y for _, y in test} == {0, 1} and len(test) >= 10
        lengths = [len(s) for s, _ in train + val + test]
        assert max(lengths) <= max_chars and any(len(s) > 40 for s, _ in
                                                 task.question_examples(task.speech_sentences(pretrain), 64))


# ------------------------------------------------------------------------------------------- the task itself
def test_speech_sentences_drop_the_speaker_and_join_lines() -> None:
    text = "First Citizen:\nBefore we proceed any further,\nhear me speak.\n\nAll:\nSpeak, speak! Is't a verdict?\nAnd"
    assert task.speech_sentences(text) == ["Before we proceed any further, hear me speak.", "Speak, speak!",
                                           "Is't a verdict?"]


def test_question_examples_remove_the_mark_and_keep_12_to_max_chars() -> None:
    sentences = ["Is't a verdict?", "What, art thou waking?", "Ay, my lord?", "Resolved, resolved.", "O, monstrous!"]
    assert task.question_examples(sentences, 18) == [("Is't a verdict", 1), ("Resolved, resolved", 0),
                                                     ("O, monstrous", 0)]
    assert ("What, art thou waking", 1) in task.question_examples(sentences, 21)


def test_padded_batch_pads_to_the_longest_and_cuts_at_max_len() -> None:
    tokenizer = CharTokenizer(list("abc "))
    ids, mask = task.padded_batch(["ab", "abc a", "c"], tokenizer, 4)
    assert ids.shape == mask.shape == (3, 4) and ids.dtype == torch.long and mask.dtype == torch.bool
    assert mask.sum(1).tolist() == [2, 4, 1]
    assert int(ids[0, 2]) == tokenizer.pad_id and tokenizer.decode(ids[1]) == "abc "


def test_the_real_split_sizes_and_no_leak(text, splits) -> None:
    train, val, test = splits
    assert (len(train), len(val), len(test)) == (5088, 500, 846)  # measured; the lab prints them
    pretrain, _ = split_by_position(text, 0.9)
    assert not task.read_in_pretraining(test, text, 0.9)
    assert all(s not in pretrain for s, _ in test)  # not even with the pre-training text's own line breaks
    assert 0.2 < task.class_balance(train) < 0.35 and 0.2 < task.class_balance(test) < 0.35
    assert all(s[-1] not in ".?!" and 12 <= len(s) <= 64 for s, _ in train + val + test)


def test_a_split_that_keeps_repeats_leaks_into_the_test_set(text, splits) -> None:
    """Swap test: the registered 'kept' answer, run on the real text, hands the lab test sentences the encoder read
    in pre-training (measured: 21 of 867); the solution's none."""
    wrong = cell_function("15.1", check_split_task.wrong_answers[
        "test sentences already in the pre-training text kept"])
    _, _, leaky = wrong(text, 0.9, 500, 64, 0)
    assert len(task.read_in_pretraining(leaky, text)) > 10
    assert len(leaky) > len(splits[2])
    assert cell_function("15.1")(text, 0.9, 500, 64, 0) == splits


def test_the_baselines(splits) -> None:
    train, val, test = splits
    assert task.majority_accuracy(train, test) == pytest.approx(1 - task.class_balance(test))
    accuracy, c = task.bag_of_characters(train[:800], val[:300], test, cs=(0.3, 3.0))
    assert accuracy > task.majority_accuracy(train, test) and c in (0.3, 3.0)
