/* Differentiable shape ops: reshape, permute/transpose, slice/split, expand, concat, contiguous, cast, sum_to.
 * Views share storage with their input (raw views from core/tensor.h) and record a node whose backward maps
 * the gradient back onto the input's shape. */
#include <stdlib.h>
#include <string.h>

#include "core/ops/ops_util.h"

/* ---- reshape ----------------------------------------------------------------------------------------------- */

static vox_status reshape_backward(vox_node *n, vox_tensor *g, vox_tensor **gi) {
  return vox_op_reshape(g, n->inputs[0].ndim, n->inputs[0].shape, &gi[0]);
}

vox_status vox_op_reshape(vox_tensor *x, int ndim, const int64_t *shape, vox_tensor **out) {
  *out = NULL;
  vox_status st = vox_tensor_view_reshape(x, ndim, shape, out);
  if (st == VOX_ERR_STATE) { /* strides do not allow a view: reshape a contiguous copy */
    vox_tensor *c = NULL;
    VOX_TRY(vox_tensor_clone(x, &c));
    st = vox_tensor_view_reshape(c, ndim, shape, out);
    vox_tensor_release(c);
  }
  if (st != VOX_OK) {
    char b1[96], b2[160];
    return vox_error_context(st, "reshape %s to %s: ", vox_tensor_describe(x, b1, sizeof b1),
                             vox_ops_shape_str(ndim, shape, b2, sizeof b2));
  }
  return vox_ops_record("reshape", out, 1, &x, reshape_backward, NULL, 0, NULL);
}

/* ---- permute / transpose ------------------------------------------------------------------------------------ */

typedef struct permute_ctx { int perm[VOX_MAX_DIMS]; } permute_ctx;

static vox_status permute_backward(vox_node *n, vox_tensor *g, vox_tensor **gi) {
  const permute_ctx *c = (const permute_ctx *)n->ctx;
  int inv[VOX_MAX_DIMS];
  for (int i = 0; i < g->ndim; i++) inv[c->perm[i]] = i;
  return vox_op_permute(g, inv, &gi[0]);
}

vox_status vox_op_permute(vox_tensor *x, const int *perm, vox_tensor **out) {
  *out = NULL;
  permute_ctx c = {{0}};
  vox_status st = vox_tensor_view_permute(x, perm, out);
  if (st != VOX_OK) {
    char b1[96];
    return vox_error_context(st, "permute %s: ", vox_tensor_describe(x, b1, sizeof b1));
  }
  for (int i = 0; i < x->ndim; i++) c.perm[i] = perm[i] < 0 ? perm[i] + x->ndim : perm[i];
  return vox_ops_record("permute", out, 1, &x, permute_backward, &c, sizeof c, NULL);
}

vox_status vox_op_transpose(vox_tensor *x, int dim0, int dim1, vox_tensor **out) {
  char b1[96];
  *out = NULL;
  int d0 = vox_tensor_dim(x, dim0), d1 = vox_tensor_dim(x, dim1);
  if (d0 < 0 || d1 < 0)
    return vox_errorf(VOX_ERR_INDEX, "transpose: dims (%d, %d) out of range for %s", dim0, dim1,
                      vox_tensor_describe(x, b1, sizeof b1));
  int perm[VOX_MAX_DIMS];
  for (int i = 0; i < x->ndim; i++) perm[i] = i;
  perm[d0] = d1;
  perm[d1] = d0;
  return vox_op_permute(x, perm, out);
}

/* ---- slice / split ------------------------------------------------------------------------------------------ */

typedef struct slice_ctx { int dim; int64_t start, end, step; } slice_ctx;

