"""A small reimplementation of nanoGPT's module layout (same state-dict keys, same maths), and ``save_ckpt``, which
writes a checkpoint the way nanoGPT's ``train.py`` writes ``ckpt.pt``: the reference the nanoGPT-format tests load
with interp and compare logits against."""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class _LayerNorm(nn.Module):
    def __init__(self, n: int, bias: bool):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n))
        self.bias = nn.Parameter(torch.zeros(n)) if bias else None

    def forward(self, x):
        return F.layer_norm(x, self.weight.shape, self.weight, self.bias, 1e-5)


class _Attention(nn.Module):
    def __init__(self, d: int, heads: int, ctx: int, bias: bool):
        super().__init__()
        self.c_attn, self.c_proj, self.heads = nn.Linear(d, 3 * d, bias=bias), nn.Linear(d, d, bias=bias), heads
        self.register_buffer("mask", torch.tril(torch.ones(ctx, ctx, dtype=torch.bool)), persistent=False)

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = (z.view(b, t, self.heads, d // self.heads).transpose(1, 2) for z in self.c_attn(x).split(d, 2))
        att = (q @ k.transpose(-2, -1)) / math.sqrt(d // self.heads)
        att = att.masked_fill(~self.mask[:t, :t], float("-inf")).softmax(-1)
        return self.c_proj((att @ v).transpose(1, 2).reshape(b, t, d))


class _Block(nn.Module):
    def __init__(self, d: int, heads: int, ctx: int, bias: bool):
        super().__init__()
        self.ln_1, self.attn = _LayerNorm(d, bias), _Attention(d, heads, ctx, bias)
        self.ln_2 = _LayerNorm(d, bias)
        self.mlp = nn.ModuleDict(dict(c_fc=nn.Linear(d, 4 * d, bias=bias), c_proj=nn.Linear(4 * d, d, bias=bias)))

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp["c_proj"](F.gelu(self.mlp["c_fc"](self.ln_2(x))))   # exact (erf) GELU, as nn.GELU()


class NanoGPT(nn.Module):
    """nanoGPT's GPT: transformer.{wte, wpe, h[i], ln_f}, lm_head tied to wte."""

    def __init__(self, n_layer=2, n_head=4, n_embd=32, block_size=16, vocab_size=50, bias=True):
        super().__init__()
        self.args = dict(n_layer=n_layer, n_head=n_head, n_embd=n_embd, block_size=block_size,
                         vocab_size=vocab_size, bias=bias, dropout=0.0)
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(vocab_size, n_embd), wpe=nn.Embedding(block_size, n_embd),
            h=nn.ModuleList([_Block(n_embd, n_head, block_size, bias) for _ in range(n_layer)]),
            ln_f=_LayerNorm(n_embd, bias)))
        self.lm_head = nn.Linear(n_embd, vocab_size, bias=False)
        self.lm_head.weight = self.transformer.wte.weight

    def forward(self, idx):
        x = self.transformer.wte(idx) + self.transformer.wpe(torch.arange(idx.shape[1]))
        for block in self.transformer.h:
            x = block(x)
        return self.lm_head(self.transformer.ln_f(x))


def save_ckpt(path, bias=True, compiled=False, seed=0, iter_num=500):
    """A checkpoint the way nanoGPT's train.py writes it (after one AdamW step, so the optimizer state is real)."""
    torch.manual_seed(seed)
    model = NanoGPT(bias=bias)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * (0.3 if p.ndim == 1 else 0.05))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.randint(0, 50, (2, 8))).sum().backward()
    opt.step()
    state = model.state_dict()
    if compiled:
        state = {f"_orig_mod.{k}": v for k, v in state.items()}
    torch.save({"model": state, "optimizer": opt.state_dict(), "model_args": model.args, "iter_num": iter_num,
                "best_val_loss": torch.tensor(2.5), "config": {"dataset": "shakespeare_char", "batch_size": 12}},
               path)
    return model
