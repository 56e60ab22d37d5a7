/* GPU training-step benchmark: one forward + backward + AdamW step of a Qwen2.5-0.5B-shaped decoder (hidden 896,
 * 24 layers, 14 heads / 2 KV heads, SwiGLU 4864, vocab 151936, tied embeddings, q/k/v bias) at sequence 2048 under
 * the bf16 mixed-precision setting (bf16 GEMMs and attention, f32 master weights and AdamW state). Reports tokens/s
 * and MFU = (6 N + 12 L d T) tokens/s / peak, as RESULT lines for bench/run_gpu.sh.
 * Options: --batch B --seq T --steps N --warmup W --peak-tflops P (bf16 dense peak; 989 for H100 SXM and H200). */
#include <string.h>

#include "core/autograd.h"
#include "core/tensor.h"
#include "gpu_bench_util.h"
#include "models/qwen2.h"
#include "optim/optim.h"

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

int main(int argc, char **argv) {
  int batch = 4, seq = 2048, steps = 10, warmup = 3;
  double peak = 989.0;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--batch")) batch = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--seq")) seq = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--steps")) steps = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--warmup")) warmup = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--peak-tflops")) peak = atof(argv[i + 1]);
    else {
      fprintf(stderr, "usage: bench_gpu_step [--batch B] [--seq T] [--steps N] [--warmup W] [--peak-tflops P]\n");
      return 2;
    }
  }
  if (steps < 1) steps = 10;
  gb_need_gpu("bench_gpu_step");
  vox_qwen2_config cfg = {.vocab_size = 151936, .hidden_size = 896, .num_hidden_layers = 24, .num_attention_heads = 14,
                          .num_key_value_heads = 2, .intermediate_size = 4864, .max_position_embeddings = 32768,
                          .rope_theta = 1000000.0f, .rms_norm_eps = 1e-6f, .tie_word_embeddings = true,
                          .attention_bias = true};
  vox_qwen2 model = {0};
  vox_params *params = NULL;
  vox_rng init_rng = vox_rng_make(1);
  GB_CHECK(vox_params_new(&params));
  GB_CHECK(vox_qwen2_init(&model, params, "", &cfg, &init_rng));
  GB_CHECK(vox_params_to_device(params, VOX_CUDA)); /* built on the CPU, moved once, as the trainer does */
  vox_set_matmul_precision(VOX_CUDA, VOX_PRECISION_BF16);
  vox_optim_config oc = vox_optim_adamw_config(1e-4f, 0.1f);
  vox_optim *opt = NULL;
  GB_CHECK(vox_optim_new(&oc, &opt));
  GB_CHECK(vox_optim_add_group(opt, NULL, -1, -1, NULL));
  GB_CHECK(vox_optim_add_params(opt, 0, params, NULL, NULL));

  int64_t n = (int64_t)batch * seq;
  int32_t *ids = malloc(sizeof(int32_t) * (size_t)n), *tg = malloc(sizeof(int32_t) * (size_t)n);
  vox_rng rng = vox_rng_make(7);
  for (int64_t i = 0; i < n; i++) {
    ids[i] = (int32_t)(vox_rng_next_u64(&rng) % (uint64_t)cfg.vocab_size);
    tg[i] = (int32_t)(vox_rng_next_u64(&rng) % (uint64_t)cfg.vocab_size);
  }
  vox_tensor *tid = NULL, *ttg = NULL;
  GB_CHECK(vox_tensor_from_host(VOX_I32, VOX_CUDA, 2, (int64_t[]){batch, seq}, ids, &tid));
  GB_CHECK(vox_tensor_from_host(VOX_I32, VOX_CUDA, 2, (int64_t[]){batch, seq}, tg, &ttg));
  double *times = malloc(sizeof(double) * (size_t)steps), loss_v = 0;
  for (int s = 0; s < warmup + steps; s++) {
    gb_sync();
    double t0 = gb_now();
    vox_tensor *loss = NULL;
    GB_CHECK(vox_qwen2_forward(&model, tid, ttg, true, NULL, NULL, &loss));
    GB_CHECK(vox_backward(loss, NULL));
    GB_CHECK(vox_optim_step(opt));
    vox_optim_zero_grad(opt);
    GB_CHECK(vox_tensor_item(loss, &loss_v)); /* waits for the step */
    vox_tensor_release(loss);
    if (s >= warmup) times[s - warmup] = gb_now() - t0;
  }
  qsort(times, (size_t)steps, sizeof *times, cmp_double);
  double med = times[steps / 2], tps = (double)n / med;
  double N = (double)vox_params_numel(params, false);
  double flops_per_token = 6.0 * N + 12.0 * cfg.num_hidden_layers * cfg.hidden_size * (double)seq;
  char kase[64];
  snprintf(kase, sizeof kase, "qwen2.5-0.5b-b%d-t%d-tokens/s", batch, seq);
  gb_result("step", kase, "vox", tps, "tokens/s");
  snprintf(kase, sizeof kase, "qwen2.5-0.5b-b%d-t%d-MFU%%", batch, seq);
  gb_result("step", kase, "vox", 100.0 * tps * flops_per_token / (peak * 1e12), "%");
  fprintf(stderr, "bench_gpu_step: %.1f ms median of %d steps, %.0f params, last loss %.4f, peak %.0f TFLOP/s\n",
          med * 1e3, steps, N, loss_v, peak);
  free(times);
  free(ids);
  free(tg);
  vox_tensor_release(tid);
  vox_tensor_release(ttg);
  vox_optim_free(opt);
  vox_qwen2_release(&model);
  vox_params_free(params);
  return 0;
}
