"""dlcourse.bpe: the word split round-trips, merges are deterministic, encode/decode are exact, and the
tokenizers library agrees on a small corpus."""

from __future__ import annotations

import pytest

from dlcourse import bpe

pytestmark = pytest.mark.lab("14")

TEXT = "First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.  Speak!\n" * 20


def test_words_concatenate_back_to_the_text() -> None:
    words = bpe.split_words(TEXT + " \t  odd\r\nspacing's  ")
    assert "".join(words) == TEXT + " \t  odd\r\nspacing's  "
    assert " speak" in words and "\n" in words


def test_merge_pair_joins_whole_symbols_left_to_right() -> None:
    assert bpe.merge_pair(("a", "a", "a"), ("a", "a")) == ("aa", "a")
    assert bpe.merge_pair(("xa", "b"), ("a", "b")) == ("xa", "b")
    assert bpe.merge_pair(("a", "b", "a", "b"), ("a", "b")) == ("ab", "ab")
    assert bpe.count_pairs({("a", "a", "a"): 3, ("a", "b"): 2}) == {("a", "a"): 6, ("a", "b"): 2}


def test_training_is_deterministic_and_encoding_round_trips() -> None:
    tok = bpe.train_bpe(TEXT, 60)
    assert tok.vocab_size == 60 and tok.merges == bpe.train_bpe(TEXT, 60).merges
    ids = tok.encode(TEXT + "Zebra?")  # 'Z' and '?' never occur in training: the unknown symbol spells them
    assert len(ids) < len(TEXT)
    assert tok.decode(tok.encode(TEXT)) == TEXT
    assert tok.decode(ids).endswith("\ufffde\ufffdra\ufffd")  # no Z, b or ? in the training text
    assert sum(tok.token_lengths()[i] for i in tok.encode(TEXT)) == len(TEXT)
    with pytest.raises(ValueError, match="smaller than"):
        bpe.train_bpe(TEXT, 5)


def test_the_tokenizers_library_learns_the_same_vocabulary_here() -> None:
    ours = bpe.train_bpe(TEXT, 50)
    theirs = bpe.train_hf_bpe(TEXT, 50)
    assert theirs.get_vocab_size() == 50
    assert bpe.hf_decode(theirs, theirs.encode(TEXT).ids) == TEXT
    assert len(set(theirs.get_vocab()) & set(ours.itos)) >= 45


def test_importing_dlcourse_does_not_import_tokenizers() -> None:
    import subprocess
    import sys

    code = "import sys, dlcourse, dlcourse.bpe; assert 'tokenizers' not in sys.modules"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
