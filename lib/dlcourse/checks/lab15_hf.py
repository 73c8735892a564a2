'''Checks for lab 15's bridge to Hugging Face ``transformers``: the weight mapping onto ``BertForMaskedLM`` (15.6)
and the circulating example, corrected (15.7). Re-exported by ``dlcourse.checks.lab15``.

The registered wrong and accepted answers replace the solution region of these cells, which the notebook holds
exactly as written here (``SOLUTION_15_6`` and ``SOLUTION_15_7``; ``torch`` is imported by an earlier cell, and
``HF_HUB_OFFLINE=1`` is set before transformers is first imported, e.g. by ``import dlcourse.finetune.hf``)::

    def hf_state_dict(course_state: dict[str, torch.Tensor], n_layers: int) -> dict[str, torch.Tensor]:
        # course_state: the course TinyBert's state_dict(); return BertForMaskedLM's names -> the same tensors
        ### BEGIN SOLUTION
        <_MAPPING below>
        ### END SOLUTION
        return hf

    from transformers import AutoModelForMaskedLM, AutoTokenizer


    def fixed_example(folder: str, text: str) -> tuple[list[str], int]:
        # text has one blank written "<mask>", as the circulating example writes it
        ### BEGIN SOLUTION
        <_FIXED below>
        ### END SOLUTION
        return top_tokens, n_hidden_states

Each check builds its own models at sizes that differ on every axis (vocabulary, width, heads, layers, feed-forward
width, positions), randomised so that no LayerNorm is the identity and no bias is zero, and compares float32
logits at 1e-5. torch and transformers are imported when a check runs (a light interpreter imports this module).
'''

from __future__ import annotations

import tempfile
import textwrap
from pathlib import Path
from typing import Any

from dlcourse.check import Mismatch, expect, expect_callable, exercise
from dlcourse.checks.lab14_support import randomise, torch_modules

# ------------------------------------------------------------------------------------------- 15.6
_MAPPING = '''\
s = course_state
d = s["encoder.token_embedding.weight"].shape[1]
hf = {"bert.embeddings.word_embeddings.weight": s["encoder.token_embedding.weight"],
      "bert.embeddings.position_embeddings.weight": s["encoder.position_embedding"],
      "bert.embeddings.token_type_embeddings.weight": torch.zeros(1, d),  # one segment: adds nothing
      "bert.embeddings.LayerNorm.weight": s["encoder.embedding_norm.weight"],
      "bert.embeddings.LayerNorm.bias": s["encoder.embedding_norm.bias"]}
block = {"self_attn.q_proj": "attention.self.query", "self_attn.k_proj": "attention.self.key",
         "self_attn.v_proj": "attention.self.value", "self_attn.out_proj": "attention.output.dense",
         "norm1": "attention.output.LayerNorm", "linear1": "intermediate.dense",
         "linear2": "output.dense", "norm2": "output.LayerNorm"}
for i in range(n_layers):
    for ours, theirs in block.items():
        for p in ("weight", "bias"):
            hf[f"bert.encoder.layer.{i}.{theirs}.{p}"] = s[f"encoder.blocks.{i}.{ours}.{p}"]
for p in ("weight", "bias"):
    hf[f"cls.predictions.transform.dense.{p}"] = s[f"dense.{p}"]
    hf[f"cls.predictions.transform.LayerNorm.{p}"] = s[f"norm.{p}"]
hf["cls.predictions.decoder.weight"] = s["encoder.token_embedding.weight"]  # tied: the same matrix
hf["cls.predictions.decoder.bias"] = s["bias"]
hf["cls.predictions.bias"] = s["bias"]'''


def _cell(signature: str, comment: str, body: str, result: str) -> str:
    return (f"{signature}\n    # {comment}\n    ### BEGIN SOLUTION\n{textwrap.indent(body, '    ')}\n"
            f"    ### END SOLUTION\n    return {result}")


