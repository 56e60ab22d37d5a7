/* Finite-difference gradient checks for the elementwise ops: broadcasting binary ops ([3,1,4] op [5,4] and
 * transposed operands), every unary op and activation, swiglu, where, masked_fill, dropout, straight-through. */
#include <math.h>
#include <stdio.h>

#include "vox_test.h"

typedef vox_status (*binary_fn)(vox_tensor *, vox_tensor *, vox_tensor **);
typedef vox_status (*unary_fn)(vox_tensor *, vox_tensor **);

static vox_status f_binary(void *ctx, vox_tensor *const *in, vox_tensor **out) {
  return ((binary_fn)ctx)(in[0], in[1], out);
}
/* a [4,5] is transposed to [5,4] inside the checked function: the op sees a strided operand. */
static vox_status f_binary_transposed(void *ctx, vox_tensor *const *in, vox_tensor **out) {
  vox_tensor *t = NULL;
  VOX_TRY(vox_op_transpose(in[0], 0, 1, &t));
  vox_status st = ((binary_fn)ctx)(t, in[1], out);
  vox_tensor_drop(&t);
  return st;
}
static vox_status f_unary(void *ctx, vox_tensor *const *in, vox_tensor **out) { return ((unary_fn)ctx)(in[0], out); }
/* Unary op on a column slice with step 2 (non-contiguous input). */
static vox_status f_unary_sliced(void *ctx, vox_tensor *const *in, vox_tensor **out) {
  vox_tensor *t = NULL;
  VOX_TRY(vox_op_slice(in[0], 1, 0, 6, 2, &t));
  vox_status st = ((unary_fn)ctx)(t, out);
  vox_tensor_drop(&t);
  return st;
}

/* Values in ±[lo, hi], signs alternating: keeps finite differences away from kinks at 0. */
static vox_tensor *away_from_zero(int ndim, const int64_t *shape, uint64_t seed, float lo, float hi) {
  vox_tensor *x = vt_uniform(ndim, shape, seed, lo, hi, true);
  float *p = vox_tensor_f32(x);
  for (int64_t i = 0; i < vox_tensor_numel(x); i++)
    if (i % 2) p[i] = -p[i];
  return x;
}

static void check_binary(const char *name, binary_fn fn, bool positive_b) {
  vox_tensor *in[2] = {vt_randn(VT_SHAPE(3, 1, 4), 1, 1.0f, true),
                       positive_b ? vt_uniform(VT_SHAPE(5, 4), 2, 0.5f, 2.0f, true) : vt_randn(VT_SHAPE(5, 4), 2, 1.0f, true)};
  char what[64];
  snprintf(what, sizeof what, "%s [3,1,4] op [5,4]", name);
  vt_gradcheck(what, f_binary, (void *)fn, 2, in, NULL);
  /* and with the operands swapped */
  vox_tensor *sw[2] = {in[1], in[0]};
  if (!positive_b) {
    snprintf(what, sizeof what, "%s [5,4] op [3,1,4]", name);
    vt_gradcheck(what, f_binary, (void *)fn, 2, sw, NULL);
  }
  vox_tensor_release(in[0]);
  vox_tensor_release(in[1]);
  vox_tensor *tr[2] = {vt_randn(VT_SHAPE(4, 5), 3, 1.0f, true),
                       positive_b ? vt_uniform(VT_SHAPE(5, 1), 4, 0.5f, 2.0f, true) : vt_randn(VT_SHAPE(5, 1), 4, 1.0f, true)};
  snprintf(what, sizeof what, "%s transposed [4,5]^T op [5,1]", name);
  vt_gradcheck(what, f_binary_transposed, (void *)fn, 2, tr, NULL);
  vox_tensor_release(tr[0]);
  vox_tensor_release(tr[1]);
}

Test(grad_elementwise, add_sub_mul_div) {
  check_binary("add", vox_op_add, false);
  check_binary("sub", vox_op_sub, false);
  check_binary("mul", vox_op_mul, false);
  check_binary("div", vox_op_div, true);
}

Test(grad_elementwise, maximum_minimum) {
  check_binary("maximum", vox_op_maximum, false);
  check_binary("minimum", vox_op_minimum, false);
}