/* The gradient lands in a zero tensor of the input's shape, through a slice view of it. */
static vox_status slice_backward(vox_node *n, vox_tensor *g, vox_tensor **gi) {
  const slice_ctx *c = (const slice_ctx *)n->ctx;
  vox_tensor *z = NULL, *view = NULL;
  VOX_TRY(vox_tensor_zeros(g->dtype, g->device, n->inputs[0].ndim, n->inputs[0].shape, &z));
  vox_status st = vox_tensor_view_slice(z, c->dim, c->start, c->end, c->step, &view);
  if (st == VOX_OK) st = vox_tensor_copy_(view, g);
  vox_tensor_release(view);
  if (st != VOX_OK) {
    vox_tensor_release(z);
    return st;
  }
  gi[0] = z;
  return VOX_OK;
}

vox_status vox_op_slice(vox_tensor *x, int dim, int64_t start, int64_t end, int64_t step, vox_tensor **out) {
  char b1[96];
  *out = NULL;
  int d = vox_tensor_dim(x, dim);
  if (d < 0)
    return vox_errorf(VOX_ERR_INDEX, "slice: dim %d out of range for %s", dim, vox_tensor_describe(x, b1, sizeof b1));
  vox_status st = vox_tensor_view_slice(x, d, start, end, step, out);
  if (st != VOX_OK) return vox_error_context(st, "slice %s: ", vox_tensor_describe(x, b1, sizeof b1));
  /* Normalised bounds, so backward's slice is exactly the forward's. */
  int64_t n = x->shape[d];
  if (start < 0) start += n;
  if (start < 0) start = 0;
  if (start > n) start = n;
  slice_ctx c = {.dim = d, .start = start, .end = start + (*out)->shape[d] * step, .step = step};
  if (c.end > n) c.end = n;
  return vox_ops_record("slice", out, 1, &x, slice_backward, &c, sizeof c, NULL);
}

vox_status vox_op_split(vox_tensor *x, int dim, int n, const int64_t *sizes, vox_tensor **outs) {
  char b1[96];
  for (int i = 0; i < n; i++) outs[i] = NULL;
  int d = vox_tensor_dim(x, dim);
  if (d < 0)
    return vox_errorf(VOX_ERR_INDEX, "split: dim %d out of range for %s", dim, vox_tensor_describe(x, b1, sizeof b1));
  if (n <= 0 || !sizes) return vox_errorf(VOX_ERR_INVALID, "split: %d parts of %s", n, vox_tensor_describe(x, b1, sizeof b1));
  int64_t total = 0;
  for (int i = 0; i < n; i++) {
    if (sizes[i] < 0)
      return vox_errorf(VOX_ERR_SHAPE, "split: part %d of %s has negative size %lld", i,
                        vox_tensor_describe(x, b1, sizeof b1), (long long)sizes[i]);
    total += sizes[i];
  }
  if (total != x->shape[d])
    return vox_errorf(VOX_ERR_SHAPE, "split: sizes sum to %lld but dim %d of %s is %lld", (long long)total, d,
                      vox_tensor_describe(x, b1, sizeof b1), (long long)x->shape[d]);
  int64_t start = 0;
  for (int i = 0; i < n; i++) {
    vox_status st = vox_op_slice(x, d, start, start + sizes[i], 1, &outs[i]);
    if (st != VOX_OK) {
      for (int j = 0; j < i; j++) vox_tensor_drop(&outs[j]);
      return st;
    }
    start += sizes[i];
  }
  return VOX_OK;
}

/* ---- expand ------------------------------------------------------------------------------------------------- */

static vox_status expand_backward(vox_node *n, vox_tensor *g, vox_tensor **gi) {
  return vox_op_sum_to(g, n->inputs[0].ndim, n->inputs[0].shape, &gi[0]);
}

