/* GPU GEMM throughput of vox's CUDA MATMUL kernel (cuBLASLt): square bf16 products 1k-8k, an f32 one, and the
 * GEMMs of a Qwen2.5-0.5B training step (8192 tokens: projections forward, data and weight gradients, lm_head).
 * Prints RESULT lines (TFLOP/s) for bench/run_gpu.sh; bench/gpu_gemm_torch.py measures torch.matmul alike. */
#include <string.h>

#include "core/kernel_params.h"
#include "core/tensor.h"
#include "gpu_bench_util.h"

typedef struct gemm_case {
  const char *name;
  int64_t M, N, K;
  bool ta, tb;
  vox_dtype dtype;
} gemm_case;

/* Qwen2.5-0.5B: hidden 896, intermediate 4864, 14 heads / 2 KV heads of 64, vocab 151936; 4 x 2048 tokens. */
static const gemm_case cases[] = {
    {"square-1024-bf16", 1024, 1024, 1024, false, false, VOX_BF16},
    {"square-2048-bf16", 2048, 2048, 2048, false, false, VOX_BF16},
    {"square-4096-bf16", 4096, 4096, 4096, false, false, VOX_BF16},
    {"square-8192-bf16", 8192, 8192, 8192, false, false, VOX_BF16},
    {"square-4096-f32", 4096, 4096, 4096, false, false, VOX_F32},
    {"q_proj-8192x896x896", 8192, 896, 896, false, true, VOX_BF16},
    {"kv_proj-8192x128x896", 8192, 128, 896, false, true, VOX_BF16},
    {"gate_up-8192x4864x896", 8192, 4864, 896, false, true, VOX_BF16},
    {"down-8192x896x4864", 8192, 896, 4864, false, true, VOX_BF16},
    {"down_dgrad-8192x4864x896", 8192, 4864, 896, false, false, VOX_BF16},
    {"up_wgrad-4864x896x8192", 4864, 896, 8192, true, false, VOX_BF16},
    {"lm_head-8192x151936x896", 8192, 151936, 896, false, true, VOX_BF16},
};

static double run_case(const gemm_case *c, int iters) {
  int64_t sa[2] = {c->ta ? c->K : c->M, c->ta ? c->M : c->K}, sb[2] = {c->tb ? c->N : c->K, c->tb ? c->K : c->N};
  vox_tensor *a = NULL, *b = NULL, *o = NULL;
  GB_CHECK(vox_tensor_full(c->dtype, VOX_CUDA, 2, sa, 0.01, &a));
  GB_CHECK(vox_tensor_full(c->dtype, VOX_CUDA, 2, sb, 0.02, &b));
  GB_CHECK(vox_tensor_empty(c->dtype, VOX_CUDA, 2, (int64_t[]){c->M, c->N}, &o));
  vox_matmul_params p = {.trans_a = c->ta, .trans_b = c->tb, .alpha = 1.0f, .beta = 0.0f};
  vox_kernel_args args = {.n_in = 2, .n_out = 1, .in = {a, b}, .out = {o}, .params = &p};
  for (int i = 0; i < 3; i++) GB_CHECK(vox_kernel_run("bench", VOX_K_MATMUL, &args)); /* heuristic + warmup */
  gb_sync();
  double t0 = gb_now();
  for (int i = 0; i < iters; i++) GB_CHECK(vox_kernel_run("bench", VOX_K_MATMUL, &args));
  gb_sync();
  double dt = (gb_now() - t0) / iters;
  vox_tensor_release(a);
  vox_tensor_release(b);
  vox_tensor_release(o);
  return 2.0 * (double)c->M * (double)c->N * (double)c->K / dt / 1e12;
}

int main(int argc, char **argv) {
  int iters = argc > 1 ? atoi(argv[1]) : 20;
  if (iters < 1) iters = 20;
  gb_need_gpu("bench_gpu_gemm");
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
    gb_result("gemm", cases[i].name, "vox", run_case(&cases[i], iters), "TFLOP/s");
  return 0;
}