Test(grad_elementwise, same_tensor_both_operands) {
  vox_tensor *x = vt_randn(VT_SHAPE(3, 4), 5, 1.0f, true);
  vox_tensor *in[2] = {x, x};
  vt_gradcheck("mul x*x", f_binary, (void *)vox_op_mul, 2, in, NULL);
  vox_tensor_release(x);
}

static void check_unary(const char *name, unary_fn fn, vox_tensor *x) {
  vt_gradcheck(name, f_unary, (void *)fn, 1, &x, NULL);
  char what[64];
  snprintf(what, sizeof what, "%s on a strided slice", name);
  vt_gradcheck(what, f_unary_sliced, (void *)fn, 1, &x, NULL);
  vox_tensor_release(x);
}

Test(grad_elementwise, unary_math) {
  check_unary("neg", vox_op_neg, vt_randn(VT_SHAPE(3, 6), 10, 1.0f, true));
  check_unary("exp", vox_op_exp, vt_randn(VT_SHAPE(3, 6), 11, 1.0f, true));
  check_unary("log", vox_op_log, vt_uniform(VT_SHAPE(3, 6), 12, 0.5f, 3.0f, true));
  check_unary("sqrt", vox_op_sqrt, vt_uniform(VT_SHAPE(3, 6), 13, 0.5f, 3.0f, true));
  check_unary("rsqrt", vox_op_rsqrt, vt_uniform(VT_SHAPE(3, 6), 14, 0.5f, 3.0f, true));
  check_unary("abs", vox_op_abs, away_from_zero(VT_SHAPE(3, 6), 15, 0.1f, 2.0f));
  check_unary("square", vox_op_square, vt_randn(VT_SHAPE(3, 6), 16, 1.0f, true));
  check_unary("sin", vox_op_sin, vt_randn(VT_SHAPE(3, 6), 17, 1.0f, true));
  check_unary("cos", vox_op_cos, vt_randn(VT_SHAPE(3, 6), 18, 1.0f, true));
}

static vox_status gelu_erf(vox_tensor *x, vox_tensor **o) { return vox_op_gelu(x, false, o); }
static vox_status gelu_tanh(vox_tensor *x, vox_tensor **o) { return vox_op_gelu(x, true, o); }
static vox_status affine(vox_tensor *x, vox_tensor **o) { return vox_op_affine(x, -1.5, 0.25, o); }
static vox_status pow3(vox_tensor *x, vox_tensor **o) { return vox_op_pow_scalar(x, 3.0, o); }
static vox_status pow_frac(vox_tensor *x, vox_tensor **o) { return vox_op_pow_scalar(x, 1.5, o); }
static vox_status clamp(vox_tensor *x, vox_tensor **o) { return vox_op_clamp(x, -0.5, 0.7, o); }

Test(grad_elementwise, activations) {
  check_unary("tanh", vox_op_tanh, vt_randn(VT_SHAPE(3, 6), 20, 1.5f, true));
  check_unary("sigmoid", vox_op_sigmoid, vt_randn(VT_SHAPE(3, 6), 21, 2.0f, true));
  check_unary("relu", vox_op_relu, away_from_zero(VT_SHAPE(3, 6), 22, 0.1f, 2.0f));
  check_unary("gelu erf", gelu_erf, vt_randn(VT_SHAPE(3, 6), 23, 1.5f, true));
  check_unary("gelu tanh", gelu_tanh, vt_randn(VT_SHAPE(3, 6), 24, 1.5f, true));
  check_unary("silu", vox_op_silu, vt_randn(VT_SHAPE(3, 6), 25, 1.5f, true));
}

Test(grad_elementwise, affine_pow_clamp) {
  check_unary("affine", affine, vt_randn(VT_SHAPE(3, 6), 30, 1.0f, true));
  check_unary("pow 3", pow3, vt_randn(VT_SHAPE(3, 6), 31, 1.0f, true));
  check_unary("pow 1.5", pow_frac, vt_uniform(VT_SHAPE(3, 6), 32, 0.5f, 2.0f, true));
  /* values kept 0.05 away from the clamp bounds -0.5 and 0.7 */
  float v[18] = {-1.0f, -0.6f, -0.4f, 0.0f, 0.3f, 0.65f, 0.8f, 1.2f, -0.2f,
                 0.1f, -0.9f, 0.5f, 0.75f, -0.45f, 0.2f, -0.7f, 0.6f, 2.0f};
  vox_tensor *x = vt_from_f32(VT_SHAPE(3, 6), v);
  x->requires_grad = true;
  check_unary("clamp", clamp, x);
}