SOLUTION_15_6 = _cell("def hf_state_dict(course_state: dict[str, torch.Tensor], n_layers: int) "
                      "-> dict[str, torch.Tensor]:",
                      "course_state: the course TinyBert's state_dict(); return BertForMaskedLM's names -> the same "
                      "tensors", _MAPPING, "hf")


def _edit(*pairs: tuple[str, str], source: str = _MAPPING) -> str:
    """The solution with each (old, new) replaced once; an old text that is not there is this module's bug."""
    for old, new in pairs:
        if source.count(old) != 1:
            raise ValueError(f"lab15_hf: {old!r} is not exactly once in the solution")
        source = source.replace(old, new)
    return source


_Q, _K = '"self_attn.q_proj": "attention.self.query"', '"self_attn.k_proj": "attention.self.key"'
_N1, _N2 = '"norm1": "attention.output.LayerNorm"', '"norm2": "output.LayerNorm"'
_V, _O = '"self_attn.v_proj": "attention.self.value"', '"self_attn.out_proj": "attention.output.dense"'
_EMB_NORM = ('      "bert.embeddings.LayerNorm.weight": s["encoder.embedding_norm.weight"],\n'
             '      "bert.embeddings.LayerNorm.bias": s["encoder.embedding_norm.bias"]}')
_DECODER = ('hf["cls.predictions.decoder.weight"] = s["encoder.token_embedding.weight"]  # tied: the same matrix\n'
            'hf["cls.predictions.decoder.bias"] = s["bias"]\n')
_OUT_BIAS = 'hf["cls.predictions.decoder.bias"] = s["bias"]\nhf["cls.predictions.bias"] = s["bias"]'
_LAYER_LINE = 'hf[f"bert.encoder.layer.{i}.{theirs}.{p}"] = s[f"encoder.blocks.{i}.{ours}.{p}"]'
_EXPLICIT = '''\
s, hf = course_state, {}
hf["bert.embeddings.word_embeddings.weight"] = s["encoder.token_embedding.weight"]
hf["bert.embeddings.position_embeddings.weight"] = s["encoder.position_embedding"]
hf["bert.embeddings.token_type_embeddings.weight"] = torch.zeros_like(s["encoder.position_embedding"][:1])
hf["bert.embeddings.LayerNorm.weight"] = s["encoder.embedding_norm.weight"]
hf["bert.embeddings.LayerNorm.bias"] = s["encoder.embedding_norm.bias"]
for i in range(n_layers):
    c, b = f"encoder.blocks.{i}.", f"bert.encoder.layer.{i}."
    for p in ("weight", "bias"):
        hf[b + "attention.self.query." + p] = s[c + "self_attn.q_proj." + p]
        hf[b + "attention.self.key." + p] = s[c + "self_attn.k_proj." + p]
        hf[b + "attention.self.value." + p] = s[c + "self_attn.v_proj." + p]
        hf[b + "attention.output.dense." + p] = s[c + "self_attn.out_proj." + p]
        hf[b + "attention.output.LayerNorm." + p] = s[c + "norm1." + p]
        hf[b + "intermediate.dense." + p] = s[c + "linear1." + p]
        hf[b + "output.dense." + p] = s[c + "linear2." + p]
        hf[b + "output.LayerNorm." + p] = s[c + "norm2." + p]
hf["cls.predictions.transform.dense.weight"] = s["dense.weight"]
hf["cls.predictions.transform.dense.bias"] = s["dense.bias"]
hf["cls.predictions.transform.LayerNorm.weight"] = s["norm.weight"]
hf["cls.predictions.transform.LayerNorm.bias"] = s["norm.bias"]
hf["cls.predictions.bias"] = s["bias"]
hf["cls.predictions.decoder.weight"] = s["encoder.token_embedding.weight"]
hf["cls.predictions.decoder.bias"] = s["bias"]'''

_MAPPING_HINT = ("Walk both state_dict()s side by side: BertForMaskedLM(config).state_dict() lists every name to "
                 "fill (embeddings with their LayerNorm, layers 0..n_layers-1, the MLM head with its output bias).")


