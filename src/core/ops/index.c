/* Indexing ops: embedding, gather, scatter_add (torch semantics) and pairwise squared distances for VQ.
 * Index operands are i32 and range-checked by the kernels; their gradients scatter or gather the other way. */
#include <stdio.h>
#include <string.h>

#include "core/autograd.h"
#include "core/backend.h"
#include "core/kernel_params.h"
#include "core/ops.h"

typedef struct index_ctx {
  int dim;
} index_ctx;

/* ---- embedding -------------------------------------------------------------------------------------------- */

static vox_status embedding_backward(vox_node *node, vox_tensor *g, vox_tensor **grad_in) {
  if (!vox_node_needs_grad(node, 0)) return VOX_OK;
  const vox_edge *e = &node->inputs[0];
  VOX_TRY(vox_tensor_zeros(e->dtype, g->device, e->ndim, e->shape, &grad_in[0]));
  vox_kernel_args a = {.n_in = 2, .n_out = 1, .in = {g, node->saved[0]}, .out = {grad_in[0]}};
  return vox_kernel_run("embedding backward", VOX_K_EMBEDDING_BACKWARD, &a);
}

vox_status vox_op_embedding(vox_tensor *weight, vox_tensor *ids, vox_tensor **out) {
  char b1[96], b2[96];
  *out = NULL;
  if (!weight || !ids) return vox_errorf(VOX_ERR_INVALID, "embedding: weight or ids is NULL");
  vox_tensor_describe(weight, b1, sizeof b1);
  vox_tensor_describe(ids, b2, sizeof b2);
  if (!vox_dtype_is_float(weight->dtype) || ids->dtype != VOX_I32)
    return vox_errorf(VOX_ERR_DTYPE, "embedding: weight %s must be f32/bf16 and ids %s i32", b1, b2);
  if (weight->ndim != 2 || ids->ndim + 1 > VOX_MAX_DIMS)
    return vox_errorf(VOX_ERR_SHAPE, "embedding: weight %s must be [V, D] (ids %s)", b1, b2);
  if (weight->device != ids->device)
    return vox_errorf(VOX_ERR_DEVICE, "embedding: weight on %s, ids on %s", vox_device_name(weight->device),
                      vox_device_name(ids->device));
  int64_t shape[VOX_MAX_DIMS];
  memcpy(shape, ids->shape, sizeof(int64_t) * (size_t)ids->ndim);
  shape[ids->ndim] = weight->shape[1];
  VOX_TRY(vox_tensor_empty(weight->dtype, weight->device, ids->ndim + 1, shape, out));
  vox_kernel_args a = {.n_in = 2, .n_out = 1, .in = {weight, ids}, .out = {*out}};
  char op[256];
  snprintf(op, sizeof op, "embedding (weight %s, ids %s)", b1, b2);
  vox_status st = vox_kernel_run(op, VOX_K_EMBEDDING, &a);
  vox_node *node = NULL;
  vox_tensor *inputs[2] = {weight, ids};
  if (st == VOX_OK) st = vox_autograd_record("embedding", *out, 2, inputs, embedding_backward, &node);
  if (st != VOX_OK) {
    vox_tensor_drop(out);
    return st;
  }
  if (node) vox_node_save(node, ids);
  return VOX_OK;
}

/* ---- gather / scatter_add --------------------------------------------------------------------------------- */

static vox_status check_index(const char *op, const vox_tensor *x, int dim, const vox_tensor *index,
                              const vox_tensor *src, int *d_out) {
  char b1[96], b2[96], b3[96];
  if (!x || !index) return vox_errorf(VOX_ERR_INVALID, "%s: input or index is NULL", op);
  vox_tensor_describe(x, b1, sizeof b1);
  vox_tensor_describe(index, b2, sizeof b2);
  vox_tensor_describe(src, b3, sizeof b3);
  if (!vox_dtype_is_float(x->dtype) || index->dtype != VOX_I32 || (src && !vox_dtype_is_float(src->dtype)))
    return vox_errorf(VOX_ERR_DTYPE, "%s: input %s (and src %s) must be f32/bf16, index %s i32", op, b1, b3, b2);
  int d = vox_tensor_dim(x, dim);
  if (d < 0) return vox_errorf(VOX_ERR_INDEX, "%s: dim %d out of range for %s", op, dim, b1);
  if (index->ndim != x->ndim || (src && src->ndim != x->ndim))
    return vox_errorf(VOX_ERR_SHAPE, "%s: input %s, index %s and src %s must have the same number of dims", op, b1,
                      b2, b3);
  for (int i = 0; i < x->ndim; i++) {
    if (i != d && index->shape[i] > x->shape[i])
      return vox_errorf(VOX_ERR_SHAPE, "%s: index %s is larger than input %s in dim %d", op, b2, b1, i);
    if (src && index->shape[i] > src->shape[i])
      return vox_errorf(VOX_ERR_SHAPE, "%s: index %s is larger than src %s in dim %d", op, b2, b3, i);
  }
  if (index->device != x->device || (src && src->device != x->device))
    return vox_errorf(VOX_ERR_DEVICE, "%s: operands on different devices", op);
  *d_out = d;
  return VOX_OK;
}