static vox_status f_swiglu(void *ctx, vox_tensor *const *in, vox_tensor **out) {
  return vox_op_swiglu(in[0], in[1], out);
}
/* gate and up as the two halves of one [3,8] projection (strided views), as an MLP uses them. */
static vox_status f_swiglu_halves(void *ctx, vox_tensor *const *in, vox_tensor **out) {
  vox_tensor *parts[2] = {0};
  VOX_TRY(vox_op_split(in[0], 1, 2, (int64_t[]){4, 4}, parts));
  vox_status st = vox_op_swiglu(parts[0], parts[1], out);
  vox_tensor_release(parts[0]);
  vox_tensor_release(parts[1]);
  return st;
}

Test(grad_elementwise, swiglu) {
  vox_tensor *in[2] = {vt_randn(VT_SHAPE(3, 5), 40, 1.5f, true), vt_randn(VT_SHAPE(3, 5), 41, 1.0f, true)};
  vt_gradcheck("swiglu", f_swiglu, NULL, 2, in, NULL);
  vox_tensor_release(in[0]);
  vox_tensor_release(in[1]);
  vox_tensor *x = vt_randn(VT_SHAPE(3, 8), 42, 1.5f, true);
  vt_gradcheck("swiglu of split halves", f_swiglu_halves, NULL, 1, &x, NULL);
  vox_tensor_release(x);
}

static vox_status f_where(void *ctx, vox_tensor *const *in, vox_tensor **out) {
  return vox_op_where((vox_tensor *)ctx, in[0], in[1], out);
}
static vox_status f_masked_fill(void *ctx, vox_tensor *const *in, vox_tensor **out) {
  return vox_op_masked_fill(in[0], (vox_tensor *)ctx, -3.0, out);
}

Test(grad_elementwise, where_masked_fill) {
  int32_t c[4] = {1, 0, 0, 1};
  vox_tensor *cond = vt_from_i32(VT_SHAPE(4), c); /* broadcasts over [3,1,4] x [5,4] -> [3,5,4] */
  vox_tensor *in[2] = {vt_randn(VT_SHAPE(3, 1, 4), 50, 1.0f, true), vt_randn(VT_SHAPE(5, 4), 51, 1.0f, true)};
  vt_gradcheck("where", f_where, cond, 2, in, NULL);
  vox_tensor_release(in[0]);
  vox_tensor_release(in[1]);
  vox_tensor_release(cond);
  float m[3] = {0.0f, 1.0f, 0.0f};
  vox_tensor *mask = vt_from_f32(VT_SHAPE(3, 1), m);
  vox_tensor *x = vt_randn(VT_SHAPE(3, 4), 52, 1.0f, true);
  vt_gradcheck("masked_fill", f_masked_fill, mask, 1, &x, NULL);
  vox_tensor_release(x);
  vox_tensor_release(mask);
}

/* A fresh rng with the same seed each call, so the finite differences see the same mask. */
static vox_status f_dropout(void *ctx, vox_tensor *const *in, vox_tensor **out) {
  vox_rng rng = vox_rng_make(1234);
  vox_rng_take(&rng, 100);
  return vox_op_dropout(in[0], 0.4f, true, &rng, out);
}
/* q = x + 0.3 computed without grad: the forward then moves with x exactly as the identity gradient says, so
 * finite differences can check the plumbing (a real quantiser's q is flat, which is the point of the STE). */
static vox_status f_straight_through(void *ctx, vox_tensor *const *in, vox_tensor **out) {
  vox_tensor *q = NULL;
  vox_no_grad_begin();
  vox_status st = vox_op_affine(in[0], 1.0, 0.3, &q);
  vox_no_grad_end();
  if (st == VOX_OK) st = vox_op_straight_through(in[0], q, out);
  vox_tensor_release(q);
  return st;
}

Test(grad_elementwise, dropout_straight_through) {
  vox_tensor *x = vt_randn(VT_SHAPE(4, 6), 60, 1.0f, true);
  vt_gradcheck("dropout", f_dropout, NULL, 1, &x, NULL);
  vt_gradcheck("straight_through", f_straight_through, NULL, 1, &x, NULL);
  vox_tensor_release(x);
}
