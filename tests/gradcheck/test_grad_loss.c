/* Finite-difference checks of the fused cross-entropy (plain, ignore_index, label smoothing, 3-D logits) and
 * of the mean MSE and L1 losses. */
#include "vox_test.h"

typedef struct ce_case {
  vox_tensor *targets;
  int32_t ignore_index;
  float smoothing;
} ce_case;

static vox_status ce_fn(void *ctx, vox_tensor *const *in, vox_tensor **out) {
  const ce_case *c = ctx;
  return vox_op_cross_entropy(in[0], c->targets, c->ignore_index, c->smoothing, out);
}

Test(grad_loss, cross_entropy) {
  vox_tensor *in[1] = {vt_randn(VT_SHAPE(4, 5), 1, 1.5f, true)};
  vox_tensor *t = vt_from_i32(VT_SHAPE(4), (int32_t[]){3, 0, -100, 4});
  ce_case c = {.targets = t, .ignore_index = -1, .smoothing = 0.0f};
  vox_tensor *t_plain = vt_from_i32(VT_SHAPE(4), (int32_t[]){3, 0, 1, 4});
  c.targets = t_plain;
  vt_gradcheck("cross_entropy", ce_fn, &c, 1, in, NULL);
  c = (ce_case){.targets = t, .ignore_index = -100, .smoothing = 0.0f};
  vt_gradcheck("cross_entropy ignore_index", ce_fn, &c, 1, in, NULL);
  c = (ce_case){.targets = t, .ignore_index = -100, .smoothing = 0.2f};
  vt_gradcheck("cross_entropy ignore_index + label smoothing", ce_fn, &c, 1, in, NULL);
  vox_tensor_release(in[0]);
  vox_tensor_release(t);
  vox_tensor_release(t_plain);

  vox_tensor *in3[1] = {vt_randn(VT_SHAPE(2, 3, 4), 2, 1, true)};
  vox_tensor *t3 = vt_from_i32(VT_SHAPE(2, 3), (int32_t[]){0, 3, 2, 1, 7, 1});
  c = (ce_case){.targets = t3, .ignore_index = 7, .smoothing = 0.1f};
  vt_gradcheck("cross_entropy 3-D logits", ce_fn, &c, 1, in3, NULL);
  vox_tensor_release(in3[0]);
  vox_tensor_release(t3);
}

static vox_status mse_fn(void *ctx, vox_tensor *const *in, vox_tensor **out) { return vox_op_mse_loss(in[0], in[1], out); }
static vox_status l1_fn(void *ctx, vox_tensor *const *in, vox_tensor **out) { return vox_op_l1_loss(in[0], in[1], out); }

Test(grad_loss, mse_and_l1) {
  vox_tensor *in[2] = {vt_randn(VT_SHAPE(3, 4), 1, 1, true), vt_randn(VT_SHAPE(3, 4), 2, 1, true)};
  vt_gradcheck("mse_loss", mse_fn, NULL, 2, in, NULL);
  /* |pred - target| has a kink at 0: keep every difference well away from it (> eps). */
  float *p = vox_tensor_f32(in[0]), *q = vox_tensor_f32(in[1]);
  for (int i = 0; i < 12; i++)
    if (p[i] - q[i] < 0.1f && p[i] - q[i] > -0.1f) p[i] = q[i] + (i % 2 ? 0.5f : -0.5f);
  vt_gradcheck("l1_loss", l1_fn, NULL, 2, in, NULL);
  vox_tensor_release(in[0]);
  vox_tensor_release(in[1]);
}

static vox_status ce_transposed_fn(void *ctx, vox_tensor *const *in, vox_tensor **out) {
  const ce_case *c = ctx;
  vox_tensor *t = NULL;
  VOX_TRY(vox_op_transpose(in[0], 0, 1, &t)); /* non-contiguous logits */
  vox_status st = vox_op_cross_entropy(t, c->targets, c->ignore_index, c->smoothing, out);
  vox_tensor_release(t);
  return st;
}

Test(grad_loss, cross_entropy_strided_logits) {
  vox_tensor *in[1] = {vt_randn(VT_SHAPE(5, 4), 3, 1, true)};
  vox_tensor *t = vt_from_i32(VT_SHAPE(4), (int32_t[]){4, 0, 2, 2});
  ce_case c = {.targets = t, .ignore_index = 0, .smoothing = 0.05f};
  vt_gradcheck("cross_entropy transposed logits", ce_transposed_fn, &c, 1, in, NULL);
  vox_tensor_release(in[0]);
  vox_tensor_release(t);
}
