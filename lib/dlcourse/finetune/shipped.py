"""The pre-trained encoder that ships with the course: a tiny BERT in BERT's own layout (post-LN, GELU, LayerNorm
on the embeddings, tied MLM head), trained by lab 11's recipe on the first 90% of Tiny Shakespeare.

``python -m dlcourse.finetune.shipped --out DIR`` (``make tiny-bert``) reruns the recipe and writes
``tiny_bert.safetensors`` and ``tiny_bert.json`` (config, vocabulary, recipe, held-out masked loss, SHA-256).
``load_shipped()`` verifies the hash and rebuilds the model; no pickled code is ever loaded.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from dlcourse.errors import DlcourseError
from dlcourse.finetune import require
from dlcourse.mlm import CharTokenizer, MaskedSet, build_vocab, make_masked_set, split_by_position
from dlcourse.mlm_model import BertConfig, TinyBert, TrainConfig, evaluate_mlm, train_mlm

WEIGHTS_DIR = Path(__file__).with_name("weights")
WEIGHTS_NAME, RECORD_NAME = "tiny_bert.safetensors", "tiny_bert.json"
LOSS_TOLERANCE = 1e-3  # nats: the recorded held-out loss is reproduced to float32 rounding on any CPU


@dataclass(frozen=True)
class Recipe:
    """Lab 11's recipe (AdamW, warm-up then cosine, 80/10/10 masking of fresh random windows), longer windows so a
    whole sentence fits, and a longer warm-up because post-LN needs one (Xiong et al. 2020)."""

    val_fraction: float = 0.1
    seq_len: int = 64
    batch_size: int = 64
    steps: int = 4000
    lr: float = 2e-3
    warmup: int = 200
    weight_decay: float = 0.01
    d_model: int = 128
    n_heads: int = 4
    n_layers: int = 2
    d_ff: int = 256
    seed: int = 0
    mask_seed: int = 1234  # the fixed held-out masked set (make_masked_set's default)


class ShippedModelError(DlcourseError):
    """The shipped weights are missing, changed, or do not match their record."""


def sha256_of(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def bert_config(vocab_size: int, recipe: Recipe = Recipe()) -> BertConfig:
    """BERT's layout at the recipe's sizes: post-LN blocks and LayerNorm on the summed embeddings."""
    return BertConfig(vocab_size, max_len=recipe.seq_len, d_model=recipe.d_model, n_heads=recipe.n_heads,
                      n_layers=recipe.n_layers, d_ff=recipe.d_ff, dropout=0.0, norm_first=False, embedding_norm=True)


def heldout_masked_set(text: str, tokenizer: CharTokenizer, recipe: Recipe = Recipe()) -> MaskedSet:
    """Every non-overlapping window of the held-out last 10%, masked once with the fixed seed."""
    _, val_text = split_by_position(text, 1 - recipe.val_fraction)
    return make_masked_set(torch.tensor(tokenizer.encode(val_text)), tokenizer, recipe.seq_len, seed=recipe.mask_seed)


def pretrain(text: str, recipe: Recipe = Recipe(), progress: bool = True) -> tuple[TinyBert, CharTokenizer, dict]:
    """Train the tiny BERT on the first 90% of ``text``; returns (model, tokenizer, record of the run)."""
    torch.manual_seed(recipe.seed)
    train_text, _ = split_by_position(text, 1 - recipe.val_fraction)
    tokenizer = CharTokenizer(build_vocab(train_text))
    model = TinyBert(bert_config(tokenizer.vocab_size, recipe))
    config = TrainConfig(steps=recipe.steps, batch_size=recipe.batch_size, lr=recipe.lr, warmup=recipe.warmup,
                         weight_decay=recipe.weight_decay, eval_every=recipe.steps, seed=recipe.seed)
    history = train_mlm(model, torch.tensor(tokenizer.encode(train_text)), tokenizer, config, progress=progress)
    model.eval()
    loss, accuracy = evaluate_mlm(model, heldout_masked_set(text, tokenizer, recipe))
    record = {"config": asdict(model.config), "chars": tokenizer.chars, "recipe": asdict(recipe),
              "heldout_masked_loss": loss, "heldout_masked_accuracy": accuracy,
              "train_seconds": round(history.train_seconds, 1), "tokens_seen": history.tokens_seen,
              "torch": torch.__version__.split("+")[0]}
    return model, tokenizer, record


def write_shipped(model: TinyBert, record: dict, folder: Path = WEIGHTS_DIR) -> Path:
    """Weights as safetensors (the tied decoder is the embedding, stored once) + the JSON record with their hash."""
    save_file = require("safetensors.torch").save_file
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    weights = folder / WEIGHTS_NAME
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(weights))
    record = {**record, "sha256": sha256_of(weights), "bytes": weights.stat().st_size}
    (folder / RECORD_NAME).write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    return weights


def read_record(folder: Path = WEIGHTS_DIR) -> dict:
    path = Path(folder) / RECORD_NAME
    if not path.exists():
        raise ShippedModelError(f"{path} is missing: reinstall dlcourse, or rebuild it with `make tiny-bert`.")
    return json.loads(path.read_text(encoding="utf-8"))


def load_shipped(folder: Path = WEIGHTS_DIR) -> tuple[TinyBert, CharTokenizer, dict]:
    """(model in eval mode, tokenizer, record) from the shipped files, after checking the weights' SHA-256."""
    load_file = require("safetensors.torch").load_file
    record = read_record(folder)
    weights = Path(folder) / WEIGHTS_NAME
    if not weights.exists() or sha256_of(weights) != record["sha256"]:
        raise ShippedModelError(f"{weights} is missing or is not the file its record describes (SHA-256 differs): "
                                "restore it with `git checkout` or rebuild it with `make tiny-bert`.")
    model = TinyBert(BertConfig(**record["config"]))
    model.load_state_dict(load_file(str(weights)))
    model.eval()
    return model, CharTokenizer(record["chars"]), record


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Re-run lab 15's pre-training recipe and write the shipped files.")
    parser.add_argument("--out", type=Path, default=WEIGHTS_DIR, help="folder for tiny_bert.safetensors/.json")
    parser.add_argument("--steps", type=int, default=Recipe.steps, help="AdamW steps (the shipped model: %(default)s)")
    args = parser.parse_args(argv)
    from dlcourse.data import load_text

    start = time.perf_counter()
    model, _, record = pretrain(load_text(), Recipe(steps=args.steps))
    weights = write_shipped(model, record, args.out)
    print(f"wrote {weights} ({weights.stat().st_size:,} bytes) in {time.perf_counter() - start:.0f} s; "
          f"held-out masked loss {record['heldout_masked_loss']:.4f} nats, accuracy "
          f"{record['heldout_masked_accuracy']:.4f}; sha256 {sha256_of(weights)}")


if __name__ == "__main__":
    main()
