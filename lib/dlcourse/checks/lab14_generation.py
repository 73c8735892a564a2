"""Checks for lab 14's second half: the next-token training step, top-p (nucleus) filtering and attention
with a key/value cache. Re-exported by ``dlcourse.checks.lab14``."""

from __future__ import annotations

import copy
import math
from typing import Any

from dlcourse.check import Mismatch, expect, expect_array, expect_callable, expect_number, exercise
from dlcourse.checks.lab14_support import randomise, torch_modules

_LOSS = "loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))\n"
_UPDATE = "optimizer.zero_grad()\nloss.backward()\noptimizer.step()"


def _tiny_gpt(seed: int, *, vocab: int = 19, block_size: int = 10, d: int = 16, heads: int = 4, layers: int = 2,
              std: float = 0.3):
    from dlcourse.gpt import GPT

    torch, _, _ = torch_modules()
    torch.manual_seed(seed)
    model = GPT(vocab, block_size, d, heads, layers)
    randomise(model, seed=seed, std=std)
    return model


# ------------------------------------------------------------------------------------------- 14.5
@exercise("14.5", "The next-token training step", wrong_answers={
    "targets not shifted (predicts the token it is given)": (
        "inputs, targets = chunk[:, :-1], chunk[:, :-1]\nlogits = model(inputs)\n" + _LOSS + _UPDATE),
    "shifted the wrong way (predicts the previous token)": (
        "inputs, targets = chunk[:, 1:], chunk[:, :-1]\nlogits = model(inputs)\n" + _LOSS + _UPDATE),
    "softmax over positions, not the vocabulary": (
        "inputs, targets = chunk[:, :-1], chunk[:, 1:]\nlogits = model(inputs)\n"
        "log_p = torch.log_softmax(logits, dim=1)\n"
        "loss = F.nll_loss(log_p.reshape(-1, log_p.shape[-1]), targets.reshape(-1))\n" + _UPDATE),
    "gradients never zeroed (they pile up over steps)": (
        "inputs, targets = chunk[:, :-1], chunk[:, 1:]\nlogits = model(inputs)\n" + _LOSS +
        "loss.backward()\noptimizer.step()"),
}, accepted_answers={
    "cross-entropy on (B, V, T) logits, zero_grad first": (
        "optimizer.zero_grad(set_to_none=True)\ninputs, targets = chunk[:, :-1], chunk[:, 1:]\n"
        "logits = model(inputs)\nloss = F.cross_entropy(logits.transpose(1, 2), targets)\n"
        "loss.backward()\noptimizer.step()"),
})
def check_train_step(train_step: Any) -> str:
    torch, F, _ = torch_modules()
    from dlcourse.gpt import train_step as reference

    expect_callable(train_step, name="train_step")
    theirs, ours = _tiny_gpt(7), _tiny_gpt(7)
    opt_theirs = torch.optim.SGD(theirs.parameters(), lr=0.3, momentum=0.5)
    opt_ours = torch.optim.SGD(ours.parameters(), lr=0.3, momentum=0.5)
    g = torch.Generator().manual_seed(8)
    for step in range(3):
        chunk = torch.randint(0, 19, (3, 9), generator=g)
        got = train_step(theirs, opt_theirs, chunk.clone())
        want = reference(ours, opt_ours, chunk)
        try:
            got = float(got)
        except (TypeError, ValueError, RuntimeError):
            raise Mismatch(f"`train_step` should return the loss as a number; it returned {type(got).__name__}.",
                           "Return loss.item(): a float, detached from the graph.") from None
        expect_number(got, want, name=f"the loss of step {step + 1}", rtol=1e-4, atol=1e-5,
                      hint="inputs are chunk[:, :-1] and targets chunk[:, 1:] (the NEXT token); cross-entropy over "
                           "the VOCABULARY at every position; zero the gradients before each backward pass.")
    for (name, p), q in zip(ours.named_parameters(), theirs.parameters()):
        expect_array(q.detach(), p.detach(), name=f"`{name}` after three steps", rtol=1e-4, atol=1e-5,
                     hint="optimizer.zero_grad(), loss.backward(), optimizer.step(), once each per call: gradients "
                          "left from the previous step would be added to this one's.")
    return "Three SGD steps match: next-token targets, cross-entropy over the vocabulary, fresh gradients each step."


# ------------------------------------------------------------------------------------------- 14.6
_SORT = "probs, order = torch.softmax(logits, dim=-1).sort(dim=-1, descending=True)\n"
_SCATTER = "drop = drop_sorted.scatter(-1, order, drop_sorted)\nfiltered = logits.masked_fill(drop, float('-inf'))"