static vox_status run_scatter_add(const char *op, vox_tensor *out, int dim, const vox_tensor *index,
                                  const vox_tensor *src) {
  vox_index_params p = {.dim = dim};
  vox_kernel_args a = {.n_in = 2, .n_out = 1, .in = {index, src}, .out = {out}, .params = &p};
  return vox_kernel_run(op, VOX_K_SCATTER_ADD, &a);
}

static vox_status run_gather(const char *op, const vox_tensor *x, int dim, const vox_tensor *index, vox_tensor *out) {
  vox_index_params p = {.dim = dim};
  vox_kernel_args a = {.n_in = 2, .n_out = 1, .in = {x, index}, .out = {out}, .params = &p};
  return vox_kernel_run(op, VOX_K_GATHER, &a);
}

/* Shared tail of gather and scatter_add: on success record the node with the dim and the saved index;
 * on any failure drop the output. */
static vox_status record_indexed(const char *op, vox_status st, vox_tensor **out, int n_in, vox_tensor *const *inputs,
                                 vox_backward_fn backward, int dim, vox_tensor *index) {
  vox_node *node = NULL;
  if (st == VOX_OK) st = vox_autograd_record(op, *out, n_in, inputs, backward, &node);
  if (st != VOX_OK) {
    vox_tensor_drop(out);
    return st;
  }
  if (node) {
    index_ctx c = {.dim = dim};
    memcpy(node->ctx, &c, sizeof c);
    vox_node_save(node, index);
  }
  return VOX_OK;
}

static vox_status gather_backward(vox_node *node, vox_tensor *g, vox_tensor **grad_in) {
  if (!vox_node_needs_grad(node, 0)) return VOX_OK;
  const index_ctx *c = (const index_ctx *)node->ctx;
  const vox_edge *e = &node->inputs[0];
  VOX_TRY(vox_tensor_zeros(e->dtype, g->device, e->ndim, e->shape, &grad_in[0]));
  return run_scatter_add("gather backward", grad_in[0], c->dim, node->saved[0], g);
}

vox_status vox_op_gather(vox_tensor *x, int dim, vox_tensor *index, vox_tensor **out) {
  *out = NULL;
  int d = 0;
  VOX_TRY(check_index("gather", x, dim, index, NULL, &d));
  VOX_TRY(vox_tensor_empty(x->dtype, x->device, index->ndim, index->shape, out));
  vox_status st = run_gather("gather", x, d, index, *out);
  vox_tensor *inputs[2] = {x, index};
  return record_indexed("gather", st, out, 2, inputs, gather_backward, d, index);
}

/* d x = dy; d src = dy gathered at index (zero where src has elements the index does not reach). */
static vox_status scatter_add_backward(vox_node *node, vox_tensor *g, vox_tensor **grad_in) {
  const index_ctx *c = (const index_ctx *)node->ctx;
  vox_tensor *index = node->saved[0];
  if (vox_node_needs_grad(node, 0)) VOX_TRY(vox_tensor_clone(g, &grad_in[0]));
  if (!vox_node_needs_grad(node, 2)) return VOX_OK;
  const vox_edge *e = &node->inputs[2];
  VOX_TRY(vox_tensor_zeros(e->dtype, g->device, e->ndim, e->shape, &grad_in[2]));
  vox_tensor *region = NULL;
  vox_status st = vox_tensor_view(grad_in[2], index->ndim, index->shape, grad_in[2]->strides, grad_in[2]->offset,
                                  &region);
  if (st == VOX_OK) st = run_gather("scatter_add backward", g, c->dim, index, region);
  vox_tensor_release(region);
  return st;
}