_HINTS = (("embeddings.LayerNorm", "BERT normalises the summed embeddings: bert.embeddings.LayerNorm is the course's "
                                  "encoder.embedding_norm, with its own learned scale and shift."),
          ("token_type", "BERT adds a token-type (segment) vector to every token; with one segment and nothing to "
                         "add, its single row is zeros."),
          ("cls.", "The MLM head: transform.dense = dense, transform.LayerNorm = norm, the decoder = the token "
                   "embedding (tied), and the output bias = the course's `bias`."),
          ("LayerNorm", "In BERT's post-LN block the first LayerNorm (after attention) is attention.output.LayerNorm "
                        "and the second (after the feed-forward) is output.LayerNorm."),
          ("attention", "Query, key and value are separate projections: q_proj -> query, k_proj -> key, v_proj -> "
                        "value, out_proj -> attention.output.dense."))


def _tiny_bert(seed: int, *, vocab: int, max_len: int, d: int, heads: int, layers: int, d_ff: int) -> Any:
    """A random post-LN TinyBert (BERT's layout): every weight, bias and LayerNorm scale drawn, none trivial."""
    from dlcourse.mlm_model import BertConfig, TinyBert

    torch, _, _ = torch_modules()
    torch.manual_seed(seed)
    model = TinyBert(BertConfig(vocab, max_len=max_len, d_model=d, n_heads=heads, n_layers=layers, d_ff=d_ff,
                                dropout=0.0, norm_first=False, embedding_norm=True))
    randomise(model, seed=seed, std=0.3)
    return model.eval()


# two models: no two sizes equal, none a multiple of another (bar width = heads x head size), layers 3 then 1
_SIZES_15_6 = ({"vocab": 29, "max_len": 13, "d": 21, "heads": 7, "layers": 3, "d_ff": 19},
               {"vocab": 17, "max_len": 11, "d": 10, "heads": 5, "layers": 1, "d_ff": 23})


def _source_name(value: Any, state: dict[str, Any]) -> str | None:
    torch, _, _ = torch_modules()
    return next((k for k, v in state.items() if v.shape == value.shape and torch.equal(v, value)), None)


def _diagnose(mapped: dict[str, Any], state: dict[str, Any], n_layers: int) -> tuple[str, str]:
    """(sentence, hint) naming the first BertForMaskedLM entry that does not hold what the reference puts there."""
    from dlcourse.finetune.hf import hf_state_dict

    torch, _, _ = torch_modules()
    for key, want in hf_state_dict(state, n_layers).items():
        got = mapped.get(key)
        if got is None or torch.equal(got.detach().float(), want.float()):
            continue
        theirs, ours = _source_name(got.detach().float(), state), _source_name(want, state)
        held = f"the course's `{theirs}`" if theirs else "values that are not the course's"
        should = f"`{ours}`" if ours else "zeros"
        hint = next((h for part, h in _HINTS if part in key), _MAPPING_HINT)
        return f"The logits differ: `{key}` holds {held}; it should hold {should}.", hint
    return "The logits differ from the course model's.", _MAPPING_HINT


