#!/usr/bin/python3
"""PyTorch side of the GPU GEMM benchmark: torch.matmul (cuBLAS) on the same shapes, layouts and dtypes as
bench/bench_gpu_gemm.c, TF32 off for f32 (vox's default), timed with CUDA events. Prints RESULT lines."""
import sys

import torch

CASES = [
    ("square-1024-bf16", 1024, 1024, 1024, False, False, torch.bfloat16),
    ("square-2048-bf16", 2048, 2048, 2048, False, False, torch.bfloat16),
    ("square-4096-bf16", 4096, 4096, 4096, False, False, torch.bfloat16),
    ("square-8192-bf16", 8192, 8192, 8192, False, False, torch.bfloat16),
    ("square-4096-f32", 4096, 4096, 4096, False, False, torch.float32),
    ("q_proj-8192x896x896", 8192, 896, 896, False, True, torch.bfloat16),
    ("kv_proj-8192x128x896", 8192, 128, 896, False, True, torch.bfloat16),
    ("gate_up-8192x4864x896", 8192, 4864, 896, False, True, torch.bfloat16),
    ("down-8192x896x4864", 8192, 896, 4864, False, True, torch.bfloat16),
    ("down_dgrad-8192x4864x896", 8192, 4864, 896, False, False, torch.bfloat16),
    ("up_wgrad-4864x896x8192", 4864, 896, 8192, True, False, torch.bfloat16),
    ("lm_head-8192x151936x896", 8192, 151936, 896, False, True, torch.bfloat16),
]


def main():
    iters = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    torch.backends.cuda.matmul.allow_tf32 = False
    dev = torch.device("cuda")
    for name, M, N, K, ta, tb, dt in CASES:
        a = torch.full((K, M) if ta else (M, K), 0.01, dtype=dt, device=dev)
        b = torch.full((N, K) if tb else (K, N), 0.02, dtype=dt, device=dev)
        opa = a.t() if ta else a
        opb = b.t() if tb else b
        out = torch.empty(M, N, dtype=dt, device=dev)
        for _ in range(3):
            torch.matmul(opa, opb, out=out)
        torch.cuda.synchronize()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(iters):
            torch.matmul(opa, opb, out=out)
        end.record()
        torch.cuda.synchronize()
        dt_s = start.elapsed_time(end) / 1e3 / iters
        print(f"RESULT gemm {name} torch {2.0 * M * N * K / dt_s / 1e12:.4g} TFLOP/s", flush=True)


if __name__ == "__main__":
    main()
