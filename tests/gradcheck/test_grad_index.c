/* Finite-difference checks of embedding (repeated ids), gather, scatter_add (x and src, src larger than the
 * index) and pairwise squared distances (both operands). */
#include "vox_test.h"

static vox_status emb_fn(void *ctx, vox_tensor *const *in, vox_tensor **out) { return vox_op_embedding(in[0], ctx, out); }

Test(grad_index, embedding) {
  vox_tensor *ids = vt_from_i32(VT_SHAPE(2, 3), (int32_t[]){4, 0, 4, 2, 2, 4});
  vox_tensor *in[1] = {vt_randn(VT_SHAPE(6, 3), 1, 1, true)};
  vt_gradcheck("embedding", emb_fn, ids, 1, in, NULL);
  vox_tensor_release(in[0]);
  vox_tensor_release(ids);
}

typedef struct idx_case {
  int dim;
  vox_tensor *index;
} idx_case;

static vox_status gather_fn(void *ctx, vox_tensor *const *in, vox_tensor **out) {
  const idx_case *c = ctx;
  return vox_op_gather(in[0], c->dim, c->index, out);
}
static vox_status scatter_fn(void *ctx, vox_tensor *const *in, vox_tensor **out) {
  const idx_case *c = ctx;
  return vox_op_scatter_add(in[0], c->dim, c->index, in[1], out);
}

Test(grad_index, gather) {
  vox_tensor *in[1] = {vt_randn(VT_SHAPE(3, 4), 1, 1, true)};
  idx_case c1 = {.dim = 1, .index = vt_from_i32(VT_SHAPE(3, 2), (int32_t[]){0, 0, 3, 1, 2, 2})};
  vt_gradcheck("gather dim 1", gather_fn, &c1, 1, in, NULL);
  idx_case c0 = {.dim = 0, .index = vt_from_i32(VT_SHAPE(2, 4), (int32_t[]){2, 0, 1, 2, 2, 2, 0, 1})};
  vt_gradcheck("gather dim 0", gather_fn, &c0, 1, in, NULL);
  vox_tensor_release(in[0]);
  vox_tensor_release(c1.index);
  vox_tensor_release(c0.index);
}

Test(grad_index, scatter_add) {
  vox_tensor *in[2] = {vt_randn(VT_SHAPE(3, 4), 1, 1, true), vt_randn(VT_SHAPE(3, 3), 2, 1, true)};
  /* index [2, 3] inside src [3, 3]: src's last row gets no gradient; repeated targets accumulate. */
  idx_case c = {.dim = 1, .index = vt_from_i32(VT_SHAPE(2, 3), (int32_t[]){0, 0, 3, 1, 2, 1})};
  vt_gradcheck("scatter_add dim 1", scatter_fn, &c, 2, in, NULL);
  idx_case c0 = {.dim = 0, .index = vt_from_i32(VT_SHAPE(2, 3), (int32_t[]){2, 0, 2, 2, 1, 0})};
  vt_gradcheck("scatter_add dim 0", scatter_fn, &c0, 2, in, NULL);
  vox_tensor_release(in[0]);
  vox_tensor_release(in[1]);
  vox_tensor_release(c.index);
  vox_tensor_release(c0.index);
}

static vox_status sqdist_fn(void *ctx, vox_tensor *const *in, vox_tensor **out) {
  return vox_op_pairwise_sqdist(in[0], in[1], out);
}

Test(grad_index, pairwise_sqdist) {
  vox_tensor *in[2] = {vt_randn(VT_SHAPE(5, 3), 1, 1, true), vt_randn(VT_SHAPE(4, 3), 2, 1, true)};
  vt_gradcheck("pairwise_sqdist", sqdist_fn, NULL, 2, in, NULL);
  vox_tensor_release(in[0]);
  vox_tensor_release(in[1]);
}