@exercise("15.6", "The weight mapping onto BertForMaskedLM", wrong_answers={
    "query and key swapped": _edit((_Q, '"self_attn.q_proj": "attention.self.key"'),
                                   (_K, '"self_attn.k_proj": "attention.self.query"')),
    "the two LayerNorms of a block swapped": _edit((_N1, '"norm1": "output.LayerNorm"'),
                                                   (_N2, '"norm2": "attention.output.LayerNorm"')),
    "value and output projections swapped": _edit((_V, '"self_attn.v_proj": "attention.output.dense"'),
                                                  (_O, '"self_attn.out_proj": "attention.self.value"')),
    "embedding LayerNorm left out": _edit((",  # one segment: adds nothing\n" + _EMB_NORM,
                                           "}  # one segment: adds nothing")),
    "embedding LayerNorm as the identity (ones and zeros)": _edit((_EMB_NORM, (
        '      "bert.embeddings.LayerNorm.weight": torch.ones(d),\n'
        '      "bert.embeddings.LayerNorm.bias": torch.zeros(d)}'))),
    "decoder not tied (a fresh output matrix)": _edit((
        'hf["cls.predictions.decoder.weight"] = s["encoder.token_embedding.weight"]',
        'hf["cls.predictions.decoder.weight"] = torch.randn_like(s["encoder.token_embedding.weight"]) * 0.02')),
    "output bias left out": _edit((_OUT_BIAS, "")),
    "output bias as zeros": _edit((_OUT_BIAS, 'hf["cls.predictions.decoder.bias"] = torch.zeros_like(s["bias"])\n'
                                              'hf["cls.predictions.bias"] = torch.zeros_like(s["bias"])')),
    "a random token-type embedding": _edit(("torch.zeros(1, d)", "torch.randn(1, d)")),
    "two layers hard-coded": _edit(("range(n_layers)", "range(2)")),
    "every weight transposed (Keras's (in, out) layout)": _edit((_LAYER_LINE, (
        'w = s[f"encoder.blocks.{i}.{ours}.{p}"]\n'
        '            hf[f"bert.encoder.layer.{i}.{theirs}.{p}"] = w.T if w.ndim == 2 else w'))),
}, accepted_answers={
    "every name written out, layer by layer": _EXPLICIT,
    "cloned tensors": _MAPPING + "\nhf = {name: tensor.clone() for name, tensor in hf.items()}",
    "the tied decoder left to the tie": _edit((_DECODER, "")),
    "a dict comprehension per layer": _edit((
        "    for ours, theirs in block.items():\n        for p in (\"weight\", \"bias\"):\n            " + _LAYER_LINE,
        '    hf.update({f"bert.encoder.layer.{i}.{theirs}.{p}": s[f"encoder.blocks.{i}.{ours}.{p}"]\n'
        '               for ours, theirs in block.items() for p in ("weight", "bias")})')),
})
def check_hf_state_dict(hf_state_dict: Any) -> str:
    from dlcourse.finetune.hf import course_logits, hf_config, hf_logits, model_from_mapping

    torch, _, _ = torch_modules()
    expect_callable(hf_state_dict, name="hf_state_dict")
    worst = 0.0
    for seed, sizes in enumerate(_SIZES_15_6, start=21):
        model = _tiny_bert(seed, **sizes)
        state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        try:
            mapped = hf_state_dict({k: v.clone() for k, v in state.items()}, sizes["layers"])
        except KeyError as error:
            raise Mismatch(f"On a model with {sizes['layers']} layer(s) `hf_state_dict` looked up {error}, which the "
                           "course's state dict does not have.",
                           "Print course_state.keys() for the course's names, and loop over range(n_layers).") from None
        try:
            converted = model_from_mapping(hf_config(model.config), mapped)
        except ValueError as error:
            hint = ("torch's nn.Linear and BERT's both store a weight as (out_features, in_features): copy it as "
                    "it is." if "shape" in str(error) else _MAPPING_HINT)
            raise Mismatch(f"On a model with {sizes['layers']} layer(s): {error}", hint) from None
        g = torch.Generator().manual_seed(seed)
        ids = torch.randint(0, sizes["vocab"], (3, sizes["max_len"]), generator=g)
        real = torch.ones_like(ids, dtype=torch.bool)
        real[1, sizes["max_len"] - 4:] = False  # one padded row: the attention mask must agree as well
        for padding in (None, real):
            want, got = course_logits(model, ids, padding), hf_logits(converted, ids, padding)
            keep = slice(None) if padding is None else padding
            if not torch.allclose(got[keep], want[keep], rtol=1e-5, atol=1e-5):
                raise Mismatch(*_diagnose(mapped, state, sizes["layers"]))
            worst = max(worst, float((got[keep] - want[keep]).abs().max()))
    return (f"BertForMaskedLM computes the course model's logits (largest difference {worst:.1e}) at two sizes, "
            "with and without padding.")


