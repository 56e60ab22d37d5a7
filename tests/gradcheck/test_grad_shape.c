/* Finite-difference gradient checks for the shape ops: reshape (view and copy), permute, transpose, slice with
 * step, split, expand, concat, contiguous, cast and sum_to, each also fed strided views where that matters. */
#include "vox_test.h"

#define RELEASE(t) vox_tensor_drop(&(t))

/* x[3,4,5] -> transpose(0,2) -> reshape [20,3] (needs a copy: the transposed strides do not allow a view). */
static vox_status f_reshape_copy(void *ctx, vox_tensor *const *in, vox_tensor **out) {
  vox_tensor *t = NULL;
  VOX_TRY(vox_op_transpose(in[0], 0, 2, &t));
  vox_status st = vox_op_reshape(t, 2, (int64_t[]){20, -1}, out);
  RELEASE(t);
  return st;
}
static vox_status f_reshape_view(void *ctx, vox_tensor *const *in, vox_tensor **out) {
  return vox_op_reshape(in[0], 3, (int64_t[]){2, -1, 5}, out);
}
static vox_status f_permute(void *ctx, vox_tensor *const *in, vox_tensor **out) {
  return vox_op_permute(in[0], (int[]){2, 0, 1}, out);
}
/* permute then multiply by a (non-contiguous result feeds an elementwise op). */
static vox_status f_permute_mul(void *ctx, vox_tensor *const *in, vox_tensor **out) {
  vox_tensor *t = NULL;
  VOX_TRY(vox_op_permute(in[0], (int[]){1, 0}, &t));
  vox_status st = vox_op_mul(t, in[1], out);
  RELEASE(t);
  return st;
}
static vox_status f_slice_step(void *ctx, vox_tensor *const *in, vox_tensor **out) {
  return vox_op_slice(in[0], 1, -5, 100, 2, out); /* [3,7] -> cols 2,4,6 */
}
static vox_status f_slice_of_transpose(void *ctx, vox_tensor *const *in, vox_tensor **out) {
  vox_tensor *t = NULL;
  VOX_TRY(vox_op_transpose(in[0], 0, 1, &t));
  vox_status st = vox_op_slice(t, 0, 1, 6, 3, out);
  RELEASE(t);
  return st;
}
static vox_status f_split(void *ctx, vox_tensor *const *in, vox_tensor **out) {
  vox_tensor *parts[3] = {0}, *a = NULL, *b = NULL;
  VOX_TRY(vox_op_split(in[0], -1, 3, (int64_t[]){2, 3, 2}, parts));
  /* combine parts asymmetrically so that each gets a distinct gradient */
  vox_status st = vox_op_mul(parts[0], parts[2], &a);
  if (st == VOX_OK) st = vox_op_sum(parts[1], 1, (int[]){1}, true, &b);
  if (st == VOX_OK) st = vox_op_add(a, b, out);
  for (int i = 0; i < 3; i++) RELEASE(parts[i]);
  RELEASE(a);
  RELEASE(b);
  return st;
}
static vox_status f_expand(void *ctx, vox_tensor *const *in, vox_tensor **out) {
  return vox_op_expand(in[0], 4, (int64_t[]){2, 3, -1, 4}, out); /* [3,1,4] -> [2,3,1,4]? no: [3,1,4] to [2,3,5,4] */
}
static vox_status f_expand2(void *ctx, vox_tensor *const *in, vox_tensor **out) {
  return vox_op_expand(in[0], 4, (int64_t[]){2, 3, 5, 4}, out);
}
static vox_status f_concat(void *ctx, vox_tensor *const *in, vox_tensor **out) {
  return vox_op_concat(3, in, 1, out);
}
/* Ten inputs exceed the 8 a node holds: concat groups them. */
static vox_status f_concat_many(void *ctx, vox_tensor *const *in, vox_tensor **out) {
  vox_tensor *xs[10];
  for (int i = 0; i < 10; i++) xs[i] = in[i % 2];
  return vox_op_concat(10, xs, 0, out);
}
static vox_status f_contiguous(void *ctx, vox_tensor *const *in, vox_tensor **out) {
  vox_tensor *t = NULL;
  VOX_TRY(vox_op_transpose(in[0], 0, 1, &t));
  vox_status st = vox_op_contiguous(t, out);
  RELEASE(t);
  return st;
}
static vox_status f_cast(void *ctx, vox_tensor *const *in, vox_tensor **out) {
  vox_tensor *h = NULL, *sq = NULL;
  VOX_TRY(vox_op_cast(in[0], VOX_BF16, &h));
  vox_status st = vox_op_square(h, &sq);
  RELEASE(h);
  if (st == VOX_OK) st = vox_op_cast(sq, VOX_F32, out);
  RELEASE(sq);
  return st;
}
static vox_status f_sum_to(void *ctx, vox_tensor *const *in, vox_tensor **out) {
  return vox_op_sum_to(in[0], 3, (int64_t[]){3, 1, 4}, out); /* [2,3,5,4] -> [3,1,4] */
}