@exercise("14.6", "Top-p (nucleus) filtering", wrong_answers={
    "one token too few (drops the token that crosses p)": (
        _SORT + "drop_sorted = probs.cumsum(dim=-1) >= p\n" + _SCATTER),
    "no sorting (cumulative mass in vocabulary order)": (
        "probs = torch.softmax(logits, dim=-1)\nbefore = probs.cumsum(dim=-1) - probs\n"
        "filtered = logits.masked_fill(before >= p, float('-inf'))"),
    "keeps the least probable tokens": (
        "probs, order = torch.softmax(logits, dim=-1).sort(dim=-1)\n"
        "drop_sorted = probs.cumsum(dim=-1) - probs >= p\n" + _SCATTER),
    "a probability threshold p, not a cumulative mass": (
        "filtered = logits.masked_fill(torch.softmax(logits, dim=-1) < p, float('-inf'))"),
    "returns the kept probabilities, not logits": (
        _SORT + "drop_sorted = probs.cumsum(dim=-1) - probs >= p\n"
        "drop = drop_sorted.scatter(-1, order, drop_sorted)\n"
        "filtered = torch.softmax(logits, dim=-1).masked_fill(drop, 0.0)"),
}, accepted_answers={
    "ascending sort, drop the mass at most 1 - p (Hugging Face's way)": (
        "sorted_logits, order = torch.sort(logits, descending=False)\n"
        "remove = sorted_logits.softmax(dim=-1).cumsum(dim=-1) <= 1 - p\n"
        "remove[..., -1] = False\n"
        "filtered = logits.masked_fill(remove.scatter(-1, order, remove), float('-inf'))"),
    "a loop over rows": (
        "filtered = torch.full_like(logits, float('-inf'))\n"
        "for row, out in zip(logits.reshape(-1, logits.shape[-1]), filtered.view(-1, logits.shape[-1])):\n"
        "    total = 0.0\n"
        "    for i in torch.argsort(row, descending=True).tolist():\n"
        "        out[i] = row[i]\n"
        "        total += torch.softmax(row, dim=-1)[i].item()\n"
        "        if total >= p:\n            break"),
})
def check_top_p(top_p_filter: Any) -> str:
    torch, _, _ = torch_modules()
    expect_callable(top_p_filter, name="top_p_filter")
    g = torch.Generator().manual_seed(9)
    # probabilities with clear gaps between their cumulative sums, in shuffled order, at three scales
    probs = torch.tensor([[0.42, 0.21, 0.13, 0.09, 0.06, 0.04, 0.03, 0.02],
                          [0.71, 0.12, 0.07, 0.04, 0.03, 0.015, 0.01, 0.005],
                          [0.26, 0.2, 0.17, 0.13, 0.1, 0.07, 0.04, 0.03]], dtype=torch.float64)
    logits = torch.stack([row[torch.randperm(8, generator=g)] for row in probs]).log().float()
    logits = logits + torch.tensor([[0.0], [1000.0], [-40.0]])  # rows far apart: the softmax shift must not matter
    for p in (0.5, 0.75, 0.88, 0.2):  # each at least 0.01 from every cumulative sum
        got = top_p_filter(logits.clone(), p)
        expect(hasattr(got, "shape") and tuple(got.shape) == tuple(logits.shape),
               f"`top_p_filter` should return logits of the same shape {tuple(logits.shape)}.")
        got = torch.as_tensor(got, dtype=torch.float32)
        sorted_p, order = probs.sort(dim=-1, descending=True)
        for r in range(3):
            keep_n = int(((sorted_p[r].cumsum(0) - sorted_p[r]) < p).sum())
            want_kept = set(torch.argsort(logits[r], descending=True)[:keep_n].tolist())
            kept = set(torch.nonzero(torch.isfinite(got[r])).flatten().tolist())
            expect(kept == want_kept,
                   f"At p = {p}, row {r} keeps {len(kept)} token(s); the nucleus is the {keep_n} most probable "
                   f"({', '.join(f'{x:.3f}' for x in sorted_p[r][:keep_n].tolist())}).",
                   "Sort the probabilities in descending order and keep each token while the mass ABOVE it is still "
                   "below p: the token that takes the total past p belongs to the nucleus (Holtzman et al. 2020).")
            expect(bool(torch.equal(got[r][sorted(kept)], logits[r][sorted(kept)])),
                   "The kept entries should be the original logits, unchanged (the others -inf).")
    return "The nucleus is the smallest set of most probable tokens whose mass reaches p, at four values of p."


