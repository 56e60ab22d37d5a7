#!/usr/bin/python3
"""PyTorch side of the CPU training-step benchmark: the same tiny LM as bench/bench_cpu_step.c (batch 8 x 256,
d_model 256, 4 layers, 4 heads / 2 KV heads, SwiGLU 688, vocab 256, untied head, RMSNorm, RoPE), one forward + backward + AdamW
step, warmup then median of N steps, with torch.set_num_threads(T)."""
import argparse
import math
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class RMSNorm(nn.Module):
    def __init__(self, d, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.eps = eps

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


class Block(nn.Module):
    def __init__(self, d, heads, kv_heads, ff):
        super().__init__()
        self.h, self.kv, self.dh = heads, kv_heads, d // heads
        self.input_layernorm, self.post_attention_layernorm = RMSNorm(d), RMSNorm(d)
        self.q_proj, self.o_proj = nn.Linear(d, d, bias=False), nn.Linear(d, d, bias=False)
        self.k_proj = nn.Linear(d, kv_heads * self.dh, bias=False)
        self.v_proj = nn.Linear(d, kv_heads * self.dh, bias=False)
        self.gate_proj, self.up_proj = nn.Linear(d, ff, bias=False), nn.Linear(d, ff, bias=False)
        self.down_proj = nn.Linear(ff, d, bias=False)

    def forward(self, x, cos, sin):
        B, T, D = x.shape
        h = self.input_layernorm(x)
        q = self.q_proj(h).view(B, T, self.h, self.dh).transpose(1, 2)
        k = self.k_proj(h).view(B, T, self.kv, self.dh).transpose(1, 2)
        v = self.v_proj(h).view(B, T, self.kv, self.dh).transpose(1, 2)
        q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
        k = k.repeat_interleave(self.h // self.kv, dim=1)  # GQA (torch 1.13 SDPA has no enable_gqa)
        v = v.repeat_interleave(self.h // self.kv, dim=1)
        if hasattr(F, "scaled_dot_product_attention"):  # torch >= 2.0: the fused kernel
            o = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            s = (q @ k.transpose(-1, -2)) / math.sqrt(self.dh)
            s = s.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf"))
            o = s.softmax(-1) @ v
        x = x + self.o_proj(o.transpose(1, 2).reshape(B, T, D))
        h = self.post_attention_layernorm(x)
        return x + self.down_proj(F.silu(self.gate_proj(h)) * self.up_proj(h))


class TinyLM(nn.Module):
    def __init__(self, vocab=256, d=256, layers=4, heads=4, kv_heads=2, ff=688):
        super().__init__()
        self.embed = nn.Embedding(vocab, d)
        self.layers = nn.ModuleList(Block(d, heads, kv_heads, ff) for _ in range(layers))
        self.norm = RMSNorm(d)
        self.lm_head = nn.Linear(d, vocab, bias=False)
        self.dh = d // heads

    def forward(self, ids, targets):
        T = ids.shape[1]
        inv = 1.0 / (10000 ** (torch.arange(0, self.dh, 2).float() / self.dh))
        f = torch.arange(T).float()[:, None] * inv[None]
        emb = torch.cat((f, f), -1)
        cos, sin = emb.cos(), emb.sin()
        x = self.embed(ids)
        for layer in self.layers:
            x = layer(x, cos, sin)
        logits = self.lm_head(self.norm(x))
        return F.cross_entropy(logits.view(-1, logits.shape[-1]), targets.view(-1))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = TinyLM()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.1)
    ids = torch.randint(0, 256, (8, 256))
    tg = torch.randint(0, 256, (8, 256))
    times = []
    for s in range(a.warmup + a.steps):
        t0 = time.perf_counter()
        loss = model(ids, tg)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        lv = loss.item()
        if s >= a.warmup:
            times.append(time.perf_counter() - t0)
    times.sort()
    med = times[len(times) // 2]
    n = sum(p.numel() for p in model.parameters())
    print(f"torch cpu step: {med * 1e3:.1f} ms median of {a.steps} (min {times[0] * 1e3:.1f}, max {times[-1] * 1e3:.1f}), "
          f"{a.threads} threads, {8 * 256 / med:.0f} tokens/s, {n} params, last loss {lv:.4f} (torch {torch.__version__})")


if __name__ == "__main__":
    main()
