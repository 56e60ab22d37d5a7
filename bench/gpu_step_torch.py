#!/usr/bin/python3
"""PyTorch side of the GPU training-step benchmark: the Qwen2.5-0.5B-shaped decoder of bench/bench_gpu_step.c
(hidden 896, 24 layers, 14 heads / 2 KV heads, SwiGLU 4864, vocab 151936, tied embeddings, q/k/v bias, RoPE theta
1e6) with the same precision policy (f32 master weights and AdamW state, bf16 autocast for GEMMs and attention),
one forward + backward + AdamW step, eager and torch.compile. Prints RESULT lines (tokens/s and MFU)."""
import argparse
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
        xf = x.float()
        return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)).to(x.dtype) * self.weight


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


class Block(nn.Module):
    def __init__(self, d, heads, kv_heads, ff):
        super().__init__()
        self.h, self.kv, self.dh = heads, kv_heads, d // heads
        self.input_layernorm, self.post_attention_layernorm = RMSNorm(d), RMSNorm(d)
        self.q_proj = nn.Linear(d, d, bias=True)
        self.k_proj = nn.Linear(d, kv_heads * self.dh, bias=True)
        self.v_proj = nn.Linear(d, kv_heads * self.dh, bias=True)
        self.o_proj = nn.Linear(d, d, bias=False)
        self.gate_proj, self.up_proj = nn.Linear(d, ff, bias=False), nn.Linear(d, ff, bias=False)
        self.down_proj = nn.Linear(ff, d, bias=False)

    def forward(self, x, cos, sin):
        B, T, D = x.shape
        h = self.input_layernorm(x)
        q = self.q_proj(h).view(B, T, self.h, self.dh).transpose(1, 2)
        k = self.k_proj(h).view(B, T, self.kv, self.dh).transpose(1, 2)
        v = self.v_proj(h).view(B, T, self.kv, self.dh).transpose(1, 2)
        q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
        try:
            o = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
        except TypeError:  # torch < 2.5: no enable_gqa
            g = self.h // self.kv
            o = F.scaled_dot_product_attention(q, k.repeat_interleave(g, 1), v.repeat_interleave(g, 1), is_causal=True)
        x = x + self.o_proj(o.transpose(1, 2).reshape(B, T, D))
        h = self.post_attention_layernorm(x)
        return x + self.down_proj(F.silu(self.gate_proj(h)) * self.up_proj(h))


class Qwen2(nn.Module):
    def __init__(self, vocab=151936, d=896, layers=24, heads=14, kv_heads=2, ff=4864, theta=1e6):
        super().__init__()
        self.embed = nn.Embedding(vocab, d)
        self.layers = nn.ModuleList(Block(d, heads, kv_heads, ff) for _ in range(layers))
        self.norm = RMSNorm(d)
        self.dh, self.theta = d // heads, theta

    def forward(self, ids, targets):
        T = ids.shape[1]
        inv = 1.0 / (self.theta ** (torch.arange(0, self.dh, 2, device=ids.device).float() / self.dh))
        f = torch.arange(T, device=ids.device).float()[:, None] * inv[None]
        emb = torch.cat((f, f), -1)
        cos, sin = emb.cos(), emb.sin()
        x = self.embed(ids)
        for layer in self.layers:
            x = layer(x, cos, sin)
        logits = F.linear(self.norm(x), self.embed.weight)  # tied lm_head
        return F.cross_entropy(logits.float().view(-1, logits.shape[-1]), targets.view(-1))


def bench(model, ids, tg, opt, steps, warmup):
    times = []
    for s in range(warmup + steps):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = model(ids, tg)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        loss.item()
        if s >= warmup:
            times.append(time.perf_counter() - t0)
    times.sort()
    return times[len(times) // 2]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seq", type=int, default=2048)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--peak-tflops", type=float, default=989.0)
    ap.add_argument("--no-compile", action="store_true")
    a = ap.parse_args()
    torch.manual_seed(0)
    dev = torch.device("cuda")
    model = Qwen2().to(dev)
    n_params = sum(p.numel() for p in model.parameters())
    flops_per_token = 6.0 * n_params + 12.0 * 24 * 896 * a.seq
    ids = torch.randint(0, 151936, (a.batch, a.seq), device=dev)
    tg = torch.randint(0, 151936, (a.batch, a.seq), device=dev)
    kase = f"qwen2.5-0.5b-b{a.batch}-t{a.seq}"
    print(f"# torch {torch.__version__} on {torch.cuda.get_device_name()}, {n_params} params", flush=True)
    modes = [("torch", model)]
    if not a.no_compile and hasattr(torch, "compile"):
        modes.append(("torch-compile", torch.compile(model)))
    for name, m in modes:
        try:
            opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.1, fused=True)
        except (TypeError, RuntimeError):
            opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.1)
        med = bench(m, ids, tg, opt, a.steps, a.warmup)
        tps = a.batch * a.seq / med
        print(f"RESULT step {kase}-tokens/s {name} {tps:.4g} tokens/s", flush=True)
        print(f"RESULT step {kase}-MFU% {name} {100.0 * tps * flops_per_token / (a.peak_tflops * 1e12):.4g} %", flush=True)
        del opt
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