# ------------------------------------------------------------------------------------------- 15.7
_FIXED = '''\
tokenizer = AutoTokenizer.from_pretrained(folder)
model = AutoModelForMaskedLM.from_pretrained(folder)
model.eval()
inputs = tokenizer(text.replace("<mask>", tokenizer.mask_token), return_tensors="pt")
with torch.no_grad():
    outputs = model(**inputs, output_hidden_states=True)
position = (inputs["input_ids"][0] == tokenizer.mask_token_id).nonzero()[0, 0]
top = outputs.logits[0, position].topk(5).indices
top_tokens = tokenizer.convert_ids_to_tokens(top.tolist())
n_hidden_states = len(outputs.hidden_states)'''

SOLUTION_15_7 = ("from transformers import AutoModelForMaskedLM, AutoTokenizer\n\n\n" + _cell(
    "def fixed_example(folder: str, text: str) -> tuple[list[str], int]:",
    'text has one blank written "<mask>", as the circulating example writes it', _FIXED, "top_tokens, n_hidden_states"))

_TOP = "top = outputs.logits[0, position].topk(5).indices\n"
_MASK_HINT = ("Your code found no mask position: `<mask>` is RoBERTa's mask token, and this BERT tokenizer splits it "
              "into ordinary characters. Write the blank as the tokenizer's own mask token, `tokenizer.mask_token`.")
_HIDDEN_HINT = ("`outputs.hidden_states` is None unless you ask for it: call the model with "
                "`output_hidden_states=True`.")
_TOP_HINT = ("Take the logits at the mask position only, `outputs.logits[0, position]` with position where "
             "`input_ids == tokenizer.mask_token_id`, and their top 5 over the vocabulary (the last axis).")
_TEXT = "the quick brown fox jumps over the lazy dog, and the cat sat on the mat.\nwhat is the matter?"


def _save_model(folder: Path, seed: int, *, d: int, heads: int, layers: int, d_ff: int, max_len: int) -> int:
    """A random tiny BERT and the character tokenizer saved with save_pretrained; returns its layer count. The
    special tokens' output bias is lowered so that no top 5 depends on whether specials are counted."""
    from dlcourse.finetune.hf import save_for_transformers
    from dlcourse.mlm import CharTokenizer, build_vocab

    tokenizer = CharTokenizer(build_vocab(_TEXT))
    model = _tiny_bert(seed, vocab=tokenizer.vocab_size, max_len=max_len, d=d, heads=heads, layers=layers, d_ff=d_ff)
    torch, _, _ = torch_modules()
    with torch.no_grad():
        model.bias[: tokenizer.n_special] = -20.0
        model.encoder.position_embedding.mul_(4.0)  # positions matter: every position has its own top 5
    save_for_transformers(model, tokenizer, folder)
    return layers


def _tokens(value: Any, want: list[str]) -> list[str]:
    expect(isinstance(value, (list, tuple)), f"`top_tokens` should be a list of {len(want)} tokens (strings), "
           f"but it is {type(value).__name__}.", "tokenizer.convert_ids_to_tokens(ids) turns ids into tokens.")
    expect(len(value) == len(want), f"`top_tokens` has {len(value)} tokens; the top 5 at the mask is {len(want)}.",
           _TOP_HINT)
    expect(all(isinstance(t, str) for t in value), "`top_tokens` should hold tokens (strings), not ids.",
           "tokenizer.convert_ids_to_tokens(ids) turns ids into tokens.")
    return list(value)


