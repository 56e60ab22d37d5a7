/* Whole-model parity with PyTorch: a tiny Qwen2 LM's loss and every parameter gradient against the same model built
 * in PyTorch (tests/torch/lm_parity.py, float64) from the weights this test writes. Needs /usr/bin/python3 with
 * torch; skips visibly without it. */
#define _GNU_SOURCE /* nftw, mkdtemp */
#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/autograd.h"
#include "io/npy.h"
#include "models/qwen2.h"
#include <criterion/logging.h>

#include "vox_test.h"

#define PY "/usr/bin/python3"

static bool have_torch(void) { return system(PY " -c 'import torch' >/dev/null 2>&1") == 0; }

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) { return remove(path); }

/* ||a - b|| / ||b|| over the flat arrays (L2; robust where single elements are near zero). */
static double rel_err(const float *a, const float *b, int64_t n) {
  double num = 0, den = 0;
  for (int64_t i = 0; i < n; i++) {
    double d = (double)a[i] - b[i];
    num += d * d;
    den += (double)b[i] * b[i];
  }
  return den > 0 ? sqrt(num / den) : sqrt(num);
}

static void run_parity(bool tied, bool qkv_bias) {
  if (!have_torch()) cr_skip("PyTorch not available to " PY " (import torch failed): whole-model parity skipped");
  vox_qwen2_config cfg = {.vocab_size = 97, .hidden_size = 64, .num_hidden_layers = 2, .num_attention_heads = 4,
                          .num_key_value_heads = 2, .intermediate_size = 160, .rope_theta = 10000.0f,
                          .rms_norm_eps = 1e-6f, .initializer_range = 0.1f, .tie_word_embeddings = tied,
                          .attention_bias = qkv_bias};
  vt_lm *m = NULL;
  VT_OK(vt_lm_new(&cfg, 1234, &m));
  /* Non-trivial norms and biases, so their gradients and effects are checked too. */
  vox_rng rng = vox_rng_make(99);
  for (int i = 0; i < m->params->count; i++) {
    vox_param *p = &m->params->items[i];
    if (vox_params_name_matches("*norm.weight", p->name)) VT_OK(vox_init_uniform(p->tensor, &rng, 0.5, 1.5));
    else if (vox_params_name_matches("*.bias", p->name)) VT_OK(vox_init_normal(p->tensor, &rng, 0.0, 0.1));
  }
  enum { B = 2, T = 12 };
  int32_t ids[B * T], tg[B * T];
  for (int i = 0; i < B * T; i++) {
    ids[i] = (int32_t)(vox_rng_next_u64(&rng) % (uint64_t)cfg.vocab_size);
    tg[i] = (int32_t)(vox_rng_next_u64(&rng) % (uint64_t)cfg.vocab_size);
  }
  tg[3] = tg[T + 7] = -100; /* ignored positions */

  char dir[] = "/tmp/vox_parity_XXXXXX", path[512], cmd[1024];
  cr_assert_not_null(mkdtemp(dir));
  snprintf(path, sizeof path, "%s/params", dir);
  cr_assert_eq(mkdir(path, 0700), 0);
  VT_OK(vox_npy_save_i32((snprintf(path, sizeof path, "%s/ids.npy", dir), path), ids, 2, (int64_t[]){B, T}));
  VT_OK(vox_npy_save_i32((snprintf(path, sizeof path, "%s/targets.npy", dir), path), tg, 2, (int64_t[]){B, T}));
  snprintf(path, sizeof path, "%s/config.json", dir);
  FILE *f = fopen(path, "w");
  cr_assert_not_null(f);
  fprintf(f, "{\"d_model\": %d, \"n_layers\": %d, \"n_heads\": %d, \"n_kv_heads\": %d, \"norm_eps\": %g, "
             "\"rope_theta\": %g, \"tie_embeddings\": %s, \"params\": [",
          cfg.hidden_size, cfg.num_hidden_layers, cfg.num_attention_heads, cfg.num_key_value_heads,
          (double)cfg.rms_norm_eps, (double)cfg.rope_theta, tied ? "true" : "false");
  for (int i = 0; i < m->params->count; i++) {
    vox_param *p = &m->params->items[i];
    fprintf(f, "%s\"%s\"", i ? ", " : "", p->name);
    snprintf(path, sizeof path, "%s/params/%s.npy", dir, p->name);
    VT_OK(vox_npy_save_f32(path, vox_tensor_f32(p->tensor), p->tensor->ndim, p->tensor->shape));
  }
  fprintf(f, "]}\n");
  fclose(f);

  /* vox forward + backward. */
  vox_tensor *tid = vt_from_i32(VT_SHAPE(B, T), ids), *ttg = vt_from_i32(VT_SHAPE(B, T), tg), *loss = NULL;
  VT_OK(vox_qwen2_forward(&m->m, tid, ttg, false, NULL, NULL, &loss));
  VT_OK(vox_backward(loss, NULL));
  double vloss;
  VT_OK(vox_tensor_item(loss, &vloss));

  snprintf(cmd, sizeof cmd, PY " %s/tests/torch/lm_parity.py %s", VOX_SOURCE_DIR, dir);
  cr_assert_eq(system(cmd), 0, "%s failed", cmd);
  float *ref = NULL;
  int nd;
  int64_t shape[VOX_NPY_MAX_DIMS];
  VT_OK(vox_npy_load_f32((snprintf(path, sizeof path, "%s/loss.npy", dir), path), &ref, &nd, shape));
  double lerr = fabs(vloss - ref[0]) / fabs(ref[0]);
  cr_log_info("parity (tied=%d, bias=%d): loss vox %.7f torch %.7f rel err %.2e", tied, qkv_bias, vloss, ref[0], lerr);
  cr_expect_lt(lerr, 1e-4, "loss: vox %.7f vs torch %.7f", vloss, ref[0]);
  free(ref);
  double worst = 0;
  for (int i = 0; i < m->params->count; i++) {
    vox_param *p = &m->params->items[i];
    cr_assert_not_null(p->tensor->grad, "%s has no gradient", p->name);
    int64_t n = vox_tensor_numel(p->tensor);
    VT_OK(vox_npy_load_f32((snprintf(path, sizeof path, "%s/grads/%s.npy", dir, p->name), path), &ref, &nd, shape));
    float *mine = malloc((size_t)n * sizeof *mine);
    VT_OK(vox_tensor_read_f32(p->tensor->grad, mine));
    double e = rel_err(mine, ref, n);
    if (e > worst) worst = e;
    cr_expect_lt(e, 1e-4, "gradient of %s: relative error %.3e", p->name, e);
    free(mine);
    free(ref);
  }
  cr_log_info("parity (tied=%d, bias=%d): %d gradients, worst relative error %.2e", tied, qkv_bias,
              m->params->count, worst);
  nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
  vox_tensor_release(loss);
  vox_tensor_release(tid);
  vox_tensor_release(ttg);
  vt_lm_free(m);
}

Test(torch_parity, qwen2_untied_qkv_bias) { run_parity(false, true); }
Test(torch_parity, qwen2_tied_no_bias) { run_parity(true, false); }
