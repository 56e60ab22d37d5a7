/* The bf16 mixed-precision setting (vox_set_matmul_precision) on the CPU backend: linear and matmul multiply
 * bf16-rounded operands, return f32, and hand f32 gradients back to f32 leaves (master weights). */
#include <math.h>
#include <stdlib.h>

#include "core/backend.h"
#include "vox_test.h"

static vox_tensor *rounded(const vox_tensor *x, bool requires_grad) {
  vox_tensor *b = NULL, *f = NULL;
  VT_OK(vox_tensor_to(x, VOX_CPU, VOX_BF16, &b));
  VT_OK(vox_tensor_to(b, VOX_CPU, VOX_F32, &f));
  vox_tensor_release(b);
  f->requires_grad = requires_grad;
  return f;
}

/* loss = sum(linear(x, w, b) * W) with W bf16-exact, so the bf16 upstream gradient equals the f32 one. */
static vox_tensor *linear_loss(vox_tensor *x, vox_tensor *w, vox_tensor *b, vox_tensor *W, vox_tensor **y) {
  vox_tensor *yw = NULL, *l = NULL;
  VT_OK(vox_op_linear(x, w, b, y));
  VT_OK(vox_op_mul(*y, W, &yw));
  VT_OK(vox_op_sum(yw, 0, NULL, false, &l));
  vox_tensor_release(yw);
  return l;
}

Test(matmul_precision, linear_bf16_policy_gives_f32_results_and_gradients) {
  vox_tensor *x = vt_randn(VT_SHAPE(2, 5, 24), 1, 1.0f, true), *w = vt_randn(VT_SHAPE(7, 24), 2, 0.3f, true);
  vox_tensor *b = vt_randn(VT_SHAPE(7), 3, 1.0f, true), *W0 = vt_randn(VT_SHAPE(2, 5, 7), 4, 1.0f, false);
  vox_tensor *W = rounded(W0, false), *xr = rounded(x, true), *wr = rounded(w, true), *br = NULL;
  VT_OK(vox_tensor_clone(b, &br));
  br->requires_grad = true;

  vox_tensor *yref = NULL, *lref = linear_loss(xr, wr, br, W, &yref);
  VT_OK(vox_backward(lref, NULL));

  vox_set_matmul_precision(VOX_CPU, VOX_PRECISION_BF16);
  vox_tensor *y = NULL, *l = linear_loss(x, w, b, W, &y);
  vox_status st = vox_backward(l, NULL);
  vox_set_matmul_precision(VOX_CPU, VOX_PRECISION_F32);
  VT_OK(st);
  cr_assert_eq(y->dtype, VOX_F32, "linear output stays f32 under the bf16 policy");
  vt_assert_close(y, yref, 1e-5, 1e-5, "bf16-policy linear = linear of bf16-rounded operands");
  cr_assert(x->grad && w->grad && b->grad, "every f32 leaf receives a gradient");
  cr_assert(x->grad->dtype == VOX_F32 && w->grad->dtype == VOX_F32 && b->grad->dtype == VOX_F32,
            "master gradients are f32");
  /* dx and dW come out of bf16 GEMMs (rounded to 8 bits), db from an f32-output GEMM. */
  vt_assert_close(x->grad, xr->grad, 1e-2, 8e-3, "dx");
  vt_assert_close(w->grad, wr->grad, 1e-2, 8e-3, "dW");
  vt_assert_close(b->grad, br->grad, 1e-4, 1e-4, "db");
  vox_tensor *all[] = {x, w, b, W0, W, xr, wr, br, yref, lref, y, l};
  for (size_t i = 0; i < sizeof all / sizeof *all; i++) vox_tensor_release(all[i]);
}

Test(matmul_precision, matmul_bf16_policy) {
  vox_tensor *a = vt_randn(VT_SHAPE(3, 6, 16), 10, 1.0f, true), *b = vt_randn(VT_SHAPE(3, 9, 16), 11, 1.0f, true);
  vox_tensor *ar = rounded(a, true), *br = rounded(b, true), *cref = NULL, *c = NULL, *s1 = NULL, *s2 = NULL;
  VT_OK(vox_op_matmul(ar, br, false, true, &cref));
  VT_OK(vox_op_sum(cref, 0, NULL, false, &s1));
  VT_OK(vox_backward(s1, NULL));
  vox_set_matmul_precision(VOX_CPU, VOX_PRECISION_BF16);
  cr_assert_eq(vox_matmul_precision(VOX_CPU), VOX_PRECISION_BF16);
  vox_status st = vox_op_matmul(a, b, false, true, &c);
  if (st == VOX_OK) st = vox_op_sum(c, 0, NULL, false, &s2);
  if (st == VOX_OK) st = vox_backward(s2, NULL);
  vox_set_matmul_precision(VOX_CPU, VOX_PRECISION_F32);
  VT_OK(st);
  cr_assert_eq(c->dtype, VOX_F32);
  vt_assert_close(c, cref, 1e-5, 1e-5, "bf16-policy matmul");
  cr_assert(a->grad->dtype == VOX_F32 && b->grad->dtype == VOX_F32);
  vt_assert_close(a->grad, ar->grad, 1e-2, 8e-3, "da");
  vt_assert_close(b->grad, br->grad, 1e-2, 8e-3, "db");
  vox_tensor *all[] = {a, b, ar, br, cref, c, s1, s2};
  for (size_t i = 0; i < sizeof all / sizeof *all; i++) vox_tensor_release(all[i]);
}
