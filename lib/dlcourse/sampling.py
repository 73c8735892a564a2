"""Lab 14's text generation: greedy decoding, temperature, top-k and top-p (nucleus, Holtzman et al. 2020)
sampling, generation with or without a key/value cache, and the generation explorer (a widget with a static
fallback). The model is any ``dlcourse.gpt.GPT``-shaped module: (B, T) ids → (B, T, V) logits, ``block_size``.
"""

from __future__ import annotations

import time
from typing import Callable

import torch
from torch import Tensor, nn

from dlcourse.gpt import cached_attention, forward_cached

Filter = Callable[[Tensor, float], Tensor]


def top_k_filter(logits: Tensor, k: int) -> Tensor:
    """Logits with all but the k largest per row set to -inf."""
    k = min(int(k), logits.shape[-1])
    threshold = logits.topk(k, dim=-1).values[..., -1:]
    return logits.masked_fill(logits < threshold, float("-inf"))


def top_p_filter(logits: Tensor, p: float) -> Tensor:
    """Keep the smallest set of most probable tokens whose probabilities add up to at least p; the rest → -inf."""
    probs, order = torch.softmax(logits, dim=-1).sort(dim=-1, descending=True)
    before = probs.cumsum(dim=-1) - probs  # probability of the tokens ranked above this one
    drop_sorted = before >= p  # the top token always has before = 0, so it is always kept
    drop = drop_sorted.scatter(-1, order, drop_sorted)
    return logits.masked_fill(drop, float("-inf"))


def next_token(logits: Tensor, *, temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
               generator: torch.Generator | None = None, top_p_fn: Filter = top_p_filter) -> Tensor:
    """(B, V) logits of the last position → (B,) next ids. temperature 0 means greedy (the argmax)."""
    if temperature <= 0:
        return logits.argmax(dim=-1)
    logits = logits / temperature
    if top_k is not None:
        logits = top_k_filter(logits, top_k)
    if top_p is not None and top_p < 1.0:
        logits = top_p_fn(logits, top_p)
    return torch.multinomial(torch.softmax(logits, dim=-1), 1, generator=generator)[:, 0]


@torch.no_grad()
def generate(model: nn.Module, prompt: Tensor, n_new: int, *, seed: int = 0, cache: bool = False,
             attend: Callable = cached_attention, **sampling) -> Tensor:
    """(B, T₀) prompt → (B, T₀ + n_new) ids. Without a cache every step runs the whole (cropped) context again;
    with one, each step feeds only the newest token (the context must then fit in ``block_size``)."""
    was = model.training
    model.eval()
    generator = torch.Generator().manual_seed(seed)
    ids = prompt
    try:
        if cache:
            if prompt.shape[1] + n_new > model.block_size:
                raise ValueError(f"{prompt.shape[1]} + {n_new} tokens do not fit the {model.block_size} positions.")
            caches = [{} for _ in model.blocks]
            logits = forward_cached(model, prompt, caches, attend)[:, -1]
            for i in range(n_new):
                new = next_token(logits, generator=generator, **sampling)[:, None]
                ids = torch.cat([ids, new], dim=1)
                if i < n_new - 1:
                    logits = forward_cached(model, new, caches, attend)[:, -1]
        else:
            for _ in range(n_new):
                logits = model(ids[:, -model.block_size:])[:, -1]
                ids = torch.cat([ids, next_token(logits, generator=generator, **sampling)[:, None]], dim=1)
    finally:
        model.train(was)
    return ids


@torch.no_grad()
def cache_logit_gap(model: nn.Module, prompt: Tensor, n_new: int, attend: Callable = cached_attention) -> list[float]:
    """Greedy decoding with the cache; at every step, max |logits(cache) − logits(full recomputation)|."""
    model.eval()
    caches = [{} for _ in model.blocks]
    ids, gaps = prompt, []
    cached = forward_cached(model, prompt, caches, attend)
    for _ in range(n_new):
        full = model(ids)
        gaps.append(float((cached - full[:, -cached.shape[1]:]).abs().max()))
        new = full[:, -1].argmax(-1, keepdim=True)
        ids = torch.cat([ids, new], dim=1)
        if ids.shape[1] > model.block_size:
            break
        cached = forward_cached(model, new, caches, attend)
    return gaps


def time_generation(model: nn.Module, prompt: Tensor, n_new: int, *, attend: Callable = cached_attention,
                    repeats: int = 3) -> dict[str, float]:
    """Best-of-``repeats`` seconds to generate n_new greedy tokens without and with the cache."""
    times = {}
    for cache in (False, True):
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            generate(model, prompt, n_new, cache=cache, attend=attend, temperature=0.0)
            best = min(best, time.perf_counter() - start)
        times["cache" if cache else "no cache"] = best
    return times


def sample_text(model: nn.Module, tokenizer, prompt: str, n_new: int, *, seed: int = 0, **sampling) -> str:
    """Decode ``n_new`` sampled tokens after ``prompt`` (any tokenizer with encode/decode)."""
    ids = torch.tensor([tokenizer.encode(prompt)[-model.block_size:]])
    return tokenizer.decode(generate(model, ids, n_new, seed=seed, **sampling)[0].tolist())


def generation_explorer(model: nn.Module, tokenizer, prompt: str = "ROMEO:\n", *, length: int = 200,
                        temperature: float = 0.8, top_p: float = 0.9, seed: int = 0, top_p_fn: Filter = top_p_filter):
    """Lab 14: a prompt box and sliders for temperature, top-p and length; the sample is shown below."""
    import html

    import ipywidgets as widgets

    text = widgets.Textarea(value=prompt, description="prompt", layout=widgets.Layout(width="90%"),
                            continuous_update=False)
    temp = widgets.FloatSlider(value=temperature, min=0.0, max=2.0, step=0.05, description="temperature",
                               continuous_update=False)
    nucleus = widgets.FloatSlider(value=top_p, min=0.05, max=1.0, step=0.05, description="top-p",
                                  continuous_update=False)
    n = widgets.IntSlider(value=length, min=10, max=500, step=10, description="length", continuous_update=False)
    out = widgets.HTML()

    def draw(_change: object = None) -> None:
        sample = sample_text(model, tokenizer, text.value or "\n", int(n.value), seed=seed,
                             temperature=float(temp.value), top_p=float(nucleus.value), top_p_fn=top_p_fn)
        out.value = f"<pre style='white-space:pre-wrap'>{html.escape(sample)}</pre>"

    for w in (text, temp, nucleus, n):
        w.observe(draw, names="value")
    draw()
    return widgets.VBox([text, temp, nucleus, n, out])
