#!/usr/bin/python3
"""Reference for tests/unit/test_torch_parity.c: rebuilds vox's tiny LM (Qwen2 layout) in PyTorch from the
weights the C test wrote, runs forward + backward in float64, and writes the loss and every parameter gradient.

usage: lm_parity.py DIR   (DIR holds config.json, ids.npy, targets.npy and params/<name>.npy; writes
       DIR/loss.npy and DIR/grads/<name>.npy)
"""
import json
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F


def rms_norm(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


def rope(x, positions, theta):
    d = x.shape[-1]
    inv_freq = 1.0 / (theta ** (torch.arange(0, d, 2, dtype=torch.float64) / d))
    freqs = positions.to(torch.float64)[:, None] * inv_freq[None, :]
    emb = torch.cat((freqs, freqs), dim=-1)
    return x * emb.cos() + rotate_half(x) * emb.sin()


def forward(cfg, p, ids, targets):
    B, T = ids.shape
    d, H, Hkv = cfg["d_model"], cfg["n_heads"], cfg["n_kv_heads"]
    D = d // H
    eps, theta = cfg["norm_eps"], cfg["rope_theta"]
    pos = torch.arange(T)
    h = p["model.embed_tokens.weight"][ids]
    causal = torch.ones(T, T, dtype=torch.bool).tril()
    for i in range(cfg["n_layers"]):
        pre = f"model.layers.{i}."
        x = rms_norm(h, p[pre + "input_layernorm.weight"], eps)

        def proj(name, heads):
            y = F.linear(x, p[pre + f"self_attn.{name}.weight"], p.get(pre + f"self_attn.{name}.bias"))
            return y.view(B, T, heads, D).transpose(1, 2)

        q, k, v = proj("q_proj", H), proj("k_proj", Hkv), proj("v_proj", Hkv)
        q, k = rope(q, pos, theta), rope(k, pos, theta)
        k = k.repeat_interleave(H // Hkv, dim=1)
        v = v.repeat_interleave(H // Hkv, dim=1)
        s = (q @ k.transpose(-1, -2)) / math.sqrt(D)
        s = s.masked_fill(~causal, float("-inf"))
        o = (s.softmax(-1) @ v).transpose(1, 2).reshape(B, T, H * D)
        h = h + F.linear(o, p[pre + "self_attn.o_proj.weight"], p.get(pre + "self_attn.o_proj.bias"))
        x = rms_norm(h, p[pre + "post_attention_layernorm.weight"], eps)
        g = F.linear(x, p[pre + "mlp.gate_proj.weight"])
        u = F.linear(x, p[pre + "mlp.up_proj.weight"])
        h = h + F.linear(F.silu(g) * u, p[pre + "mlp.down_proj.weight"])
    h = rms_norm(h, p["model.norm.weight"], eps)
    head = p["model.embed_tokens.weight"] if cfg["tie_embeddings"] else p["lm_head.weight"]
    logits = F.linear(h, head)
    return F.cross_entropy(logits.reshape(B * T, -1), targets.reshape(-1), ignore_index=-100)


def main():
    root = sys.argv[1]
    with open(os.path.join(root, "config.json")) as f:
        cfg = json.load(f)
    params = {}
    for name in cfg["params"]:
        a = np.load(os.path.join(root, "params", name + ".npy"))
        params[name] = torch.tensor(a, dtype=torch.float64, requires_grad=True)
    ids = torch.tensor(np.load(os.path.join(root, "ids.npy")), dtype=torch.long)
    targets = torch.tensor(np.load(os.path.join(root, "targets.npy")), dtype=torch.long)
    loss = forward(cfg, params, ids, targets)
    loss.backward()
    np.save(os.path.join(root, "loss.npy"), np.array([loss.item()], dtype=np.float32))
    os.makedirs(os.path.join(root, "grads"), exist_ok=True)
    for name, t in params.items():
        g = t.grad if t.grad is not None else torch.zeros_like(t)
        np.save(os.path.join(root, "grads", name + ".npy"), g.numpy().astype(np.float32))


if __name__ == "__main__":
    main()
