"""The bridge from the course's tiny BERT to Hugging Face ``transformers`` (lab 15, exercises 15.6 and 15.7).

``to_hf`` copies a ``TinyBert`` (BERT's layout: post-LN, GELU, LayerNorm on the embeddings, tied MLM head) into
``transformers.BertForMaskedLM`` through a weight mapping (``hf_state_dict``, exercise 15.6) and the two compute the
same logits. ``fast_tokenizer`` wraps the course's character tokeniser as a ``tokenizers`` WordLevel tokenizer with
the same ids; ``save_for_transformers`` writes both with ``save_pretrained`` (safetensors) into a local folder, and
``pipeline_fill_mask`` loads them back with ``AutoTokenizer`` / ``AutoModelForMaskedLM`` and runs
``pipeline("fill-mask")``. The hub is switched off (``HF_HUB_OFFLINE=1``): nothing is ever downloaded.

The second half runs the circulating example's four mistakes (a masked model used for next-word prediction,
RoBERTa's ``<mask>`` given to a BERT tokenizer, a printed output whose logits are identical at every position,
``hidden_states`` without ``output_hidden_states=True``) and ``fixed_example`` corrects it (exercise 15.7).

transformers is imported inside the functions, so importing this module stays light.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from torch import Tensor

from dlcourse.mlm import SPECIAL_TOKENS, CharTokenizer
from dlcourse.mlm_model import BertConfig, TinyBert

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before transformers / huggingface_hub read it

Mapping = Callable[[dict[str, Tensor], int], dict[str, Tensor]]
TIED = {"cls.predictions.decoder.weight": "bert.embeddings.word_embeddings.weight",
        "cls.predictions.decoder.bias": "cls.predictions.bias"}  # BertForMaskedLM's tied pairs: one tensor each
BLOCK_NAMES = {"self_attn.q_proj": "attention.self.query", "self_attn.k_proj": "attention.self.key",
               "self_attn.v_proj": "attention.self.value", "self_attn.out_proj": "attention.output.dense",
               "norm1": "attention.output.LayerNorm", "linear1": "intermediate.dense",
               "linear2": "output.dense", "norm2": "output.LayerNorm"}  # course block → BertLayer sub-module


def _transformers() -> Any:
    """The transformers package, with the hub switched off first (never imports TensorFlow: v5 has none)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from dlcourse.finetune import require

    transformers = require("transformers")
    transformers.utils.logging.disable_progress_bar()  # no "Loading weights" bars in the lab's outputs
    return transformers


# ------------------------------------------------------------------------------------------ the model
def hf_config(course_config: BertConfig) -> Any:
    """``transformers.BertConfig`` computing what ``TinyBert(course_config)`` computes: exact (erf) GELU, torch's
    LayerNorm eps 1e-5, no dropout, one token type (its embedding is zero), tied decoder, the course's [PAD] id."""
    if course_config.norm_first or not course_config.embedding_norm:
        raise ValueError("BertForMaskedLM is post-LN with a LayerNorm on the embeddings (BertConfig(norm_first=False, "
                         "embedding_norm=True)); this model has lab 11's pre-LN layout, which it cannot hold.")
    return _transformers().BertConfig(
        vocab_size=course_config.vocab_size, hidden_size=course_config.d_model,
        num_hidden_layers=course_config.n_layers, num_attention_heads=course_config.n_heads,
        intermediate_size=course_config.d_ff, hidden_act="gelu", hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0, max_position_embeddings=course_config.max_len, type_vocab_size=1,
        layer_norm_eps=1e-5, pad_token_id=SPECIAL_TOKENS.index("[PAD]"), tie_word_embeddings=True)


