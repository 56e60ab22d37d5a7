/* Duplex predictor tests: 4-class logits per frame, causality (a frame's decision ignores later frames), the
 * frame-level CE with ignore index, label checks, and that a few AdamW steps fit a small labelled batch. */
#include <criterion/logging.h>
#include <stdlib.h>
#include <string.h>

#include "core/autograd.h"
#include "models/duplex.h"
#include "optim/optim.h"
#include "vox_test.h"

typedef struct dp {
  vox_params *reg;
  vox_duplex d;
} dp;

static dp *dp_new(int d_model) {
  dp *p = calloc(1, sizeof *p);
  VT_OK(vox_params_new(&p->reg));
  vox_rng rng = vox_rng_make(1);
  vox_duplex_config c = {.in_dim = 24, .d_model = d_model, .n_heads = 2, .d_ff = 32};
  VT_OK(vox_duplex_init(&p->d, p->reg, "duplex.", &c, &rng));
  return p;
}

static void dp_free(dp *p) {
  vox_params_free(p->reg);
  free(p);
}

Test(duplex, logits_are_causal_per_frame) {
  dp *p = dp_new(16);
  cr_assert_not_null(vox_params_get(p->reg, "duplex.in_proj.weight"));
  cr_assert_not_null(vox_params_get(p->reg, "duplex.layer.self_attn.q_proj.weight"));
  vox_tensor *h = vt_randn(VT_SHAPE(1, 8, 24), 2, 1.0f, false), *h2 = NULL, *a = NULL, *b = NULL;
  VT_OK(vox_tensor_clone(h, &h2));
  float *x = vox_tensor_f32(h2);
  for (int c = 0; c < 24; c++) x[6 * 24 + c] += 3.0f; /* change frame 6 */
  VT_OK(vox_duplex_forward(&p->d, h, NULL, false, NULL, &a));
  VT_OK(vox_duplex_forward(&p->d, h2, NULL, false, NULL, &b));
  cr_assert(a->ndim == 3 && a->shape[1] == 8 && a->shape[2] == 4);
  float la[32], lb[32];
  VT_OK(vox_tensor_read_f32(a, la));
  VT_OK(vox_tensor_read_f32(b, lb));
  cr_assert(!memcmp(la, lb, 6 * 4 * sizeof(float)), "frames 0..5 do not see frame 6");
  cr_assert(memcmp(la + 24, lb + 24, 4 * sizeof(float)), "frame 6 does");
  vox_tensor_release(h);
  vox_tensor_release(h2);
  vox_tensor_release(a);
  vox_tensor_release(b);
  dp_free(p);
}

Test(duplex, loss_ignores_unlabelled_frames_and_learns) {
  dp *p = dp_new(0); /* d_model = in_dim: no input projection */
  cr_assert_null(vox_params_get(p->reg, "duplex.in_proj.weight"));
  vox_tensor *h = vt_randn(VT_SHAPE(2, 6, 24), 3, 1.0f, false);
  vox_tensor *lab = vt_from_i32(VT_SHAPE(2, 6), (int32_t[]){0, 0, 1, 0, 2, 3, 0, 3, -100, 1, -100, -100});
  vox_tensor *lens = vt_from_i32(VT_SHAPE(2), (int32_t[]){6, 4});
  vox_optim_config oc = vox_optim_adamw_config(1e-2f, 0.0f);
  vox_optim *opt = NULL;
  VT_OK(vox_optim_new(&oc, &opt));
  int g;
  VT_OK(vox_optim_add_group(opt, "duplex", -1, -1, &g));
  VT_OK(vox_optim_add_params(opt, g, p->reg, NULL, NULL));
  double first = 0, last = 0;
  for (int s = 0; s < 30; s++) {
    vox_tensor *loss = NULL;
    int64_t n = 0;
    VT_OK(vox_duplex_loss(&p->d, h, lens, lab, true, NULL, &loss, &n, NULL));
    cr_assert_eq(n, 9);
    VT_OK(vox_tensor_item(loss, s == 0 ? &first : &last));
    VT_OK(vox_backward(loss, NULL));
    vox_tensor_release(loss);
    VT_OK(vox_optim_step(opt));
    vox_optim_zero_grad(opt);
  }
  cr_log_info("duplex loss %.4f -> %.4f", first, last);
  cr_assert(first > 1.0 && last < 0.2, "fits 9 labelled frames: %.4f -> %.4f", first, last);
  vox_tensor *bad = vt_from_i32(VT_SHAPE(2, 6), (int32_t[]){0, 0, 4, 0, 2, 3, 0, 3, -100, 1, -100, -100}), *loss = NULL;
  cr_assert_eq(vox_duplex_loss(&p->d, h, lens, bad, true, NULL, &loss, NULL, NULL), VOX_ERR_INDEX);
  cr_assert(strstr(vox_last_error(), "label 4"), "%s", vox_last_error());
  vox_optim_free(opt);
  vox_tensor_release(bad);
  vox_tensor_release(h);
  vox_tensor_release(lab);
  vox_tensor_release(lens);
  dp_free(p);
}