Test(grad_shape, reshape) {
  vox_tensor *x = vt_randn(VT_SHAPE(3, 4, 5), 1, 1.0f, true);
  vt_gradcheck("reshape copy", f_reshape_copy, NULL, 1, &x, NULL);
  vt_gradcheck("reshape view", f_reshape_view, NULL, 1, &x, NULL);
  vox_tensor_release(x);
}
Test(grad_shape, permute_transpose) {
  vox_tensor *x = vt_randn(VT_SHAPE(3, 4, 5), 2, 1.0f, true);
  vt_gradcheck("permute", f_permute, NULL, 1, &x, NULL);
  vox_tensor_release(x);
  vox_tensor *in[2] = {vt_randn(VT_SHAPE(4, 3), 3, 1.0f, true), vt_randn(VT_SHAPE(3, 4), 4, 1.0f, true)};
  vt_gradcheck("permute then mul", f_permute_mul, NULL, 2, in, NULL);
  vox_tensor_release(in[0]);
  vox_tensor_release(in[1]);
}
Test(grad_shape, slice) {
  vox_tensor *x = vt_randn(VT_SHAPE(3, 7), 5, 1.0f, true);
  vt_gradcheck("slice step 2", f_slice_step, NULL, 1, &x, NULL);
  vt_gradcheck("slice of transpose", f_slice_of_transpose, NULL, 1, &x, NULL);
  vox_tensor_release(x);
}
Test(grad_shape, split) {
  vox_tensor *x = vt_randn(VT_SHAPE(4, 7), 6, 1.0f, true);
  vt_gradcheck("split", f_split, NULL, 1, &x, NULL);
  vox_tensor_release(x);
}
Test(grad_shape, expand) {
  vox_tensor *x = vt_randn(VT_SHAPE(3, 1, 4), 7, 1.0f, true);
  vt_gradcheck("expand", f_expand2, NULL, 1, &x, NULL);
  vox_tensor_release(x);
  (void)f_expand;
}
Test(grad_shape, concat) {
  vox_tensor *in[3] = {vt_randn(VT_SHAPE(2, 3, 2), 8, 1.0f, true), vt_randn(VT_SHAPE(2, 1, 2), 9, 1.0f, false),
                       vt_randn(VT_SHAPE(2, 4, 2), 10, 1.0f, true)};
  vt_gradcheck("concat", f_concat, NULL, 3, in, NULL);
  for (int i = 0; i < 3; i++) vox_tensor_release(in[i]);
  vox_tensor *two[2] = {vt_randn(VT_SHAPE(2, 3), 11, 1.0f, true), vt_randn(VT_SHAPE(1, 3), 12, 1.0f, true)};
  vt_gradcheck("concat of 10", f_concat_many, NULL, 2, two, NULL);
  vox_tensor_release(two[0]);
  vox_tensor_release(two[1]);
}
Test(grad_shape, contiguous_cast_sum_to) {
  vox_tensor *x = vt_randn(VT_SHAPE(3, 4), 13, 1.0f, true);
  vt_gradcheck("contiguous", f_contiguous, NULL, 1, &x, NULL);
  /* bf16 has 8 mantissa bits: a coarse step and loose tolerance */
  vt_gradcheck("cast bf16", f_cast, NULL, 1, &x, &(vt_gradcheck_opts){.eps = 0.25, .atol = 0.1, .rtol = 0.1});
  vox_tensor_release(x);
  vox_tensor *y = vt_randn(VT_SHAPE(2, 3, 5, 4), 14, 1.0f, true);
  vt_gradcheck("sum_to", f_sum_to, NULL, 1, &y, NULL);
  vox_tensor_release(y);
}
