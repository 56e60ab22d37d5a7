/* Finite-difference gradient checks of rope: full and partial rotary, [B, T] and [T] positions. */
#include "vox_test.h"

typedef struct rope_ctx {
  vox_tensor *pos;
  int rotary_dim;
} rope_ctx;

static vox_status rope_fn(void *ctx, vox_tensor *const *in, vox_tensor **out) {
  rope_ctx *c = ctx;
  return vox_op_rope(in[0], c->pos, 10000.0f, c->rotary_dim, out);
}

Test(grad_rope, rope) {
  vox_tensor *x = vt_randn(VT_SHAPE(2, 3, 4, 8), 1, 1.0f, true);
  vox_tensor *pos2 = vt_from_i32(VT_SHAPE(2, 4), (int32_t[]){0, 1, 2, 3, 7, 100, 2000, 5});
  vox_tensor *pos1 = vt_from_i32(VT_SHAPE(4), (int32_t[]){3, 4, 5, 6});
  rope_ctx full = {pos2, 0}, partial = {pos1, 4};
  vt_gradcheck("rope full, [B,T] positions", rope_fn, &full, 1, &x, NULL);
  vt_gradcheck("rope partial rotary_dim 4, [T] positions", rope_fn, &partial, 1, &x, NULL);
  vox_tensor_release(x), vox_tensor_release(pos1), vox_tensor_release(pos2);
}
