"""Checks for lab 14 (a GPT from scratch): BPE pair counting and one merge, causal multi-head self-attention,
the pre-LN decoder block and the model with its tied output layer. The training step, top-p sampling and the
KV-cache are in ``dlcourse.checks.lab14_generation`` (re-exported here, so registry("14") finds them).

torch is imported inside the checks (a light interpreter imports this module)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dlcourse.check import Mismatch, expect, expect_array, expect_callable, exercise
from dlcourse.checks.lab14_support import copy_weights, randomise, torch_modules


# ------------------------------------------------------------------------------------------- 14.1
_SENNRICH = {("l", "o", "w"): 5, ("l", "o", "w", "e", "r"): 2, ("n", "e", "w", "e", "s", "t"): 6,
             ("w", "i", "d", "e", "s", "t"): 3, ("a", "a", "a"): 4, ("xa", "b"): 7, ("a", "b", "a", "b"): 1}


@exercise("14.1", "BPE: count the pairs, merge one", wrong_answers={
    "every distinct word counted once (its count ignored)": [
        "pairs = Counter()\nfor word, n in words.items():\n    for pair in zip(word, word[1:]):\n        pairs[pair] += 1",
        None],
    "a pair counted once per word, however often it occurs": [
        "pairs = Counter()\nfor word, n in words.items():\n    for pair in set(zip(word, word[1:])):\n"
        "        pairs[pair] += n", None],
    "merge by string replacement (joins 'xa' + 'b' for the pair ('a', 'b'))": [
        None, "out = ' '.join(word).replace(' '.join(pair), ''.join(pair)).split(' ')"],
    "only the first occurrence merged": [
        None, "out, i, done = [], 0, False\nwhile i < len(word):\n"
              "    if not done and i + 1 < len(word) and (word[i], word[i + 1]) == pair:\n"
              "        out.append(word[i] + word[i + 1]); i += 2; done = True\n"
              "    else:\n        out.append(word[i]); i += 1"],
    "overlapping merges ('a a a' becomes 'aa aa')": [
        None, "out, i = [], 0\nwhile i < len(word):\n"
              "    if i + 1 < len(word) and (word[i], word[i + 1]) == pair:\n        out.append(word[i] + word[i + 1])\n"
              "    elif i == 0 or (word[i - 1], word[i]) != pair:\n        out.append(word[i])\n    i += 1"],
}, accepted_answers={
    "a plain dict and a for loop over indices": [
        "pairs = {}\nfor word, n in words.items():\n    for i in range(len(word) - 1):\n"
        "        pairs[word[i], word[i + 1]] = pairs.get((word[i], word[i + 1]), 0) + n",
        "out = list(word)\ni = 0\nwhile i < len(out) - 1:\n    if (out[i], out[i + 1]) == pair:\n"
        "        out[i:i + 2] = [out[i] + out[i + 1]]\n    i += 1"],
})
def check_bpe(count_pairs: Any, merge_pair: Any) -> str:
    from dlcourse import bpe

    expect_callable(count_pairs, name="count_pairs")
    expect_callable(merge_pair, name="merge_pair")
    got = count_pairs(dict(_SENNRICH))
    expect(isinstance(got, Mapping), f"`count_pairs` should return a dict (or Counter) of pair → count, not "
                                     f"{type(got).__name__}.")
    got = {tuple(k): v for k, v in got.items() if v}
    want = dict(bpe.count_pairs(dict(_SENNRICH)))
    for pair, n in sorted(want.items()):
        expect(got.get(pair, 0) == n, f"The pair {pair} should be counted {n} times; yours says {got.get(pair, 0)}.",
               "Each word of `words` occurs `count` times in the text, so each of its adjacent pairs counts that "
               "many times — and a pair that occurs twice in one word ('a a a') counts twice.")
    extra = sorted(set(got) - set(want))
    expect(not extra, f"`count_pairs` reports pairs that are not adjacent in any word, e.g. {extra[:3]}.")
    cases = [(("a", "a", "a"), ("a", "a")), (("xa", "b"), ("a", "b")), (("a", "b", "a", "b"), ("a", "b")),
             (("n", "e", "w", "e", "s", "t"), ("e", "s")), (("l", "o", "w"), ("e", "r")), (("lo", "w"), ("lo", "w"))]
    for word, pair in cases:
        result = merge_pair(tuple(word), tuple(pair))
        expect(isinstance(result, (tuple, list)) and all(isinstance(s, str) for s in result),
               f"`merge_pair` should return a tuple of symbols (strings), not {type(result).__name__}.")
        want_word = bpe.merge_pair(word, pair)
        expect(tuple(result) == want_word, f"merge_pair({word}, {pair}) gives {tuple(result)}; expected {want_word}.",
               "Walk left to right: where the next two symbols equal the pair, emit their join and skip both; "
               "otherwise emit one symbol. Compare whole symbols, not the spelled-out string.")
    return "Pairs are counted with their word counts, and merges join whole symbols, left to right, never overlapping."


# ------------------------------------------------------------------------------------------- 14.2
_ATTN_WRONG = {
    "no causal mask (every position sees the future)": (
        "q, k, v = self.qkv(x).split(self.d_model, dim=-1)\n"
        "q, k, v = (split_heads(t, self.n_heads) for t in (q, k, v))\n"
        "weights = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]), dim=-1)\n"
        "out = merge_heads(weights @ v)"),
    "mask shifted by one: each position also sees the next one": (
        "q, k, v = self.qkv(x).split(self.d_model, dim=-1)\n"
        "q, k, v = (split_heads(t, self.n_heads) for t in (q, k, v))\n"
        "scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])\n"
        "mask = torch.ones(x.shape[1], x.shape[1], dtype=torch.bool).tril(diagonal=1)\n"
        "out = merge_heads(torch.softmax(scores.masked_fill(~mask, float('-inf')), dim=-1) @ v)"),
    "mask shifted by one: a position cannot see itself": (
        "q, k, v = self.qkv(x).split(self.d_model, dim=-1)\n"
        "q, k, v = (split_heads(t, self.n_heads) for t in (q, k, v))\n"
        "scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])\n"
        "mask = torch.ones(x.shape[1], x.shape[1], dtype=torch.bool).tril(diagonal=-1)\n"
        "mask[0, 0] = True\n"
        "out = merge_heads(torch.softmax(scores.masked_fill(~mask, float('-inf')), dim=-1) @ v)"),
    "softmax over the queries (positions), not the keys": (
        "q, k, v = self.qkv(x).split(self.d_model, dim=-1)\n"
        "q, k, v = (split_heads(t, self.n_heads) for t in (q, k, v))\n"
        "scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])\n"
        "mask = torch.from_numpy(causal_mask(x.shape[1]))\n"
        "out = merge_heads(torch.softmax(scores.masked_fill(~mask, -1e9), dim=-2) @ v)"),
    "scores not divided by sqrt(d_head)": (
        "q, k, v = self.qkv(x).split(self.d_model, dim=-1)\n"
        "q, k, v = (split_heads(t, self.n_heads) for t in (q, k, v))\n"
        "mask = torch.from_numpy(causal_mask(x.shape[1]))\n"
        "out = merge_heads(torch.softmax((q @ k.transpose(-2, -1)).masked_fill(~mask, float('-inf')), dim=-1) @ v)"),
    "heads made with a reshape instead of a transpose": (
        "b, t, d = x.shape\n"
        "q, k, v = (z.reshape(b, self.n_heads, t, d // self.n_heads) for z in self.qkv(x).split(d, dim=-1))\n"
        "out = F.scaled_dot_product_attention(q, k, v, is_causal=True).reshape(b, t, d)"),
}


@exercise("14.2", "Causal multi-head self-attention", wrong_answers=_ATTN_WRONG, accepted_answers={
    "F.scaled_dot_product_attention with is_causal=True": (
        "q, k, v = (split_heads(t, self.n_heads) for t in self.qkv(x).split(self.d_model, dim=-1))\n"
        "out = merge_heads(F.scaled_dot_product_attention(q, k, v, is_causal=True))"),
    "einsum and an upper-triangular -1e9": (
        "b, t, d = x.shape\n"
        "q, k, v = (z.view(b, t, self.n_heads, d // self.n_heads) for z in self.qkv(x).split(d, dim=-1))\n"
        "scores = torch.einsum('bqhd,bkhd->bhqk', q, k) / (d // self.n_heads) ** 0.5\n"
        "scores = scores.masked_fill(torch.triu(torch.ones(t, t, dtype=torch.bool), 1), -1e9)\n"
        "out = torch.einsum('bhqk,bkhd->bqhd', scores.softmax(-1), v).reshape(b, t, d)"),
})
def check_causal_attention(CausalSelfAttention: Any) -> str:
    torch, F, nn = torch_modules()
    expect_callable(CausalSelfAttention, name="CausalSelfAttention")
    d, h = 24, 3
    module = CausalSelfAttention(d, h)
    expect(isinstance(module, nn.Module), "`CausalSelfAttention(d_model, n_heads)` should build an nn.Module.")
    randomise(module, seed=2, std=0.3)
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, 7, d, generator=g)
    x[1] *= 6.0  # the second sequence's scores are far larger: the softmax must stay stable
    module.eval()
    with torch.no_grad():
        got = module(x.clone())
        qkv = module.qkv(x).split(d, dim=-1)
        q, k, v = (t.view(2, 7, h, d // h).transpose(1, 2) for t in qkv)
        want = module.proj(F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(2, 7, d))
    expect(tuple(getattr(got, "shape", ())) == (2, 7, d),
           f"The output should have shape (2, 7, {d}) for an input of that shape; it is {tuple(getattr(got, 'shape', ()))}.")
    with torch.no_grad():
        changed = x.clone()
        changed[:, -1] += 3.0
        future = (module(changed)[:, :-1] - got[:, :-1]).abs().max().item()
    expect(future < 1e-5, "Changing the LAST token changed the outputs at earlier positions: they can see the future.",
           "Query t may attend to keys 0..t only: mask the scores above the diagonal with -inf before the softmax "
           "over the keys (lab 09's causal_mask, True = may attend).")
    expect_array(got, want, name="the attention output", rtol=1e-4, atol=1e-4,
                 hint="Compare with F.scaled_dot_product_attention(q, k, v, is_causal=True): scores q·kᵀ/√d_head, "
                      "the mask on and below the diagonal, softmax over the KEYS (the last axis), heads from "
                      "split_heads (view then transpose).")
    return (f"Matches F.scaled_dot_product_attention(..., is_causal=True) with d_model={d}, {h} heads, "
            "and no position sees the future.")


# ------------------------------------------------------------------------------------------- 14.3
@exercise("14.3", "The pre-LN decoder block", wrong_answers={
    "post-LN (LayerNorm after the residual sum)": (
        "x = self.ln1(x + self.attn(x))\nx = self.ln2(x + self.mlp(x))"),
    "no residual around attention": "x = self.attn(self.ln1(x))\nx = x + self.mlp(self.ln2(x))",
    "residual adds the normalised input": "h = self.ln1(x)\nx = h + self.attn(h)\nh = self.ln2(x)\nx = h + self.mlp(h)",
    "one LayerNorm for both sub-layers": "x = x + self.attn(self.ln1(x))\nx = x + self.mlp(self.ln1(x))",
    "parallel sub-layers (the FFN does not see the attention output)": (
        "x = x + self.attn(self.ln1(x)) + self.mlp(self.ln2(x))"),
}, accepted_answers={
    "named intermediate values": "attended = x + self.attn(self.ln1(x))\nx = attended + self.mlp(self.ln2(attended))",
})
def check_decoder_block(DecoderBlock: Any) -> str:
    torch, _, nn = torch_modules()
    from dlcourse.attention import causal_mask
    from dlcourse.gpt import CausalSelfAttention
    from dlcourse.transformer import EncoderBlock

    expect_callable(DecoderBlock, name="DecoderBlock")
    d, h, t = 20, 4, 9
    block = DecoderBlock(d, h)
    expect(isinstance(block, nn.Module), "`DecoderBlock(d_model, n_heads)` should build an nn.Module.")
    for name in ("ln1", "attn", "ln2", "mlp"):
        expect(hasattr(block, name), f"The block has no `{name}`: keep the sub-modules the cell's __init__ makes.")
    reference_attn = CausalSelfAttention(d, h)
    copy_weights(block.attn, reference_attn, "block.attn")
    block.attn = reference_attn  # the block is checked on its own, with the course's attention inside
    randomise(block, seed=4, std=0.3)  # LayerNorm weights and biases far from 1 and 0
    lab10 = EncoderBlock(d, h, 4 * d, dropout=0.0, norm_first=True, activation="gelu")
    with torch.no_grad():
        for proj, w, b in zip((lab10.self_attn.q_proj, lab10.self_attn.k_proj, lab10.self_attn.v_proj),
                              block.attn.qkv.weight.chunk(3), block.attn.qkv.bias.chunk(3)):
            proj.weight.copy_(w)
            proj.bias.copy_(b)
        lab10.self_attn.out_proj.load_state_dict(block.attn.proj.state_dict())
        lab10.linear1.load_state_dict(block.mlp[0].state_dict())
        lab10.linear2.load_state_dict(block.mlp[2].state_dict())
        lab10.norm1.load_state_dict(block.ln1.state_dict())
        lab10.norm2.load_state_dict(block.ln2.state_dict())
    x = torch.randn(3, t, d, generator=torch.Generator().manual_seed(5)) * 2.0
    block.eval()
    lab10.eval()
    with torch.no_grad():
        got = block(x.clone())
        want = lab10(x, attn_mask=torch.from_numpy(causal_mask(t)))
    expect_array(got, want, name="the block's output", rtol=1e-4, atol=1e-4,
                 hint="Pre-LN: x = x + attn(ln1(x)), then x = x + mlp(ln2(x)) — each sub-layer reads a normalised "
                      "copy, and the residual stream x itself is never normalised inside the block.")
    return "Matches lab 10's pre-LN EncoderBlock with a causal mask: a GPT block is that block, looking only left."


# ------------------------------------------------------------------------------------------- 14.4
_GPT_FORWARD = ("positions = torch.arange(idx.shape[1], device=idx.device)\n"
                "x = self.token_embedding(idx) + self.position_embedding(positions)\n"
                "for block in self.blocks:\n    x = block(x)\n")


@exercise("14.4", "The GPT: embeddings, blocks, final LayerNorm, tied output layer", wrong_answers={
    "output layer not tied": ["pass", None],
    "output layer a copy of the embedding (two matrices)": [
        "self.head.weight = nn.Parameter(self.token_embedding.weight.detach().clone())", None],
    "no position embeddings": [None, "x = self.token_embedding(idx)\nfor block in self.blocks:\n    x = block(x)\n"
                                     "logits = self.head(self.final_norm(x))"],
    "no final LayerNorm": [None, _GPT_FORWARD + "logits = self.head(x)"],
    "returns probabilities, not logits": [None, _GPT_FORWARD + "logits = torch.softmax(self.head(self.final_norm(x)), -1)"],
    "logits for the last position only": [None, _GPT_FORWARD + "logits = self.head(self.final_norm(x[:, -1]))"],
}, accepted_answers={
    "tied the other way round": ["self.token_embedding.weight = self.head.weight", None],
    "positions from the embedding table's rows": [
        None, "x = self.token_embedding(idx) + self.position_embedding.weight[: idx.shape[1]]\n"
              "for block in self.blocks:\n    x = block(x)\nlogits = self.head(self.final_norm(x))"],
})
def check_gpt(GPT: Any) -> str:
    torch, F, nn = torch_modules()
    from dlcourse.gpt import DecoderBlock

    expect_callable(GPT, name="GPT")
    vocab, block_size, d, h, layers = 23, 11, 12, 3, 2
    model = GPT(vocab, block_size, d, h, layers)
    expect(isinstance(model, nn.Module), "`GPT(...)` should build an nn.Module.")
    expect(model.head.weight is model.token_embedding.weight or
           model.head.weight.data_ptr() == model.token_embedding.weight.data_ptr(),
           "The output layer and the token embedding are two different matrices: tie them.",
           "One nn.Parameter used twice (Press & Wolf 2017): self.head.weight = self.token_embedding.weight. A copy "
           "starts equal but the two drift apart in training, and the model has V·d more parameters.")
    blocks = []
    for i, theirs in enumerate(model.blocks):
        ours = DecoderBlock(d, h)
        copy_weights(theirs, ours, f"blocks[{i}]")
        blocks.append(ours)
    model.blocks = nn.ModuleList(blocks)  # the model is checked on its own, with the course's blocks inside
    randomise(model, seed=6, std=0.4)
    model.eval()
    for shape in ((3, 7), (2, block_size)):
        idx = torch.randint(0, vocab, shape, generator=torch.Generator().manual_seed(sum(shape)))
        with torch.no_grad():
            got = model(idx.clone())
            x = model.token_embedding(idx) + model.position_embedding.weight[: shape[1]]
            for block in model.blocks:
                x = block(x)
            want = F.linear(model.final_norm(x), model.token_embedding.weight)
        expect(tuple(getattr(got, "shape", ())) == (*shape, vocab),
               f"For (B, T) = {shape} the logits should have shape {(*shape, vocab)}; yours have "
               f"{tuple(getattr(got, 'shape', ()))}.", "Next-token logits at EVERY position: training uses all of them.")
        expect_array(got, want, name=f"the logits for a {shape} batch", rtol=1e-4, atol=1e-4,
                     hint="token vectors + position vectors (positions 0..T-1), every block, final LayerNorm, then "
                          "the tied output layer; return raw logits (cross-entropy applies the softmax).")
    return f"Logits match for T = 7 and T = {block_size}, and one matrix serves as embedding and output layer."


from dlcourse.checks.lab14_generation import check_kv_cache, check_top_p, check_train_step  # noqa: E402,F401
