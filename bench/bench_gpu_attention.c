/* GPU attention throughput of vox's CUDA ATTENTION / ATTENTION_BACKWARD kernels (bf16, flash kernels): head dim
 * 64 and 128, sequence 1k-8k, causal and not, 16k tokens per batch and 2048 model width (H = 2048 / D). FLOPs
 * count as FlashAttention's: forward 4*B*H*T*T*D (halved when causal), backward 2.5x the forward. Prints RESULT
 * lines (TFLOP/s) for bench/run_gpu.sh; bench/gpu_attention_torch.py measures scaled_dot_product_attention. */
#include <math.h>
#include <string.h>

#include "core/kernel_params.h"
#include "core/tensor.h"
#include "gpu_bench_util.h"

static void run(int64_t D, int64_t T, bool causal, int iters) {
  const int64_t H = 2048 / D, B = 16384 / T;
  const int64_t shape[4] = {B, H, T, D};
  vox_tensor *q = NULL, *k = NULL, *v = NULL, *o = NULL, *lse = NULL, *dout = NULL, *dq = NULL, *dk = NULL, *dv = NULL;
  GB_CHECK(vox_tensor_full(VOX_BF16, VOX_CUDA, 4, shape, 0.1, &q));
  GB_CHECK(vox_tensor_full(VOX_BF16, VOX_CUDA, 4, shape, 0.2, &k));
  GB_CHECK(vox_tensor_full(VOX_BF16, VOX_CUDA, 4, shape, 0.3, &v));
  GB_CHECK(vox_tensor_full(VOX_BF16, VOX_CUDA, 4, shape, 0.1, &dout));
  GB_CHECK(vox_tensor_empty(VOX_BF16, VOX_CUDA, 4, shape, &o));
  GB_CHECK(vox_tensor_empty(VOX_F32, VOX_CUDA, 3, shape, &lse));
  GB_CHECK(vox_tensor_empty(VOX_BF16, VOX_CUDA, 4, shape, &dq));
  GB_CHECK(vox_tensor_empty(VOX_BF16, VOX_CUDA, 4, shape, &dk));
  GB_CHECK(vox_tensor_empty(VOX_BF16, VOX_CUDA, 4, shape, &dv));
  vox_attention_params p = {.scale = 1.0f / sqrtf((float)D), .causal = causal};
  vox_kernel_args fa = {.n_in = 5, .n_out = 2, .in = {q, k, v, NULL, NULL}, .out = {o, lse}, .params = &p};
  vox_kernel_args ba = {.n_in = 8, .n_out = 3, .in = {q, k, v, o, lse, dout, NULL, NULL}, .out = {dq, dk, dv}, .params = &p};
  for (int i = 0; i < 2; i++) {
    GB_CHECK(vox_kernel_run("bench", VOX_K_ATTENTION, &fa));
    GB_CHECK(vox_kernel_run("bench", VOX_K_ATTENTION_BACKWARD, &ba));
  }
  gb_sync();
  double t0 = gb_now();
  for (int i = 0; i < iters; i++) GB_CHECK(vox_kernel_run("bench", VOX_K_ATTENTION, &fa));
  gb_sync();
  double tf = (gb_now() - t0) / iters;
  t0 = gb_now();
  for (int i = 0; i < iters; i++) GB_CHECK(vox_kernel_run("bench", VOX_K_ATTENTION_BACKWARD, &ba));
  gb_sync();
  double tb = (gb_now() - t0) / iters;
  double fwd = 4.0 * B * H * (double)T * T * D * (causal ? 0.5 : 1.0);
  char name[96];
  snprintf(name, sizeof name, "d%lld-t%lld-%s-fwd", (long long)D, (long long)T, causal ? "causal" : "full");
  gb_result("attention", name, "vox", fwd / tf / 1e12, "TFLOP/s");
  snprintf(name, sizeof name, "d%lld-t%lld-%s-fwd+bwd", (long long)D, (long long)T, causal ? "causal" : "full");
  gb_result("attention", name, "vox", 3.5 * fwd / (tf + tb) / 1e12, "TFLOP/s");
  vox_tensor *all[] = {q, k, v, o, lse, dout, dq, dk, dv};
  for (size_t i = 0; i < sizeof all / sizeof *all; i++) vox_tensor_release(all[i]);
}

int main(int argc, char **argv) {
  int iters = argc > 1 ? atoi(argv[1]) : 10;
  if (iters < 1) iters = 10;
  gb_need_gpu("bench_gpu_attention");
  const int64_t dims[2] = {64, 128}, seqs[4] = {1024, 2048, 4096, 8192};
  for (int c = 0; c < 2; c++)
    for (int d = 0; d < 2; d++)
      for (int s = 0; s < 4; s++) run(dims[d], seqs[s], c == 1, iters);
  return 0;
}
