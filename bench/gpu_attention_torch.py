#!/usr/bin/python3
"""PyTorch side of the GPU attention benchmark: torch.nn.functional.scaled_dot_product_attention (bf16, whichever
fused backend PyTorch picks) on the shapes of bench/bench_gpu_attention.c, forward and forward+backward, timed with
CUDA events; FLOPs counted the same way. Prints RESULT lines."""
import sys

import torch
import torch.nn.functional as F


def timed(fn, iters):
    for _ in range(2):
        fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(iters):
        fn()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / 1e3 / iters


def main():
    iters = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    dev = torch.device("cuda")
    for causal in (False, True):
        for D in (64, 128):
            for T in (1024, 2048, 4096, 8192):
                H, B = 2048 // D, 16384 // T
                q = torch.full((B, H, T, D), 0.1, dtype=torch.bfloat16, device=dev, requires_grad=True)
                k = torch.full((B, H, T, D), 0.2, dtype=torch.bfloat16, device=dev, requires_grad=True)
                v = torch.full((B, H, T, D), 0.3, dtype=torch.bfloat16, device=dev, requires_grad=True)
                do = torch.full((B, H, T, D), 0.1, dtype=torch.bfloat16, device=dev)
                with torch.no_grad():
                    tf = timed(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=causal), iters)

                def fwd_bwd():
                    o = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
                    q.grad = k.grad = v.grad = None
                    o.backward(do)

                tfb = timed(fwd_bwd, iters)
                fwd = 4.0 * B * H * T * T * D * (0.5 if causal else 1.0)
                kind = "causal" if causal else "full"
                print(f"RESULT attention d{D}-t{T}-{kind}-fwd torch {fwd / tf / 1e12:.4g} TFLOP/s", flush=True)
                print(f"RESULT attention d{D}-t{T}-{kind}-fwd+bwd torch {3.5 * fwd / tfb / 1e12:.4g} TFLOP/s", flush=True)


if __name__ == "__main__":
    main()