# ------------------------------------------------------------------------------------------- 14.7
_PROJ = ("q, k, v = attn.qkv(x).split(attn.d_model, dim=-1)\n"
         "q, k, v = (split_heads(t, attn.n_heads) for t in (q, k, v))\n")


@exercise("14.7", "Attention with a key/value cache", wrong_answers={
    "attends before appending (a new token cannot see itself)": (
        _PROJ + "past_k, past_v = cache.get('k', k[:, :, :0]), cache.get('v', v[:, :, :0])\n"
        "if past_k.shape[2] == 0:\n    out = F.scaled_dot_product_attention(q, k, v, is_causal=True)\n"
        "else:\n    out = F.scaled_dot_product_attention(q, past_k, past_v)\n"
        "cache['k'], cache['v'] = torch.cat([past_k, k], 2), torch.cat([past_v, v], 2)"),
    "the cache replaced, not extended": (
        _PROJ + "cache['k'], cache['v'] = k, v\nout = F.scaled_dot_product_attention(q, k, v, is_causal=True)"),
    "new keys appended twice": (
        _PROJ + "if 'k' in cache:\n    k, v = torch.cat([cache['k'], k, k], 2), torch.cat([cache['v'], v, v], 2)\n"
        "cache['k'], cache['v'] = k, v\nt_new, t_all = q.shape[2], k.shape[2]\n"
        "mask = torch.from_numpy(causal_mask(t_all)[t_all - t_new:])\n"
        "out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)"),
    "no causal mask (a prompt's tokens see each other's future)": (
        _PROJ + "if 'k' in cache:\n    k, v = torch.cat([cache['k'], k], 2), torch.cat([cache['v'], v], 2)\n"
        "cache['k'], cache['v'] = k, v\nout = F.scaled_dot_product_attention(q, k, v)"),
}, accepted_answers={
    "written-out attention, mask by position numbers": (
        _PROJ + "past = cache['k'].shape[2] if 'k' in cache else 0\n"
        "if past:\n    k, v = torch.cat([cache['k'], k], 2), torch.cat([cache['v'], v], 2)\n"
        "cache['k'], cache['v'] = k, v\n"
        "rows = torch.arange(past, past + q.shape[2])[:, None]\ncols = torch.arange(k.shape[2])[None, :]\n"
        "scores = (q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])).masked_fill(cols > rows, float('-inf'))\n"
        "out = torch.softmax(scores, dim=-1) @ v"),
})
def check_kv_cache(cached_attention: Any) -> str:
    torch, _, _ = torch_modules()
    from dlcourse.gpt import forward_cached

    expect_callable(cached_attention, name="cached_attention")
    model = _tiny_gpt(10, vocab=17, block_size=14, d=18, heads=3, layers=2)
    model.eval()
    ids = torch.randint(0, 17, (2, 13), generator=torch.Generator().manual_seed(11))
    caches = [{} for _ in model.blocks]
    worst = 0.0
    with torch.no_grad():
        full = model(ids)
        for start, stop in ((0, 5), (5, 6), (6, 7), (7, 10), (10, 11), (11, 12), (12, 13)):
            got = forward_cached(model, ids[:, start:stop].clone(), caches, attend=cached_attention)
            expect(tuple(getattr(got, "shape", ())) == (2, stop - start, 17),
                   f"Feeding positions {start}..{stop - 1} should give logits of shape {(2, stop - start, 17)}; "
                   f"got {tuple(getattr(got, 'shape', ()))}.",
                   "Return one output row per NEW position: (B, T_new, d) before the output projection's reshape.")
            gap = float((got - full[:, start:stop]).abs().max())
            expect(math.isfinite(gap) and gap < 1e-4,
                   f"With the cache, the logits of positions {start}..{stop - 1} differ from the full recomputation "
                   f"by up to {gap:.3g}.",
                   "Append the new keys and values to the cache FIRST, then let the new queries attend to all of "
                   "them; new query i sits at position past + i and may see keys 0..past + i only.")
            worst = max(worst, gap)
    k = caches[0].get("k")
    expect(k is not None and tuple(k.shape) == (2, 3, 13, 6),
           f"After 13 tokens the first layer's cache['k'] should have shape (2, 3, 13, 6) (B, heads, T, d_head); "
           f"it is {None if k is None else tuple(k.shape)}.")
    return f"Logits equal the full recomputation at every step (largest difference {worst:.1e}), prompt and tokens alike."
