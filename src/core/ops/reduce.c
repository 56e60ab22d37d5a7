/* Differentiable reductions: sum, mean, max (gradient to the first maximal element), and argmax/argmin.
 * Kernels always produce the keepdim shape (reduced dims of size 1); dropping dims is a free reshape here. */
#include <stdlib.h>
#include <string.h>

#include "core/ops/ops_util.h"

/* Bitmask of the dims to reduce (all when n_dims == 0), checked against x. */
static vox_status dims_mask(const char *op, const vox_tensor *x, int n_dims, const int *dims, uint32_t *mask) {
  char b1[96];
  *mask = 0;
  if (n_dims == 0) {
    *mask = x->ndim ? (uint32_t)((1u << x->ndim) - 1) : 0;
    return VOX_OK;
  }
  if (n_dims < 0 || !dims) return vox_errorf(VOX_ERR_INVALID, "%s: %d dims for %s", op, n_dims, vox_tensor_describe(x, b1, sizeof b1));
  for (int i = 0; i < n_dims; i++) {
    int d = vox_tensor_dim(x, dims[i]);
    if (d < 0)
      return vox_errorf(VOX_ERR_INDEX, "%s: dim %d out of range for %s", op, dims[i], vox_tensor_describe(x, b1, sizeof b1));
    if (*mask & (1u << d))
      return vox_errorf(VOX_ERR_INVALID, "%s: dim %d given twice for %s", op, dims[i], vox_tensor_describe(x, b1, sizeof b1));
    *mask |= 1u << d;
  }
  return VOX_OK;
}

static void keep_shape(const vox_tensor *x, uint32_t mask, int64_t *shape) {
  for (int d = 0; d < x->ndim; d++) shape[d] = (mask & (1u << d)) ? 1 : x->shape[d];
}

/* Shape with the masked dims removed. */
static int drop_shape(int ndim, const int64_t *shape, uint32_t mask, int64_t *out) {
  int n = 0;
  for (int d = 0; d < ndim; d++)
    if (!(mask & (1u << d))) out[n++] = shape[d];
  return n;
}

/* REDUCE into a new keepdim-shaped tensor of x's dtype, then (no autograd) a view without the reduced dims. */
static vox_status reduce_raw(const char *op, vox_reduce_op rop, vox_tensor *x, uint32_t mask, bool keepdim,
                             vox_tensor **out) {
  *out = NULL;
  int64_t shape[VOX_MAX_DIMS];
  keep_shape(x, mask, shape);
  vox_tensor *k = NULL;
  VOX_TRY(vox_tensor_empty(x->dtype, x->device, x->ndim, shape, &k));
  vox_reduce_params p = {.op = rop, .dims = mask};
  const vox_tensor *in[1] = {x};
  vox_status st = vox_ops_kernel1(op, VOX_K_REDUCE, &p, 1, in, k);
  if (st != VOX_OK || keepdim) {
    if (st != VOX_OK) vox_tensor_release(k);
    else *out = k;
    return st;
  }
  int64_t dropped[VOX_MAX_DIMS];
  int n = drop_shape(x->ndim, shape, mask, dropped);
  st = vox_tensor_view_reshape(k, n, dropped, out);
  vox_tensor_release(k);
  return st;
}

typedef struct reduce_ctx { uint32_t mask; double scale; } reduce_ctx;

/* g (keepdim or not) broadcast back over x's shape and scaled, materialised contiguous. */
static vox_status sum_mean_backward(vox_node *n, vox_tensor *g, vox_tensor **gi) {
  const reduce_ctx *c = (const reduce_ctx *)n->ctx;
  const vox_edge *e = &n->inputs[0];
  int64_t shape[VOX_MAX_DIMS];
  for (int d = 0; d < e->ndim; d++) shape[d] = (c->mask & (1u << d)) ? 1 : e->shape[d];
  vox_tensor *k = NULL, *ex = NULL;
  vox_status st = vox_op_reshape(g, e->ndim, shape, &k);
  if (st == VOX_OK) st = vox_tensor_view_expand(k, e->ndim, e->shape, &ex);
  if (st == VOX_OK) {
    if (c->scale == 1.0 && ex->dtype == e->dtype) st = vox_tensor_clone(ex, &gi[0]);
    else st = vox_op_affine(ex, c->scale, 0.0, &gi[0]);
  }
  vox_tensor_release(k);
  vox_tensor_release(ex);
  return st;
}

static vox_status sum_or_mean(const char *op, vox_reduce_op rop, vox_tensor *x, int n_dims, const int *dims,
                              bool keepdim, vox_tensor **out) {
  *out = NULL;
  uint32_t mask;
  VOX_TRY(dims_mask(op, x, n_dims, dims, &mask));
  if (rop == VOX_RED_MEAN) VOX_TRY(vox_ops_check_float(op, x));
  VOX_TRY(reduce_raw(op, rop, x, mask, keepdim, out));
  int64_t count = 1;
  for (int d = 0; d < x->ndim; d++)
    if (mask & (1u << d)) count *= x->shape[d];
  reduce_ctx c = {.mask = mask, .scale = rop == VOX_RED_MEAN ? (count ? 1.0 / (double)count : 0.0) : 1.0};
  if (!vox_dtype_is_float(x->dtype)) return VOX_OK;
  return vox_ops_record(op, out, 1, &x, sum_mean_backward, &c, sizeof c, NULL);
}

vox_status vox_op_sum(vox_tensor *x, int n_dims, const int *dims, bool keepdim, vox_tensor **out) {
  return sum_or_mean("sum", VOX_RED_SUM, x, n_dims, dims, keepdim, out);
}