@exercise("15.7", "The circulating example, corrected", wrong_answers={
    "the literal <mask> kept": _FIXED.replace('text.replace("<mask>", tokenizer.mask_token)', "text"),
    "no output_hidden_states=True": _FIXED.replace("model(**inputs, output_hidden_states=True)", "model(**inputs)"),
    "the top 5 at position 0": _FIXED.replace("outputs.logits[0, position]", "outputs.logits[0, 0]"),
    "the best token at every position (the circulating print)": _FIXED.replace(
        _TOP + "top_tokens = tokenizer.convert_ids_to_tokens(top.tolist())",
        "top_tokens = tokenizer.convert_ids_to_tokens(outputs.logits[0].argmax(dim=-1).tolist())"),
    "softmax over the positions, not the vocabulary": _FIXED.replace(
        _TOP, "probs = outputs.logits[0].softmax(dim=0)\ntop = probs[position].topk(5).indices\n"),
    "the number of layers, not of hidden states": _FIXED.replace(
        "len(outputs.hidden_states)", "model.config.num_hidden_layers"),
}, accepted_answers={
    "[MASK] written out": _FIXED.replace("tokenizer.mask_token)", '"[MASK]")'),
    "the pipeline for the top 5": '''\
from transformers import pipeline

tokenizer = AutoTokenizer.from_pretrained(folder)
model = AutoModelForMaskedLM.from_pretrained(folder)
masked = text.replace("<mask>", tokenizer.mask_token)
fill = pipeline("fill-mask", model=model, tokenizer=tokenizer)
top_tokens = [row["token_str"] for row in fill(masked, top_k=5)]
with torch.no_grad():
    outputs = model(**tokenizer(masked, return_tensors="pt"), output_hidden_states=True)
n_hidden_states = len(outputs.hidden_states)''',
    "list index, argsort and decode": _FIXED.replace(
        '(inputs["input_ids"][0] == tokenizer.mask_token_id).nonzero()[0, 0]',
        'inputs["input_ids"][0].tolist().index(tokenizer.mask_token_id)').replace(
        _TOP + "top_tokens = tokenizer.convert_ids_to_tokens(top.tolist())",
        "order = torch.argsort(outputs.logits[0, position], descending=True)[:5]\n"
        "top_tokens = [tokenizer.decode([i]) for i in order.tolist()]"),
    "probabilities first (softmax over the vocabulary)": _FIXED.replace(
        _TOP, "probs = outputs.logits.softmax(dim=-1)\ntop = probs[0, position].topk(5).indices\n"),
})
def check_fixed_example(fixed_example: Any) -> str:
    from dlcourse.finetune.hf import fixed_example as reference

    expect_callable(fixed_example, name="fixed_example")
    cases = (({"d": 15, "heads": 5, "layers": 3, "d_ff": 22, "max_len": 41}, "The cat sat on the <mask>."),
             ({"d": 14, "heads": 2, "layers": 1, "d_ff": 9, "max_len": 37}, "what is th<mask> matter? the dog"))
    with tempfile.TemporaryDirectory(prefix="dlcourse_15_7_") as root:
        for seed, (sizes, text) in enumerate(cases, start=31):
            folder = Path(root) / f"model{seed}"
            layers = _save_model(folder, seed, **sizes)
            want_tokens, _ = reference(folder, text)
            try:
                got = fixed_example(str(folder), text)
            except NotImplementedError:
                raise
            except Exception as error:
                detail = f"{type(error).__name__}: {error}".strip()[:200]
                no_mask = "index" in detail or "not in list" in detail
                hint = _HIDDEN_HINT if "NoneType" in detail else _MASK_HINT if no_mask else _TOP_HINT
                raise Mismatch(f"`fixed_example` raised {detail.rstrip('.')}.", hint) from None
            expect(isinstance(got, (tuple, list)) and len(got) == 2,
                   "`fixed_example` should return a pair: (top_tokens, n_hidden_states).")
            tokens = _tokens(got[0], want_tokens)
            expect(tokens == want_tokens, f"For {text!r} your top 5 is {tokens}; at the mask the model's top 5 is "
                   f"{want_tokens}.", _TOP_HINT)
            expect(not isinstance(got[1], bool) and isinstance(got[1], int) and got[1] == layers + 1,
                   f"`n_hidden_states` is {got[1]!r}; this model has {layers} layer(s), and with "
                   f"output_hidden_states=True it returns {layers + 1} tensors (the embeddings, then each layer).",
                   "Count what the model returns: len(outputs.hidden_states).")
    return ("Loaded from the local folder, the blank written as the tokenizer's [MASK], the top 5 read at the mask "
            "only, and every hidden state returned, on two models.")
