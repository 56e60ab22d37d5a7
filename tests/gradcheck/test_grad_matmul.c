/* Finite-difference checks of matmul (plain, transposed, batched, broadcast batch, strided operands), linear
 * (with and without bias, 3-D input) and the mel filterbank. */
#include "vox_test.h"

typedef struct mm_case {
  bool ta, tb;
  bool transpose_a_first; /* feed a transposed (non-contiguous) view of input 0 */
} mm_case;

static vox_status mm_fn(void *ctx, vox_tensor *const *in, vox_tensor **out) {
  const mm_case *c = ctx;
  if (!c->transpose_a_first) return vox_op_matmul(in[0], in[1], c->ta, c->tb, out);
  vox_tensor *at = NULL;
  VOX_TRY(vox_op_transpose(in[0], -1, -2, &at));
  vox_status st = vox_op_matmul(at, in[1], c->ta, c->tb, out);
  vox_tensor_release(at);
  return st;
}

static void check_mm(const char *name, mm_case c, vox_tensor *a, vox_tensor *b) {
  vox_tensor *in[2] = {a, b};
  vt_gradcheck(name, mm_fn, &c, 2, in, NULL);
  vox_tensor_release(a);
  vox_tensor_release(b);
}

Test(grad_matmul, plain_and_transposed) {
  check_mm("matmul", (mm_case){0}, vt_randn(VT_SHAPE(3, 4), 1, 1, true), vt_randn(VT_SHAPE(4, 5), 2, 1, true));
  check_mm("matmul ta", (mm_case){.ta = true}, vt_randn(VT_SHAPE(4, 3), 3, 1, true), vt_randn(VT_SHAPE(4, 5), 4, 1, true));
  check_mm("matmul tb", (mm_case){.tb = true}, vt_randn(VT_SHAPE(3, 4), 5, 1, true), vt_randn(VT_SHAPE(5, 4), 6, 1, true));
  check_mm("matmul ta tb", (mm_case){.ta = true, .tb = true}, vt_randn(VT_SHAPE(4, 3), 7, 1, true),
           vt_randn(VT_SHAPE(5, 4), 8, 1, true));
}

Test(grad_matmul, batched_and_broadcast) {
  check_mm("batched", (mm_case){0}, vt_randn(VT_SHAPE(2, 3, 4), 1, 1, true), vt_randn(VT_SHAPE(2, 4, 3), 2, 1, true));
  /* b without batch dims: its gradient folds the batch into one GEMM */
  check_mm("broadcast 2-D b", (mm_case){0}, vt_randn(VT_SHAPE(2, 3, 4), 3, 1, true), vt_randn(VT_SHAPE(4, 2), 4, 1, true));
  check_mm("broadcast 2-D b^T", (mm_case){.tb = true}, vt_randn(VT_SHAPE(2, 3, 4), 5, 1, true),
           vt_randn(VT_SHAPE(2, 4), 6, 1, true));
  /* a without batch dims, and both sides broadcasting different dims */
  check_mm("broadcast 2-D a^T", (mm_case){.ta = true}, vt_randn(VT_SHAPE(4, 3), 7, 1, true),
           vt_randn(VT_SHAPE(2, 4, 2), 8, 1, true));
  check_mm("broadcast both", (mm_case){.tb = true}, vt_randn(VT_SHAPE(2, 1, 3, 4), 9, 1, true),
           vt_randn(VT_SHAPE(3, 2, 4), 10, 1, true));
}

Test(grad_matmul, strided_input) {
  check_mm("transposed view of a", (mm_case){.transpose_a_first = true}, vt_randn(VT_SHAPE(2, 4, 3), 1, 1, true),
           vt_randn(VT_SHAPE(4, 5), 2, 1, true));
  check_mm("transposed view of a, ta", (mm_case){.transpose_a_first = true, .ta = true},
           vt_randn(VT_SHAPE(3, 4), 3, 1, true), vt_randn(VT_SHAPE(4, 2), 4, 1, true));
}

static vox_status linear_fn(void *ctx, vox_tensor *const *in, vox_tensor **out) {
  return vox_op_linear(in[0], in[1], ctx ? in[2] : NULL, out);
}

Test(grad_matmul, linear) {
  vox_tensor *in[3] = {vt_randn(VT_SHAPE(2, 3, 4), 1, 1, true), vt_randn(VT_SHAPE(5, 4), 2, 1, true),
                       vt_randn(VT_SHAPE(5), 3, 1, true)};
  vt_gradcheck("linear with bias", linear_fn, (void *)1, 3, in, NULL);
  vt_gradcheck("linear without bias", linear_fn, NULL, 2, in, NULL);
  for (int i = 0; i < 3; i++) vox_tensor_release(in[i]);
}

static vox_status mel_fn(void *ctx, vox_tensor *const *in, vox_tensor **out) {
  return vox_op_mel_filterbank(in[0], ctx, out);
}

Test(grad_matmul, mel_filterbank) {
  vox_tensor *filters = NULL;
  VT_OK(vox_mel_filters_new(16000, 32, 6, 0.0f, 8000.0f, true, &filters));
  vox_tensor *in[1] = {vt_uniform(VT_SHAPE(2, 3, 17), 1, 0, 1, true)};
  vt_gradcheck("mel_filterbank", mel_fn, filters, 1, in, NULL);
  vox_tensor_release(in[0]);
  vox_tensor_release(filters);
}
