"""Lab 15's classifier, fine-tuning loop and method comparison, on a small random TinyBert (the shipped one is
checked by the lab itself): padding never changes a prediction, only trainable parameters move, the best
validation weights come back, forgetting is measured under the pre-trained head, and a FAST-sized comparison of the
four methods runs. Swap test: the registered "padding counted" mean_pool trains a different classifier."""

from __future__ import annotations

import copy

import pytest
import torch

from dlcourse.checks.lab15_task import SOLUTION_15_2, check_mean_pool
from dlcourse.finetune import classify, lora
from dlcourse.finetune.classify import FinetuneConfig, SentenceClassifier
from dlcourse.mlm import CharTokenizer, MaskedSet, make_masked_set
from dlcourse.mlm_model import BertConfig, TinyBert, evaluate_mlm
from dlcourse.notebooks import replace_regions
from dlcourse.tables import format_table

CHARS = list(" ,'?abcdefghijklmnopqrstuvwxyzAIOTW")
QUESTIONS = ["Where is the crown", "What say you to that", "Why dost thou weep", "Is this a dagger",
             "Who comes there", "Wilt thou be gone", "How fares my lord", "Art thou afeard"]
STATEMENTS = ["I will go with thee", "The night is cold", "Thou art a villain", "O the sweet rose",
              "Good morrow to you all", "It is the east", "All is well at home", "Away with him"]


def _examples(seed: int, n: int) -> list[tuple[str, int]]:
    g = torch.Generator().manual_seed(seed)
    rows = []
    for _ in range(n):
        label = int(torch.randint(0, 2, (1,), generator=g))
        pool = QUESTIONS if label else STATEMENTS
        rows.append((pool[int(torch.randint(0, len(pool), (1,), generator=g))], label))
    return rows


@pytest.fixture(scope="module")
def tokenizer() -> CharTokenizer:
    return CharTokenizer(CHARS)


@pytest.fixture(scope="module")
def pretrained(tokenizer) -> TinyBert:
    torch.manual_seed(0)
    config = BertConfig(tokenizer.vocab_size, max_len=32, d_model=24, n_heads=2, n_layers=2, d_ff=40,
                        norm_first=False, embedding_norm=True)
    return TinyBert(config).eval()


@pytest.fixture(scope="module")
def masked(tokenizer) -> MaskedSet:
    text = " ".join(s for s, _ in _examples(9, 40))
    return make_masked_set(torch.tensor(tokenizer.encode(text)), tokenizer, 32, n_windows=12)


SPLITS = (_examples(1, 60), _examples(2, 24), _examples(3, 30))
QUICK = FinetuneConfig(steps=8, batch_size=8, lr=3e-3, warmup=2, eval_every=4, max_len=32)


