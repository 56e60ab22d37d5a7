/* Finite-difference gradient checks for the reductions: sum and mean over one, several and all dims, with and
 * without keepdim, on contiguous and transposed inputs; max along a dim (distinct values, so no ties). */
#include "vox_test.h"

typedef struct red_case {
  int which; /* 0 sum, 1 mean, 2 max */
  int n_dims;
  int dims[4];
  bool keepdim;
  bool transpose; /* reduce a transposed view of the input */
} red_case;

static vox_status f_reduce(void *ctx, vox_tensor *const *in, vox_tensor **out) {
  const red_case *c = ctx;
  vox_tensor *x = vox_tensor_retain(in[0]);
  vox_status st = VOX_OK;
  if (c->transpose) {
    vox_tensor *t = NULL;
    st = vox_op_transpose(x, 0, -1, &t);
    vox_tensor_release(x);
    x = t;
  }
  if (st == VOX_OK) {
    if (c->which == 0) st = vox_op_sum(x, c->n_dims, c->dims, c->keepdim, out);
    else if (c->which == 1) st = vox_op_mean(x, c->n_dims, c->dims, c->keepdim, out);
    else st = vox_op_max(x, c->dims[0], c->keepdim, out);
  }
  vox_tensor_release(x);
  return st;
}

static void check(const char *name, red_case c, vox_tensor *x) { vt_gradcheck(name, f_reduce, &c, 1, &x, NULL); }

Test(grad_reduce, sum) {
  vox_tensor *x = vt_randn(VT_SHAPE(3, 4, 5), 1, 1.0f, true);
  check("sum all", (red_case){0, 0, {0}, false, false}, x);
  check("sum dim -1", (red_case){0, 1, {-1}, false, false}, x);
  check("sum dim 0 keepdim", (red_case){0, 1, {0}, true, false}, x);
  check("sum dims 0,2", (red_case){0, 2, {0, 2}, false, false}, x);
  check("sum dims 2,0 keepdim", (red_case){0, 2, {2, 0}, true, false}, x);
  check("sum dim 1 of transposed", (red_case){0, 1, {1}, false, true}, x);
  check("sum dims 0,1 of transposed keepdim", (red_case){0, 2, {0, 1}, true, true}, x);
  vox_tensor_release(x);
}

Test(grad_reduce, mean) {
  vox_tensor *x = vt_randn(VT_SHAPE(3, 4, 5), 2, 1.0f, true);
  check("mean all", (red_case){1, 0, {0}, false, false}, x);
  check("mean dim 1", (red_case){1, 1, {1}, false, false}, x);
  check("mean dims 1,2 keepdim", (red_case){1, 2, {1, 2}, true, false}, x);
  check("mean dim 0 of transposed", (red_case){1, 1, {0}, true, true}, x);
  vox_tensor_release(x);
}

Test(grad_reduce, max) {
  /* a permutation of distinct values 0.1 apart: no ties within eps of each other */
  float v[60];
  for (int i = 0; i < 60; i++) v[i] = 0.1f * (float)((i * 37) % 60) - 3.0f;
  vox_tensor *x = vt_from_f32(VT_SHAPE(3, 4, 5), v);
  x->requires_grad = true;
  vt_gradcheck_opts o = {.eps = 1e-2};
  red_case c0 = {2, 1, {-1}, false, false}, c1 = {2, 1, {1}, true, false}, c2 = {2, 1, {0}, false, true};
  vt_gradcheck("max dim -1", f_reduce, &c0, 1, &x, &o);
  vt_gradcheck("max dim 1 keepdim", f_reduce, &c1, 1, &x, &o);
  vt_gradcheck("max dim 0 of transposed", f_reduce, &c2, 1, &x, &o);
  vox_tensor_release(x);
}