vox_status vox_op_expand(vox_tensor *x, int ndim, const int64_t *shape, vox_tensor **out) {
  char b1[96], b2[160];
  *out = NULL;
  if (ndim < x->ndim || ndim > VOX_MAX_DIMS)
    return vox_errorf(VOX_ERR_SHAPE, "expand: %s to %s", vox_tensor_describe(x, b1, sizeof b1),
                      vox_ops_shape_str(ndim, shape, b2, sizeof b2));
  int64_t target[VOX_MAX_DIMS] = {0};
  for (int i = 0; i < ndim; i++) {
    int xi = i - (ndim - x->ndim);
    target[i] = shape[i] == -1 && xi >= 0 ? x->shape[xi] : shape[i];
  }
  vox_status st = vox_tensor_view_expand(x, ndim, target, out);
  if (st != VOX_OK)
    return vox_error_context(st, "expand %s to %s: ", vox_tensor_describe(x, b1, sizeof b1),
                             vox_ops_shape_str(ndim, shape, b2, sizeof b2));
  return vox_ops_record("expand", out, 1, &x, expand_backward, NULL, 0, NULL);
}

/* ---- concat ------------------------------------------------------------------------------------------------- */

typedef struct concat_ctx { int dim; int64_t sizes[VOX_NODE_MAX_INPUTS]; } concat_ctx;

static vox_status concat_backward(vox_node *n, vox_tensor *g, vox_tensor **gi) {
  const concat_ctx *c = (const concat_ctx *)n->ctx;
  int64_t start = 0;
  for (int i = 0; i < n->n_inputs; i++) {
    if (vox_node_needs_grad(n, i)) VOX_TRY(vox_tensor_view_slice(g, c->dim, start, start + c->sizes[i], 1, &gi[i]));
    start += c->sizes[i];
  }
  return VOX_OK;
}

static vox_status concat_flat(int n, vox_tensor *const *xs, int dim, vox_tensor **out) {
  char b1[96], b2[96];
  const vox_tensor *x0 = xs[0];
  int d = vox_tensor_dim(x0, dim);
  if (d < 0) return vox_errorf(VOX_ERR_INDEX, "concat: dim %d out of range for %s", dim, vox_tensor_describe(x0, b1, sizeof b1));
  int64_t shape[VOX_MAX_DIMS];
  memcpy(shape, x0->shape, sizeof shape);
  shape[d] = 0;
  for (int i = 0; i < n; i++) {
    const vox_tensor *x = xs[i];
    VOX_TRY(vox_ops_check_pair("concat", x0, x));
    bool ok = x->ndim == x0->ndim;
    for (int k = 0; ok && k < x->ndim; k++) ok = k == d || x->shape[k] == x0->shape[k];
    if (!ok)
      return vox_errorf(VOX_ERR_SHAPE, "concat: along dim %d, %s (input %d) does not match %s (input 0)", d,
                        vox_tensor_describe(x, b1, sizeof b1), i, vox_tensor_describe(x0, b2, sizeof b2));
    shape[d] += x->shape[d];
  }
  VOX_TRY(vox_tensor_empty(x0->dtype, x0->device, x0->ndim, shape, out));
  int64_t start = 0;
  for (int i = 0; i < n; i++) {
    vox_tensor *view = NULL;
    vox_status st = vox_tensor_view_slice(*out, d, start, start + xs[i]->shape[d], 1, &view);
    if (st == VOX_OK) st = vox_tensor_copy_(view, xs[i]);
    vox_tensor_release(view);
    if (st != VOX_OK) {
      vox_tensor_drop(out);
      return vox_error_context(st, "concat: ");
    }
    start += xs[i]->shape[d];
  }
  concat_ctx c = {.dim = d};
  for (int i = 0; i < n && i < VOX_NODE_MAX_INPUTS; i++) c.sizes[i] = xs[i]->shape[d];
  return vox_ops_record("concat", out, n, xs, concat_backward, &c, sizeof c, NULL);
}