def test_mean_pool_is_the_mean_over_real_tokens() -> None:
    assert check_mean_pool.evaluate(classify.mean_pool).passed
    hidden, mask = torch.randn(2, 5, 3), torch.tensor([[1, 1, 0, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    assert torch.allclose(classify.mean_pool(hidden, mask)[0], hidden[0, :2].mean(0))


def test_padding_never_changes_a_prediction(pretrained, tokenizer) -> None:
    from dlcourse.finetune.task import padded_batch

    classifier = SentenceClassifier.from_pretrained(pretrained).eval()
    ids, mask = padded_batch(["Is this a dagger", "O"], tokenizer, 32)
    alone_ids, alone_mask = padded_batch(["O"], tokenizer, 32)
    with torch.no_grad():
        together, alone = classifier(ids, mask)[1], classifier(alone_ids, alone_mask)[0]
    assert torch.allclose(together, alone, atol=1e-5)


def test_from_pretrained_copies_and_from_scratch_is_seeded(pretrained) -> None:
    before = copy.deepcopy(pretrained.state_dict())
    classifier = SentenceClassifier.from_pretrained(pretrained)
    with torch.no_grad():
        classifier.encoder.token_embedding.weight.add_(1.0)
    assert all(torch.equal(before[k], v) for k, v in pretrained.state_dict().items())
    assert classifier.head.out_features == 2 and classifier.pool is classify.mean_pool
    a, b = (SentenceClassifier.from_scratch(pretrained.config, seed=4) for _ in range(2))
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    c = SentenceClassifier.from_scratch(pretrained.config, seed=5)
    assert not torch.equal(a.head.weight, c.head.weight)


def test_batches_cycle_through_every_example() -> None:
    batches = classify.batch_order(10, 7, 4, seed=0)
    assert [len(b) for b in batches] == [4] * 7 and all(len(set(b)) == 4 for b in batches)
    first_pass = sum(batches[:2], []) + batches[2][:2]
    assert sorted(first_pass) == list(range(10))
    assert classify.batch_order(3, 2, 32, seed=0)[0] and len(classify.batch_order(3, 2, 32, seed=0)[0]) == 3


def test_finetune_trains_only_what_requires_grad_and_restores_the_best(pretrained, tokenizer) -> None:
    classifier = SentenceClassifier.from_pretrained(pretrained)
    lora.set_trainable(classifier, "probe")
    encoder_before = copy.deepcopy(classifier.encoder.state_dict())
    head_before = classifier.head.weight.detach().clone()
    train, val, _ = SPLITS
    history = classify.finetune(classifier, train, val, tokenizer, QUICK, progress=False)
    assert all(torch.equal(encoder_before[k], v) for k, v in classifier.encoder.state_dict().items())
    assert not torch.equal(head_before, classifier.head.weight)
    assert history.step == [4, 8] and history.train_seconds > 0
    assert history.best_val_accuracy == max(history.val_accuracy)
    assert classify.accuracy(classifier, val, tokenizer, 7, 32) == pytest.approx(history.best_val_accuracy)
    assert classifier.training  # accuracy restored the mode


def test_forgetting_is_the_pretrained_loss_when_nothing_changed(pretrained, masked) -> None:
    classifier = SentenceClassifier.from_pretrained(pretrained)
    assert classify.forgetting_loss(classifier, pretrained, masked) == pytest.approx(
        evaluate_mlm(pretrained, masked)[0], abs=1e-6)
    with torch.no_grad():
        classifier.encoder.blocks[0].linear1.weight.mul_(3.0)
    changed = classify.forgetting_loss(classifier, pretrained, masked)
    assert changed != pytest.approx(evaluate_mlm(pretrained, masked)[0])


def test_nested_subsets() -> None:
    small, large, everything = classify.nested_subsets(SPLITS[0], [5, 20, None], seed=1)
    assert large[:5] == small and everything[:20] == large and sorted(everything) == sorted(SPLITS[0])
    with pytest.raises(ValueError, match="label budget"):
        classify.nested_subsets(SPLITS[0], [61])


def test_a_fast_comparison_of_the_four_methods_runs(pretrained, tokenizer, masked) -> None:
    methods = classify.standard_methods(r=2, alpha=4.0)
    config = FinetuneConfig(steps=3, batch_size=8, lr=1e-3, warmup=1, eval_every=3, max_len=32)
    results = classify.compare_methods(pretrained, SPLITS, [10, None], methods, config, masked, tokenizer=tokenizer,
                                       lrs={"probe": 3e-3}, progress=False)
    assert [(r.method, r.n_labelled) for r in results] == [(m, n) for n in (10, 60) for m in methods]
    by = {(r.method, r.n_labelled): r for r in results}
    everything = lora.count_trainable(SentenceClassifier.from_pretrained(pretrained))
    assert by["full", 10].trainable == by["scratch", 10].trainable == everything
    assert by["probe", 10].trainable == 24 * 2 + 2
    assert by["probe", 10].trainable < by["lora", 10].trainable < everything
    assert by["scratch", 10].forgetting is None
    pretrained_loss = evaluate_mlm(pretrained, masked)[0]
    assert by["probe", 60].forgetting == pytest.approx(pretrained_loss, abs=1e-6)  # a frozen encoder forgets nothing
    assert all(0.0 <= r.test_accuracy <= 1.0 and r.seconds > 0 for r in results)
    table = format_table(classify.RESULT_HEADER, classify.result_rows(results))
    assert "n/a" in table and "lora" in table


def test_the_plot_has_a_line_per_method_and_the_baselines(pretrained) -> None:
    import matplotlib

    matplotlib.use("Agg")
    results = [classify.MethodResult(m, n, 0.5 + n / 1e4, 0.6, 1, 10, None, 1.0) for m in ("probe", "full")
               for n in (100, 1000)]
    ax = classify.plot_comparison(results, 0.74, 0.79)
    assert ax.get_xscale() == "log" and ax.get_xlabel() and ax.get_ylabel()
    assert len(ax.get_lines()) == 4 and len(ax.get_legend().get_texts()) == 4


# ------------------------------------------------------------------------------------------- swap test
def _cell_mean_pool(replacement=None):
    namespace: dict = {}
    source = SOLUTION_15_2 if replacement is None else replace_regions(SOLUTION_15_2, replacement, "15.2")
    exec(source, namespace)
    return namespace["mean_pool"]


def test_a_mean_pool_that_counts_padding_trains_a_different_classifier(pretrained, tokenizer) -> None:
    """Swap test: the registered "padding counted" answer, used by the lab's classifier and loop, trains other
    weights than the solution cell, and its predictions depend on what a sentence is batched with."""
    from dlcourse.finetune.task import padded_batch

    wrong = _cell_mean_pool(check_mean_pool.wrong_answers["the mean over every position (padding counted)"])
    trained = []
    for pool in (_cell_mean_pool(), wrong):
        classifier = SentenceClassifier.from_pretrained(pretrained, pool=pool)
        lora.set_trainable(classifier, "full")
        classify.finetune(classifier, SPLITS[0], SPLITS[1], tokenizer, QUICK, progress=False)
        trained.append(classifier.eval())
    right, padded = trained
    assert (right.head.weight - padded.head.weight).abs().max() > 1e-4
    ids, mask = padded_batch(["Is this a dagger", "O"], tokenizer, 32)
    alone_ids, alone_mask = padded_batch(["O"], tokenizer, 32)
    with torch.no_grad():
        gap_wrong = (padded(ids, mask)[1] - padded(alone_ids, alone_mask)[0]).abs().max()
        gap_right = (right(ids, mask)[1] - right(alone_ids, alone_mask)[0]).abs().max()
    assert gap_right < 1e-5 < gap_wrong
