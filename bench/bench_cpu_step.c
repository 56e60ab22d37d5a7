/* CPU training-step benchmark: one forward + backward + AdamW step of a tiny Qwen2-layout LM (batch 8 x 256,
 * d_model 256, 4 layers, 4 heads / 2 KV heads, SwiGLU 688, vocab 256); warmup, then the median of N steps. Compare with
 * bench/cpu_step_torch.py through bench/run_cpu_step.sh. Options: --threads T --steps N --warmup W. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/autograd.h"
#include "core/backend.h"
#include "models/qwen2.h"
#include "optim/optim.h"

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

#define CHECK(expr)                                                          \
  do {                                                                       \
    if ((expr) != VOX_OK) {                                                  \
      fprintf(stderr, "bench_cpu_step: %s: %s\n", #expr, vox_last_error());  \
      return 1;                                                              \
    }                                                                        \
  } while (0)

int main(int argc, char **argv) {
  int threads = 2, steps = 10, warmup = 3;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--threads")) threads = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--steps")) steps = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--warmup")) warmup = atoi(argv[i + 1]);
    else {
      fprintf(stderr, "usage: bench_cpu_step [--threads T] [--steps N] [--warmup W]\n");
      return 2;
    }
  }
  if (steps < 1 || steps > 1000) steps = 10;
  vox_set_num_threads(threads);
  enum { B = 8, T = 256 };
  vox_qwen2_config cfg = {.vocab_size = 256, .hidden_size = 256, .num_hidden_layers = 4, .num_attention_heads = 4,
                          .num_key_value_heads = 2, .intermediate_size = 688};
  vox_qwen2 model = {0}, *m = &model;
  vox_params *params = NULL;
  vox_rng init_rng = vox_rng_make(1);
  CHECK(vox_params_new(&params));
  CHECK(vox_qwen2_init(m, params, "", &cfg, &init_rng));
  vox_optim_config oc = vox_optim_adamw_config(1e-3f, 0.1f);
  vox_optim *opt = NULL;
  CHECK(vox_optim_new(&oc, &opt));
  CHECK(vox_optim_add_group(opt, NULL, -1, -1, NULL));
  CHECK(vox_optim_add_params(opt, 0, params, NULL, NULL));
  int32_t *ids = malloc(sizeof(int32_t) * B * T), *tg = malloc(sizeof(int32_t) * B * T);
  vox_rng rng = vox_rng_make(7);
  for (int i = 0; i < B * T; i++) ids[i] = (int32_t)(vox_rng_next_u64(&rng) % 256), tg[i] = (int32_t)(vox_rng_next_u64(&rng) % 256);
  vox_tensor *tid = NULL, *ttg = NULL;
  CHECK(vox_tensor_from_host(VOX_I32, VOX_CPU, 2, (int64_t[]){B, T}, ids, &tid));
  CHECK(vox_tensor_from_host(VOX_I32, VOX_CPU, 2, (int64_t[]){B, T}, tg, &ttg));
  double *times = malloc(sizeof(double) * (size_t)steps), loss_v = 0;
  for (int s = 0; s < warmup + steps; s++) {
    double t0 = now_s();
    vox_tensor *loss = NULL;
    CHECK(vox_qwen2_forward(m, tid, ttg, true, NULL, NULL, &loss));
    CHECK(vox_backward(loss, NULL));
    CHECK(vox_optim_step(opt));
    vox_optim_zero_grad(opt);
    CHECK(vox_tensor_item(loss, &loss_v));
    vox_tensor_release(loss);
    if (s >= warmup) times[s - warmup] = now_s() - t0;
  }
  qsort(times, (size_t)steps, sizeof *times, cmp_double);
  double med = times[steps / 2];
  printf("vox   cpu step: %.1f ms median of %d (min %.1f, max %.1f), %d threads, %.0f tokens/s, %lld params, "
         "last loss %.4f\n",
         med * 1e3, steps, times[0] * 1e3, times[steps - 1] * 1e3, threads, B * T / med,
         (long long)vox_params_numel(params, false), loss_v);
  free(times);
  free(ids);
  free(tg);
  vox_tensor_release(tid);
  vox_tensor_release(ttg);
  vox_optim_free(opt);
  vox_qwen2_release(m);
  vox_params_free(params);
  return 0;
}