def hf_state_dict(course_state: dict[str, Tensor], n_layers: int) -> dict[str, Tensor]:
    """The course's TinyBert weights under ``BertForMaskedLM``'s names (the reference of exercise 15.6)."""
    s = course_state
    d = s["encoder.token_embedding.weight"].shape[1]
    hf = {"bert.embeddings.word_embeddings.weight": s["encoder.token_embedding.weight"],
          "bert.embeddings.position_embeddings.weight": s["encoder.position_embedding"],
          "bert.embeddings.token_type_embeddings.weight": torch.zeros(1, d),  # one segment, adding nothing
          "bert.embeddings.LayerNorm.weight": s["encoder.embedding_norm.weight"],
          "bert.embeddings.LayerNorm.bias": s["encoder.embedding_norm.bias"]}
    for i in range(n_layers):
        for ours, theirs in BLOCK_NAMES.items():
            for p in ("weight", "bias"):
                hf[f"bert.encoder.layer.{i}.{theirs}.{p}"] = s[f"encoder.blocks.{i}.{ours}.{p}"]
    for p in ("weight", "bias"):
        hf[f"cls.predictions.transform.dense.{p}"] = s[f"dense.{p}"]
        hf[f"cls.predictions.transform.LayerNorm.{p}"] = s[f"norm.{p}"]
    hf["cls.predictions.decoder.weight"] = s["encoder.token_embedding.weight"]  # tied to the input embedding
    hf["cls.predictions.decoder.bias"] = s["bias"]
    hf["cls.predictions.bias"] = s["bias"]
    return hf


def _names(keys: list[str], limit: int = 3) -> str:
    shown = ", ".join(f"`{k}`" for k in keys[:limit])
    return shown + (f" and {len(keys) - limit} more" if len(keys) > limit else "")


def validate_mapping(mapped: Any, expected: dict[str, Tensor]) -> None:
    """Raise ValueError with one sentence unless ``mapped`` fills every parameter of ``expected`` (a
    BertForMaskedLM state dict) with a tensor of its shape, names nothing else, and keeps the tied pairs equal
    (a tied pair may also be left to the tie: give one of the two)."""
    if not isinstance(mapped, dict):
        raise ValueError(f"The mapping should return a dict of tensors, not {type(mapped).__name__}.")
    unexpected = sorted(k for k in mapped if k not in expected)
    if unexpected:
        raise ValueError(f"The mapping names {len(unexpected)} key(s) BertForMaskedLM does not have: "
                         f"{_names(unexpected)}.")
    missing = [k for k in expected if k not in mapped and not (k in TIED and TIED[k] in mapped)
               and not (k in TIED.values() and any(a in mapped for a, b in TIED.items() if b == k))]
    if missing:
        raise ValueError(f"The mapping leaves {len(missing)} BertForMaskedLM parameter(s) unfilled: {_names(missing)}.")
    for key, value in mapped.items():
        if not isinstance(value, Tensor):
            raise ValueError(f"`{key}` should be a tensor, but it is {type(value).__name__}.")
        if tuple(value.shape) != tuple(expected[key].shape):
            raise ValueError(f"`{key}` has shape {tuple(value.shape)}; BertForMaskedLM's has "
                             f"{tuple(expected[key].shape)}.")
    for a, b in TIED.items():
        if a in mapped and b in mapped and not torch.equal(mapped[a].float(), mapped[b].float()):
            raise ValueError(f"`{a}` differs from `{b}`, but BertForMaskedLM ties them (one tensor): the MLM decoder "
                             "reuses the word embeddings and their output bias.")


@torch.no_grad()
def model_from_mapping(config: Any, mapped: dict[str, Tensor]) -> Any:
    """A BertForMaskedLM (eval mode) filled from ``mapped``: every parameter checked by ``validate_mapping``."""
    model = _transformers().BertForMaskedLM(config)
    expected = model.state_dict()
    validate_mapping(mapped, expected)
    for key, value in mapped.items():
        expected[key].copy_(value.detach())  # in place: the tied parameters stay one tensor
    return model.eval()


def to_hf(course_model: TinyBert, mapping: Mapping = hf_state_dict) -> Any:
    """``transformers.BertForMaskedLM`` (eval mode) with ``course_model``'s weights, mapped by ``mapping``
    (exercise 15.6's signature). The mapping gets a copy of the state dict: nothing it does reaches the model."""
    state = {k: v.detach().clone() for k, v in course_model.state_dict().items()}
    return model_from_mapping(hf_config(course_model.config), mapping(state, course_model.config.n_layers))


@torch.no_grad()
def course_logits(model: TinyBert, ids: Tensor, key_padding: Tensor | None = None) -> Tensor:
    """(B, T, V) logits of the course model (eval mode), with an optional key-padding mask (True = real token)."""
    model.eval()
    return model.head(model.encoder(ids, key_padding))