vox_status vox_op_mean(vox_tensor *x, int n_dims, const int *dims, bool keepdim, vox_tensor **out) {
  return sum_or_mean("mean", VOX_RED_MEAN, x, n_dims, dims, keepdim, out);
}

/* ---- max / argmax / argmin ---------------------------------------------------------------------------------- */

/* i32 indices of the first extreme element along dim d, keepdim shape. */
static vox_status arg_raw(const char *op, vox_tensor *x, int d, bool is_max, vox_tensor **out) {
  int64_t shape[VOX_MAX_DIMS];
  keep_shape(x, 1u << d, shape);
  VOX_TRY(vox_tensor_empty(VOX_I32, x->device, x->ndim, shape, out));
  vox_arg_reduce_params p = {.is_max = is_max, .dim = d};
  const vox_tensor *in[1] = {x};
  vox_status st = vox_ops_kernel1(op, VOX_K_ARG_REDUCE, &p, 1, in, *out);
  if (st != VOX_OK) vox_tensor_drop(out);
  return st;
}

static vox_status check_reduce_dim(const char *op, const vox_tensor *x, int dim, int *d) {
  char b1[96];
  *d = vox_tensor_dim(x, dim);
  if (*d < 0) return vox_errorf(VOX_ERR_INDEX, "%s: dim %d out of range for %s", op, dim, vox_tensor_describe(x, b1, sizeof b1));
  if (x->shape[*d] == 0)
    return vox_errorf(VOX_ERR_SHAPE, "%s: dim %d of %s is empty", op, dim, vox_tensor_describe(x, b1, sizeof b1));
  return VOX_OK;
}

typedef struct max_ctx { int dim; } max_ctx;

/* One-hot of the saved argmax along dim (arange == index), times g broadcast back. */
static vox_status max_backward(vox_node *n, vox_tensor *g, vox_tensor **gi) {
  const max_ctx *c = (const max_ctx *)n->ctx;
  const vox_edge *e = &n->inputs[0];
  vox_tensor *idx = n->saved[0], *ar = NULL, *onehot = NULL, *gk = NULL;
  int64_t len = e->shape[c->dim], ar_shape[VOX_MAX_DIMS];
  for (int d = 0; d < e->ndim; d++) ar_shape[d] = d == c->dim ? len : 1;
  int32_t *host = malloc(sizeof(int32_t) * (size_t)len);
  if (!host) return vox_errorf(VOX_ERR_NOMEM, "max backward: out of memory");
  for (int64_t i = 0; i < len; i++) host[i] = (int32_t)i;
  vox_status st = vox_tensor_from_host(VOX_I32, g->device, e->ndim, ar_shape, host, &ar);
  free(host);
  vox_tensor *ea = NULL, *ei = NULL;
  if (st == VOX_OK) st = vox_tensor_view_expand(ar, e->ndim, e->shape, &ea);
  if (st == VOX_OK) st = vox_tensor_view_expand(idx, e->ndim, e->shape, &ei);
  if (st == VOX_OK) st = vox_tensor_empty(g->dtype, g->device, e->ndim, e->shape, &onehot);
  if (st == VOX_OK) {
    vox_binary_params p = {.op = VOX_BIN_EQ};
    const vox_tensor *in[2] = {ea, ei};
    st = vox_ops_kernel1("max backward", VOX_K_BINARY, &p, 2, in, onehot);
  }
  if (st == VOX_OK) st = vox_op_reshape(g, idx->ndim, idx->shape, &gk);
  if (st == VOX_OK) st = vox_op_mul(onehot, gk, &gi[0]);
  vox_tensor_release(ar);
  vox_tensor_release(ea);
  vox_tensor_release(ei);
  vox_tensor_release(onehot);
  vox_tensor_release(gk);
  return st;
}

vox_status vox_op_max(vox_tensor *x, int dim, bool keepdim, vox_tensor **out) {
  *out = NULL;
  int d;
  VOX_TRY(check_reduce_dim("max", x, dim, &d));
  VOX_TRY(reduce_raw("max", VOX_RED_MAX, x, 1u << d, keepdim, out));
  if (!vox_dtype_is_float(x->dtype)) return VOX_OK;
  max_ctx c = {.dim = d};
  vox_node *node = NULL;
  VOX_TRY(vox_ops_record("max", out, 1, &x, max_backward, &c, sizeof c, &node));
  if (node) {
    vox_tensor *idx = NULL;
    vox_status st = arg_raw("max", x, d, true, &idx);
    if (st != VOX_OK) {
      vox_tensor_drop(out);
      return st;
    }
    vox_node_save(node, idx);
    vox_tensor_release(idx);
  }
  return VOX_OK;
}

static vox_status arg_op(const char *op, vox_tensor *x, int dim, bool is_max, vox_tensor **out) {
  *out = NULL;
  int d;
  VOX_TRY(check_reduce_dim(op, x, dim, &d));
  vox_tensor *k = NULL;
  VOX_TRY(arg_raw(op, x, d, is_max, &k));
  int64_t dropped[VOX_MAX_DIMS];
  int n = drop_shape(x->ndim, k->shape, 1u << d, dropped);
  vox_status st = vox_tensor_view_reshape(k, n, dropped, out);
  vox_tensor_release(k);
  return st;
}

vox_status vox_op_argmax(vox_tensor *x, int dim, vox_tensor **out) { return arg_op("argmax", x, dim, true, out); }
vox_status vox_op_argmin(vox_tensor *x, int dim, vox_tensor **out) { return arg_op("argmin", x, dim, false, out); }
