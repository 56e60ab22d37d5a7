/* Whole-model parity on the GPU: a small Qwen2-layout LM (GQA, head dim 64, q/k/v bias, right-padded batch with
 * kv_lens) gives the same loss and the same gradient for every parameter on CPU and CUDA, in f32 and under the
 * bf16 mixed-precision setting (looser, norm-wise tolerance). */
#include <criterion/logging.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/backend.h"
#include "models/qwen2.h"
#include "vox_test.h"

static void need_gpu(void) {
  if (!vox_backend_get(VOX_CUDA)->available) cr_skip_test("no CUDA device: CUDA model parity skipped");
}

typedef struct lm {
  vox_params *params;
  vox_qwen2 m;
} lm;

static lm *lm_new(const vox_qwen2_config *cfg, uint64_t seed) {
  lm *l = calloc(1, sizeof *l);
  vox_rng rng = vox_rng_make(seed);
  VT_OK(vox_params_new(&l->params));
  VT_OK(vox_qwen2_init(&l->m, l->params, "", cfg, &rng));
  return l;
}
static void lm_free(lm *l) {
  vox_qwen2_release(&l->m);
  vox_params_free(l->params);
  free(l);
}

static vox_tensor *to_dev(const vox_tensor *t, vox_device dev) {
  vox_tensor *o = NULL;
  VT_OK(vox_tensor_to(t, dev, t->dtype, &o));
  return o;
}

/* Mean next-token cross-entropy of a right-padded batch (padding targets -100), with its backward. */
static double loss_and_backward(lm *l, const vox_tensor *ids0, const vox_tensor *targets0, const vox_tensor *lens0) {
  vox_device dev = l->m.embed.weight->device;
  vox_tensor *ids = to_dev(ids0, dev), *targets = to_dev(targets0, dev), *lens = to_dev(lens0, dev);
  vox_tensor *emb = NULL, *hidden = NULL, *logits = NULL, *loss = NULL;
  VT_OK(vox_qwen2_embed(&l->m, ids, &emb));
  VT_OK(vox_qwen2_forward_embeds(&l->m, emb, NULL, lens, NULL, false, NULL, &hidden));
  VT_OK(vox_qwen2_logits(&l->m, hidden, &logits));
  VT_OK(vox_op_cross_entropy(logits, targets, -100, 0.0f, &loss));
  double v = 0;
  VT_OK(vox_tensor_item(loss, &v));
  VT_OK(vox_backward(loss, NULL));
  vox_tensor *all[] = {ids, targets, lens, emb, hidden, logits, loss};
  for (size_t i = 0; i < sizeof all / sizeof *all; i++) vox_tensor_release(all[i]);
  return v;
}

/* ||a - b|| / ||b|| over all elements (a, b on any device). */
static double rel_err(const vox_tensor *a, const vox_tensor *b) {
  int64_t n = vox_tensor_numel(b);
  float *x = malloc(sizeof(float) * (size_t)n), *y = malloc(sizeof(float) * (size_t)n);
  VT_OK(vox_tensor_read_f32(a, x));
  VT_OK(vox_tensor_read_f32(b, y));
  double num = 0, den = 0;
  for (int64_t i = 0; i < n; i++) {
    num += ((double)x[i] - y[i]) * ((double)x[i] - y[i]);
    den += (double)y[i] * y[i];
  }
  free(x);
  free(y);
  return den > 0 ? sqrt(num / den) : sqrt(num);
}

static void compare_grads(const lm *gpu, const lm *cpu, double tol, const char *what) {
  for (int i = 0; i < cpu->params->count; i++) {
    const vox_tensor *g = gpu->params->items[i].tensor->grad, *r = cpu->params->items[i].tensor->grad;
    cr_assert(r != NULL && g != NULL, "%s: %s has no gradient", what, cpu->params->items[i].name);
    cr_assert(g->dtype == VOX_F32, "%s: %s gradient is %s, master gradients are f32", what,
              cpu->params->items[i].name, vox_dtype_name(g->dtype));
    double e = rel_err(g, r);
    cr_assert(e <= tol, "%s: gradient of %s differs by %.3g (relative norm, tolerance %.3g)", what,
              cpu->params->items[i].name, e, tol);
  }
}

Test(cuda_model, qwen2_layout_lm_cpu_vs_cuda) {
  need_gpu();
  const vox_qwen2_config cfg = {.vocab_size = 101, .hidden_size = 256, .num_hidden_layers = 2, .num_attention_heads = 4,
                                .num_key_value_heads = 2, .intermediate_size = 384, .initializer_range = 0.05f,
                                .attention_bias = true};
  const int64_t B = 2, T = 70;
  const int32_t lens_h[2] = {70, 57};
  int32_t ids_h[2 * 70], tg_h[2 * 70];
  uint64_t r = 12345;
  for (int64_t i = 0; i < B * T; i++) {
    r = r * 6364136223846793005ull + 1442695040888963407ull;
    ids_h[i] = (int32_t)((r >> 33) % (uint64_t)cfg.vocab_size);
  }
  for (int64_t b = 0; b < B; b++)
    for (int64_t t = 0; t < T; t++) /* next-token targets; padding and the last position ignored */
      tg_h[b * T + t] = t + 1 < lens_h[b] ? ids_h[b * T + t + 1] : -100;
  vox_tensor *ids = vt_from_i32(2, (int64_t[]){B, T}, ids_h), *tg = vt_from_i32(2, (int64_t[]){B, T}, tg_h);
  vox_tensor *lens = vt_from_i32(1, (int64_t[]){B}, lens_h);

  lm *cpu = lm_new(&cfg, 7), *gpu = lm_new(&cfg, 7);
  VT_OK(vox_params_to_device(gpu->params, VOX_CUDA));
  double lc = loss_and_backward(cpu, ids, tg, lens);
  double lg = loss_and_backward(gpu, ids, tg, lens);
  cr_log_info("loss cpu %.6f cuda f32 %.6f", lc, lg);
  cr_assert(fabs(lg - lc) <= 1e-4 * fabs(lc), "f32 loss: cuda %.7f vs cpu %.7f", lg, lc);
  compare_grads(gpu, cpu, 1e-3, "f32");

  /* bf16 GEMMs and attention, f32 master weights and f32 everything else. */
  vox_params_zero_grad(gpu->params);
  vox_set_matmul_precision(VOX_CUDA, VOX_PRECISION_BF16);
  double lb = loss_and_backward(gpu, ids, tg, lens);
  vox_set_matmul_precision(VOX_CUDA, VOX_PRECISION_F32);
  cr_log_info("loss cuda bf16 %.6f", lb);
  cr_assert(fabs(lb - lc) <= 1e-2 * fabs(lc), "bf16 loss: cuda %.6f vs cpu f32 %.6f", lb, lc);
  compare_grads(gpu, cpu, 5e-2, "bf16 mixed precision");

  lm_free(cpu);
  lm_free(gpu);
  vox_tensor_release(ids);
  vox_tensor_release(tg);
  vox_tensor_release(lens);
}

#include "cuda_skip_main.h"