@torch.no_grad()
def hf_logits(model: Any, ids: Tensor, key_padding: Tensor | None = None) -> Tensor:
    """(B, T, V) logits of a BertForMaskedLM; ``key_padding`` becomes its attention_mask (1 = real token)."""
    mask = None if key_padding is None else key_padding.long()
    return model(input_ids=ids, attention_mask=mask).logits


def logit_gap(course_model: TinyBert, hf_model: Any, ids: Tensor, key_padding: Tensor | None = None) -> float:
    """Largest |logit difference| between the two models (at real tokens only when padded)."""
    gap = (course_logits(course_model, ids, key_padding) - hf_logits(hf_model, ids, key_padding)).abs()
    return float(gap.max() if key_padding is None else gap[key_padding].max())


# -------------------------------------------------------------------------------------- the tokenizer
def fast_tokenizer(char_tokenizer: CharTokenizer, max_len: int | None = None) -> Any:
    """A ``PreTrainedTokenizerFast`` giving the course's ids: one token per character (spaces and newlines too),
    [PAD]/[UNK]/[MASK] as special tokens (the text "[MASK]" is one token), no [CLS]/[SEP] added, decoding by
    joining characters; unknown characters become [UNK]. With ``max_len`` it keeps the LAST ``max_len`` tokens
    when asked to truncate, as the course's ``fill_mask`` does."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers

    backend = Tokenizer(models.WordLevel(dict(char_tokenizer.stoi), unk_token=char_tokenizer.unk_token))
    backend.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")  # every character
    backend.decoder = decoders.Fuse()  # "".join
    extra = {} if max_len is None else {"model_max_length": max_len}
    return _transformers().PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token=char_tokenizer.pad_token, unk_token=char_tokenizer.unk_token,
        mask_token=char_tokenizer.mask_token, clean_up_tokenization_spaces=False, truncation_side="left",
        model_input_names=["input_ids", "attention_mask"], **extra)


def save_for_transformers(model: Any, tokenizer: Any, folder: str | Path) -> Path:
    """``save_pretrained`` of the model (a TinyBert is converted first; safetensors) and of the tokenizer (a
    CharTokenizer is wrapped first) into ``folder``, which ``from_pretrained(folder)`` then reads offline."""
    folder = Path(folder)
    max_len = model.config.max_len if isinstance(model, TinyBert) else model.config.max_position_embeddings
    hf_model = to_hf(model) if isinstance(model, TinyBert) else model
    if isinstance(tokenizer, CharTokenizer):
        tokenizer = fast_tokenizer(tokenizer, max_len)
    hf_model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def load_folder(folder: str | Path) -> tuple[Any, Any]:
    """(tokenizer, model in eval mode) from a local folder with ``AutoTokenizer`` / ``AutoModelForMaskedLM``."""
    t = _transformers()
    tokenizer = t.AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    model = t.AutoModelForMaskedLM.from_pretrained(str(folder), local_files_only=True)
    return tokenizer, model.eval()


def fill_mask_pipeline(folder: str | Path) -> Any:
    """``pipeline("fill-mask")`` on the model and tokenizer that ``load_folder`` reads from ``folder``."""
    tokenizer, model = load_folder(folder)
    return _transformers().pipeline("fill-mask", model=model, tokenizer=tokenizer)


def _top(fill: Any, text: str, k: int, targets: list[str] | None) -> list[tuple[str, float]]:
    found = fill(text, top_k=k, targets=targets, tokenizer_kwargs={"truncation": True})
    return [(row["token_str"], float(row["score"])) for row in found]


def pipeline_fill_mask(folder: str | Path, text: str, k: int = 5,
                       targets: list[str] | None = None) -> list[tuple[str, float]]:
    """The pipeline's top-k (token, score) for the [MASK] in ``text``; the scores are the softmax over the WHOLE
    vocabulary (restricted to ``targets`` when given, not renormalised)."""
    return _top(fill_mask_pipeline(folder), text, k, targets)


@dataclass(frozen=True)
class FillMaskComparison:
    course: list[tuple[str, float]]  # mlm_model.fill_mask: softmax over the characters only
    pipeline: list[tuple[str, float]]  # pipeline("fill-mask", targets=characters): the full softmax, restricted
    special_mass: float  # the pipeline's probability of [PAD], [UNK] and [MASK] at the mask
    max_difference: float  # largest |course - pipeline / (1 - special_mass)| over the top k

    @property
    def same_characters(self) -> bool:
        return [c for c, _ in self.course] == [c for c, _ in self.pipeline]


def compare_fill_mask(model: TinyBert, char_tokenizer: CharTokenizer, folder: str | Path, text: str,
                      k: int = 5) -> FillMaskComparison:
    """The course's ``fill_mask`` against the pipeline on the saved folder. The course never proposes a special
    token (it is not a character), so its softmax runs over the characters; the pipeline's runs over the whole
    vocabulary. With ``targets`` = every character the pipeline ranks the same candidates, and dividing by their
    total mass (1 - the specials' probability, which the pipeline itself reports) gives the same distribution."""
    from dlcourse.mlm_model import fill_mask

    fill = fill_mask_pipeline(folder)
    scored = _top(fill, text, k, char_tokenizer.chars)
    special = sum(p for _, p in _top(fill, text, len(SPECIAL_TOKENS), list(SPECIAL_TOKENS)))
    course = fill_mask(model, char_tokenizer, text, k)
    gap = max(abs(p - q / (1.0 - special)) for (_, p), (_, q) in zip(course, scored))
    return FillMaskComparison(course, scored, special, gap)


# ------------------------------------------------------------------ the circulating example's four mistakes
def _encode(tokenizer: Any, text: str) -> Tensor:
    return tokenizer(text, return_tensors="pt", truncation=True)["input_ids"]


def mask_distribution(tokenizer: Any, model: Any, text: str) -> Tensor:
    """(V,) probabilities over the whole vocabulary at the first mask token of ``text``."""
    ids = _encode(tokenizer, text)
    where = (ids[0] == tokenizer.mask_token_id).nonzero().flatten()
    if len(where) == 0:
        raise ValueError(f"No {tokenizer.mask_token} in {text!r}: put the tokenizer's mask token where a "
                         "character is missing.")
    with torch.no_grad():
        return model(input_ids=ids).logits[0, where[0]].softmax(-1)


def _top_tokens(tokenizer: Any, probs: Tensor, k: int) -> list[tuple[str, float]]:
    top = probs.topk(k)
    return list(zip(tokenizer.convert_ids_to_tokens(top.indices.tolist()), top.values.tolist()))


@dataclass(frozen=True)
class FutureDemo:
    texts: tuple[str, str]  # the same text BEFORE the mask, different text after it
    tops: tuple[list[tuple[str, float]], list[tuple[str, float]]]  # top-k (token, probability) for each
    total_variation: float  # ½ Σ |p₁ - p₂| at the mask: 0 for any model that reads only the left context


def future_changes_prediction(folder: str | Path, left: str = "What is th",
                              rights: tuple[str, str] = (" matter?", "s?"),
                              k: int = 3) -> FutureDemo:
    """Mistake 1, a masked model is not a next-word predictor: keep the text before [MASK], change the text after
    it, and the prediction changes. A next-word model cannot see the future, so its two distributions would be
    identical (total variation 0)."""
    tokenizer, model = load_folder(folder)
    texts = tuple(f"{left}{tokenizer.mask_token}{right}" for right in rights)
    p, q = (mask_distribution(tokenizer, model, t) for t in texts)
    return FutureDemo(texts, (_top_tokens(tokenizer, p, k), _top_tokens(tokenizer, q, k)),
                      float(0.5 * (p - q).abs().sum()))


@dataclass(frozen=True)
class RobertaMaskDemo:
    mask_token: str  # this tokenizer's own mask token: BERT's "[MASK]"
    tokens: list[str]  # what "<mask>" (RoBERTa's mask token) becomes here: ordinary characters
    mask_positions: int  # how many positions hold the mask token: none
    pipeline_says: str  # the sentence pipeline("fill-mask") raises


def roberta_mask(folder: str | Path, text: str = "The cat sat on the <mask>.") -> RobertaMaskDemo:
    """Mistake 2, ``<mask>`` is RoBERTa's mask token; BERT's is ``[MASK]``: this tokenizer splits ``<mask>``
    into ordinary characters, no position is masked, and the pipeline refuses."""
    from transformers.pipelines import PipelineException

    tokenizer, model = load_folder(folder)
    ids = _encode(tokenizer, text)[0]
    try:
        _top(_transformers().pipeline("fill-mask", model=model, tokenizer=tokenizer), text, 5, None)
        said = "the pipeline found a mask"
    except PipelineException as error:
        said = str(error)
    return RobertaMaskDemo(tokenizer.mask_token, tokenizer.convert_ids_to_tokens(ids.tolist()),
                           int((ids == tokenizer.mask_token_id).sum()), said)


def blind_copy(model: Any) -> Any:
    """A copy of a BertForMaskedLM whose output cannot depend on its input: the embedding LayerNorm's scale is
    set to 0, so every position enters the encoder as the same vector (that LayerNorm's bias), whatever the text."""
    import copy

    blind = copy.deepcopy(model)
    with torch.no_grad():
        blind.bert.embeddings.LayerNorm.weight.zero_()
    return blind.eval()


def position_spread(logits: Tensor) -> float:
    """How much (T, V) logits change from position to position: the std over positions, averaged over the
    vocabulary. 0 means the same logits at every position."""
    return float(logits.std(dim=0).mean())


@dataclass(frozen=True)
class SpreadDemo:
    real: float  # position_spread of the trained model's logits on the text
    blind: float  # the same for blind_copy(model): identical logits at every position, as the circulating print


def identical_logits(folder: str | Path, text: str = "The cat sat on the [MASK].") -> SpreadDemo:
    """Mistake 3, logits identical at every position: a model that reads its input gives each position its own
    logits; only a model that ignores its input (here, ``blind_copy``) prints the same row everywhere."""
    tokenizer, model = load_folder(folder)
    ids = _encode(tokenizer, text)
    with torch.no_grad():
        real, blind = (m(input_ids=ids).logits[0] for m in (model, blind_copy(model)))
    return SpreadDemo(position_spread(real), position_spread(blind))


@dataclass(frozen=True)
class HiddenStatesDemo:
    without: Any  # outputs.hidden_states of a plain call: None
    count: int  # with output_hidden_states=True: one tensor for the embeddings + one per layer
    n_layers: int
    shape: tuple[int, ...]  # each (B, T, hidden_size)


def hidden_states_demo(folder: str | Path, text: str = "The cat sat on the [MASK].") -> HiddenStatesDemo:
    """Mistake 4, ``hidden_states`` is returned only when asked for: None without ``output_hidden_states=True``,
    a tuple of n_layers + 1 tensors with it."""
    tokenizer, model = load_folder(folder)
    inputs = tokenizer(text, return_tensors="pt")
    with torch.no_grad():
        plain, full = model(**inputs), model(**inputs, output_hidden_states=True)
    return HiddenStatesDemo(plain.hidden_states, len(full.hidden_states), model.config.num_hidden_layers,
                            tuple(full.hidden_states[0].shape))


def fixed_example(folder: str | Path, text: str) -> tuple[list[str], int]:
    """The circulating example, corrected (the reference of exercise 15.7): load from the local folder, write the
    blank (``<mask>`` in ``text``) as the tokenizer's own mask token, ask for the hidden states, and take the top 5
    over the vocabulary at the mask position only. Returns (top-5 tokens, number of hidden-state tensors)."""
    t = _transformers()
    tokenizer = t.AutoTokenizer.from_pretrained(folder)
    model = t.AutoModelForMaskedLM.from_pretrained(folder)
    model.eval()
    inputs = tokenizer(text.replace("<mask>", tokenizer.mask_token), return_tensors="pt")
    with torch.no_grad():
        outputs = model(**inputs, output_hidden_states=True)
    position = (inputs["input_ids"][0] == tokenizer.mask_token_id).nonzero()[0, 0]
    top = outputs.logits[0, position].topk(5).indices
    return tokenizer.convert_ids_to_tokens(top.tolist()), len(outputs.hidden_states)