vox_status vox_op_concat(int n, vox_tensor *const *xs, int dim, vox_tensor **out) {
  *out = NULL;
  if (n <= 0 || !xs) return vox_errorf(VOX_ERR_INVALID, "concat: no inputs");
  for (int i = 0; i < n; i++)
    if (!xs[i]) return vox_errorf(VOX_ERR_INVALID, "concat: input %d is NULL", i);
  if (n <= VOX_NODE_MAX_INPUTS) return concat_flat(n, xs, dim, out);
  /* A node holds at most VOX_NODE_MAX_INPUTS inputs: concatenate groups, then the groups. */
  int groups = (n + VOX_NODE_MAX_INPUTS - 1) / VOX_NODE_MAX_INPUTS;
  vox_tensor **parts = calloc((size_t)groups, sizeof *parts);
  if (!parts) return vox_errorf(VOX_ERR_NOMEM, "concat: out of memory");
  vox_status st = VOX_OK;
  for (int g = 0; g < groups && st == VOX_OK; g++) {
    int first = g * VOX_NODE_MAX_INPUTS, count = n - first < VOX_NODE_MAX_INPUTS ? n - first : VOX_NODE_MAX_INPUTS;
    st = concat_flat(count, xs + first, dim, &parts[g]);
  }
  if (st == VOX_OK) st = vox_op_concat(groups, parts, dim, out);
  for (int g = 0; g < groups; g++) vox_tensor_release(parts[g]);
  free(parts);
  return st;
}

/* ---- contiguous / cast -------------------------------------------------------------------------------------- */

static vox_status identity_backward(vox_node *n, vox_tensor *g, vox_tensor **gi) {
  gi[0] = vox_tensor_retain(g);
  return VOX_OK;
}

vox_status vox_op_contiguous(vox_tensor *x, vox_tensor **out) {
  *out = NULL;
  if (vox_tensor_is_contiguous(x)) {
    *out = vox_tensor_retain(x);
    return VOX_OK;
  }
  VOX_TRY(vox_tensor_clone(x, out));
  return vox_ops_record("contiguous", out, 1, &x, identity_backward, NULL, 0, NULL);
}

static vox_status cast_backward(vox_node *n, vox_tensor *g, vox_tensor **gi) {
  return vox_op_cast(g, n->inputs[0].dtype, &gi[0]);
}

vox_status vox_op_cast(vox_tensor *x, vox_dtype dtype, vox_tensor **out) {
  *out = NULL;
  if (dtype < 0 || dtype >= VOX_DTYPE_COUNT) return vox_errorf(VOX_ERR_DTYPE, "cast: unknown dtype %d", (int)dtype);
  if (x->dtype == dtype) {
    *out = vox_tensor_retain(x);
    return VOX_OK;
  }
  VOX_TRY(vox_tensor_to(x, x->device, dtype, out));
  /* Integer results carry no gradient. */
  if (!vox_dtype_is_float(dtype) || !vox_dtype_is_float(x->dtype)) return VOX_OK;
  return vox_ops_record("cast", out, 1, &x, cast_backward, NULL, 0, NULL);
}

/* ---- sum_to: a keepdim sum then a reshape, so its autograd comes from those two ops ----------------------- */

vox_status vox_op_sum_to(vox_tensor *x, int ndim, const int64_t *shape, vox_tensor **out) {
  char b1[96], b2[160];
  *out = NULL;
  int lead = x->ndim - ndim;
  bool ok = lead >= 0;
  int dims[VOX_MAX_DIMS], n_dims = 0;
  for (int i = 0; i < lead; i++) dims[n_dims++] = i;
  for (int i = 0; ok && i < ndim; i++) {
    int64_t xs = x->shape[lead + i];
    if (shape[i] == xs) continue;
    if (shape[i] == 1) dims[n_dims++] = lead + i;
    else ok = false;
  }
  if (!ok)
    return vox_errorf(VOX_ERR_SHAPE, "sum_to: %s cannot be reduced to %s (not a broadcast of it)",
                      vox_tensor_describe(x, b1, sizeof b1), vox_ops_shape_str(ndim, shape, b2, sizeof b2));
  if (n_dims == 0) {
    *out = vox_tensor_retain(x);
    return VOX_OK;
  }
  vox_tensor *s = NULL;
  VOX_TRY(vox_op_sum(x, n_dims, dims, true, &s));
  vox_status st = vox_op_reshape(s, ndim, shape, out);
  vox_tensor_release(s);
  return st;
}