vox_status vox_op_scatter_add(vox_tensor *x, int dim, vox_tensor *index, vox_tensor *src, vox_tensor **out) {
  *out = NULL;
  int d = 0;
  if (!src) return vox_errorf(VOX_ERR_INVALID, "scatter_add: src is NULL");
  VOX_TRY(check_index("scatter_add", x, dim, index, src, &d));
  VOX_TRY(vox_tensor_clone(x, out));
  vox_status st = run_scatter_add("scatter_add", *out, d, index, src);
  vox_tensor *inputs[3] = {x, index, src};
  return record_indexed("scatter_add", st, out, 3, inputs, scatter_add_backward, d, index);
}

/* ---- pairwise squared distances --------------------------------------------------------------------------- */

/* For d = |x|^2 - 2 x c^T + |c|^2 with upstream G [N, K]:
 *   dx = 2 (rowsum(G) * x - G c),  dc = 2 (colsum(G) * c - G^T x).
 * The clamp at 0 only removes rounding error of a true distance >= 0, so the gradient ignores it. */
static vox_status sqdist_grad(vox_tensor *g, bool transpose_g, vox_tensor *self, vox_tensor *other, vox_tensor **out) {
  int sum_dim = transpose_g ? 0 : 1;
  vox_tensor *s = NULL, *st_ = NULL, *scaled = NULL, *prod = NULL, *diff = NULL;
  vox_status st = vox_op_sum(g, 1, &sum_dim, true, &s); /* [N, 1] or [1, K] */
  if (st == VOX_OK && transpose_g) st = vox_op_transpose(s, 0, 1, &st_); /* [K, 1] */
  if (st == VOX_OK) st = vox_op_mul(self, transpose_g ? st_ : s, &scaled);
  if (st == VOX_OK) st = vox_op_matmul(g, other, transpose_g, false, &prod);
  if (st == VOX_OK) st = vox_op_sub(scaled, prod, &diff);
  if (st == VOX_OK) st = vox_op_affine(diff, 2.0, 0.0, out);
  vox_tensor_release(s);
  vox_tensor_release(st_);
  vox_tensor_release(scaled);
  vox_tensor_release(prod);
  vox_tensor_release(diff);
  return st;
}

static vox_status pairwise_sqdist_backward(vox_node *node, vox_tensor *g, vox_tensor **grad_in) {
  vox_tensor *x = node->saved[0], *c = node->saved[1];
  if (vox_node_needs_grad(node, 0)) VOX_TRY(sqdist_grad(g, false, x, c, &grad_in[0]));
  if (vox_node_needs_grad(node, 1)) VOX_TRY(sqdist_grad(g, true, c, x, &grad_in[1]));
  return VOX_OK;
}

vox_status vox_op_pairwise_sqdist(vox_tensor *x, vox_tensor *c, vox_tensor **out) {
  char b1[96], b2[96];
  *out = NULL;
  if (!x || !c) return vox_errorf(VOX_ERR_INVALID, "pairwise_sqdist: x or c is NULL");
  vox_tensor_describe(x, b1, sizeof b1);
  vox_tensor_describe(c, b2, sizeof b2);
  if (!vox_dtype_is_float(x->dtype) || !vox_dtype_is_float(c->dtype))
    return vox_errorf(VOX_ERR_DTYPE, "pairwise_sqdist: x %s and c %s must be f32 or bf16", b1, b2);
  if (x->ndim != 2 || c->ndim != 2 || x->shape[1] != c->shape[1])
    return vox_errorf(VOX_ERR_SHAPE, "pairwise_sqdist: x %s and c %s: expected x [N, D] and c [K, D]", b1, b2);
  if (x->device != c->device) return vox_errorf(VOX_ERR_DEVICE, "pairwise_sqdist: x and c on different devices");
  int64_t shape[2] = {x->shape[0], c->shape[0]};
  VOX_TRY(vox_tensor_empty(VOX_F32, x->device, 2, shape, out));
  vox_kernel_args a = {.n_in = 2, .n_out = 1, .in = {x, c}, .out = {*out}};
  vox_status st = vox_kernel_run("pairwise_sqdist", VOX_K_PAIRWISE_SQDIST, &a);
  vox_node *node = NULL;
  vox_tensor *inputs[2] = {x, c};
  if (st == VOX_OK) st = vox_autograd_record("pairwise_sqdist", *out, 2, inputs, pairwise_sqdist_backward, &node);
  if (st != VOX_OK) {
    vox_tensor_drop(out);
    return st;
  }
  if (node) {
    vox_node_save(node, x);
    vox_node_save(node, c);
  }
  return VOX_OK;
}
