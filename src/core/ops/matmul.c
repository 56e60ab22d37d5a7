/* matmul (batched, optionally transposed, broadcasting batch dims) and linear (x @ w^T + b), with backward
 * passes written as further MATMUL kernel calls; gradients of broadcast operands are reduced over batch. */
#include <string.h>

#include "core/autograd.h"
#include "core/backend.h"
#include "core/kernel_params.h"
#include "core/ops.h"

typedef struct matmul_ctx {
  bool trans_a, trans_b;
  int saved_a, saved_b; /* index in node->saved, or -1 when not needed */
} matmul_ctx;

typedef struct linear_ctx {
  int saved_x, saved_w;
} linear_ctx;

static vox_status check_float(const char *op, const char *what, const vox_tensor *t) {
  char b1[96];
  if (!t) return vox_errorf(VOX_ERR_INVALID, "%s: %s is NULL", op, what);
  if (!vox_dtype_is_float(t->dtype))
    return vox_errorf(VOX_ERR_DTYPE, "%s: %s %s must be f32 or bf16", op, what, vox_tensor_describe(t, b1, sizeof b1));
  return VOX_OK;
}

/* ---- mixed precision (vox_set_matmul_precision) ------------------------------------------------------------- */

/* Whether a product with these operands runs in bf16 under the device's precision setting. */
static bool bf16_policy(const vox_tensor *a, const vox_tensor *b) {
  return vox_matmul_precision(a->device) == VOX_PRECISION_BF16 && (a->dtype == VOX_F32 || (b && b->dtype == VOX_F32));
}
/* x as bf16 through the differentiable cast (x itself, retained, when already bf16). */
static vox_status bf16_operand(vox_tensor *x, vox_tensor **out) {
  if (x->dtype == VOX_BF16) {
    *out = vox_tensor_retain(x);
    return VOX_OK;
  }
  return vox_op_cast(x, VOX_BF16, out);
}
/* The output gradient in the dtype of the saved bf16 operands, so backward GEMMs stay on bf16 tensor cores
 * (an f32 gradient against a bf16 operand would otherwise run in f32). No autograd: inside backward. */
static vox_status grad_as(vox_tensor *g, vox_dtype dtype, vox_tensor **out) {
  if (g->dtype == dtype || dtype != VOX_BF16) {
    *out = vox_tensor_retain(g);
    return VOX_OK;
  }
  return vox_tensor_to(g, g->device, dtype, out);
}

/* Broadcast batch shape of a [..., r, c] and b [..., r, c] (the last two dims excluded). */
static vox_status batch_shape(const char *op, const vox_tensor *a, const vox_tensor *b, int *nb, int64_t *shape) {
  char b1[96], b2[96];
  int na = a->ndim - 2, nbb = b->ndim - 2, n = na > nbb ? na : nbb;
  for (int i = 0; i < n; i++) {
    int ia = i - (n - na), ib = i - (n - nbb);
    int64_t sa = ia >= 0 ? a->shape[ia] : 1, sb = ib >= 0 ? b->shape[ib] : 1;
    if (sa != sb && sa != 1 && sb != 1)
      return vox_errorf(VOX_ERR_SHAPE, "%s: batch dims of %s and %s do not broadcast (dim %d: %lld vs %lld)", op,
                        vox_tensor_describe(a, b1, sizeof b1), vox_tensor_describe(b, b2, sizeof b2), i,
                        (long long)sa, (long long)sb);
    shape[i] = sa == 1 ? sb : sa;
  }
  *nb = n;
  return VOX_OK;
}

/* A view of t [..., r, c] with the batch shape `bshape` (stride 0 on broadcast dims). */
static vox_status batch_view(const vox_tensor *t, int nb, const int64_t *bshape, vox_tensor **out) {
  int64_t shape[VOX_MAX_DIMS], strides[VOX_MAX_DIMS];
  int lead = nb - (t->ndim - 2);
  for (int d = 0; d < nb; d++) {
    int i = d - lead;
    shape[d] = bshape[d];
    strides[d] = (i < 0 || t->shape[i] != bshape[d]) ? 0 : t->strides[i];
  }
  for (int k = 0; k < 2; k++) {
    shape[nb + k] = t->shape[t->ndim - 2 + k];
    strides[nb + k] = t->strides[t->ndim - 2 + k];
  }
  return vox_tensor_view(t, nb + 2, shape, strides, t->offset, out);
}

/* out (new, dtype `dtype`) = op(a) @ op(b) over the broadcast batch shape; no autograd. Shapes checked. */
static vox_status gemm_new(const char *op, vox_tensor *a, vox_tensor *b, bool ta, bool tb, vox_dtype dtype,
                           vox_tensor **out) {
  int nb;
  int64_t shape[VOX_MAX_DIMS];
  VOX_TRY(batch_shape(op, a, b, &nb, shape));
  shape[nb] = ta ? a->shape[a->ndim - 1] : a->shape[a->ndim - 2];
  shape[nb + 1] = tb ? b->shape[b->ndim - 2] : b->shape[b->ndim - 1];
  vox_tensor *av = NULL, *bv = NULL;
  vox_status st = batch_view(a, nb, shape, &av);
  if (st == VOX_OK) st = batch_view(b, nb, shape, &bv);
  if (st == VOX_OK) st = vox_tensor_empty(dtype, a->device, nb + 2, shape, out);
  if (st == VOX_OK) {
    vox_matmul_params p = {.trans_a = ta, .trans_b = tb, .alpha = 1.0f, .beta = 0.0f};
    vox_kernel_args args = {.n_in = 2, .n_out = 1, .in = {av, bv}, .out = {*out}, .params = &p};
    st = vox_kernel_run(op, VOX_K_MATMUL, &args);
    if (st != VOX_OK) vox_tensor_drop(out);
  }
  vox_tensor_release(av);
  vox_tensor_release(bv);
  return st;
}

/* t viewed as [rows, cols] with cols its last dim: a view when the strides allow, else a contiguous copy. */
static vox_status as_rows(vox_tensor *t, vox_tensor **out) {
  int64_t shape[2] = {1, t->ndim ? t->shape[t->ndim - 1] : 1};
  for (int d = 0; d < t->ndim - 1; d++) shape[0] *= t->shape[d];
  if (vox_tensor_view_reshape(t, 2, shape, out) == VOX_OK) return VOX_OK;
  vox_tensor *dense = NULL;
  VOX_TRY(vox_tensor_clone(t, &dense));
  vox_status st = vox_tensor_view_reshape(dense, 2, shape, out);
  vox_tensor_release(dense);
  return st;
}

/* op(x) @ op(y) summed down to the target shape (the gradient of an operand whose batch dims were broadcast).
 * When the target has no batch extent and x is used transposed, the batch folds into the GEMM's inner dim:
 * sum_b x_b^T @ y_b = X^T @ Y with X, Y the row-stacked batches, one GEMM instead of a loop and a reduction. */
static vox_status grad_gemm(vox_tensor *x, vox_tensor *y, bool tx, bool ty, int ndim, const int64_t *shape,
                            vox_dtype dtype, vox_tensor **out) {
  *out = NULL;
  int nb;
  int64_t bshape[VOX_MAX_DIMS];
  VOX_TRY(batch_shape("matmul backward", x, y, &nb, bshape));
  int tnb = ndim - 2;
  bool same = tnb == nb;
  int64_t tnumel = 1, bnumel = 1;
  for (int d = 0; d < tnb; d++) tnumel *= shape[d];
  for (int d = 0; d < nb; d++) {
    bnumel *= bshape[d];
    if (same && shape[d] != bshape[d]) same = false;
  }
  if (same) return gemm_new("matmul backward", x, y, tx, ty, dtype, out);

  bool x_full = x->ndim - 2 == nb, y_full = y->ndim - 2 == nb;
  for (int d = 0; d < nb; d++) {
    x_full = x_full && x->shape[d] == bshape[d];
    y_full = y_full && y->shape[d] == bshape[d];
  }
  if (tnumel == 1 && tx && !ty && x_full && y_full && bnumel > 0) {
    vox_tensor *x2 = NULL, *y2 = NULL, *r = NULL;
    vox_status st = as_rows(x, &x2);
    if (st == VOX_OK) st = as_rows(y, &y2);
    if (st == VOX_OK) st = gemm_new("matmul backward", x2, y2, true, false, dtype, &r);
    if (st == VOX_OK) st = vox_tensor_view_reshape(r, ndim, shape, out);
    vox_tensor_release(x2);
    vox_tensor_release(y2);
    vox_tensor_release(r);
    return st;
  }
  vox_tensor *full = NULL;
  VOX_TRY(gemm_new("matmul backward", x, y, tx, ty, dtype, &full));
  vox_status st = vox_op_sum_to(full, ndim, shape, out);
  vox_tensor_release(full);
  return st;
}

static vox_status matmul_backward(vox_node *node, vox_tensor *g0, vox_tensor **grad_in) {
  const matmul_ctx *c = (const matmul_ctx *)node->ctx;
  bool ta = c->trans_a, tb = c->trans_b;
  const vox_edge *ea = &node->inputs[0], *eb = &node->inputs[1];
  vox_tensor *g = NULL;
  VOX_TRY(grad_as(g0, ea->dtype == VOX_BF16 && eb->dtype == VOX_BF16 ? VOX_BF16 : g0->dtype, &g));
  vox_status st = VOX_OK;
  if (vox_node_needs_grad(node, 0)) {
    vox_tensor *b = node->saved[c->saved_b];
    /* C = op(A) op(B): d op(A) = dC op(B)^T; stored A^T gets the transpose of that, op(B) dC^T. */
    if (!ta) st = grad_gemm(g, b, false, !tb, ea->ndim, ea->shape, ea->dtype, &grad_in[0]);
    else st = grad_gemm(b, g, tb, true, ea->ndim, ea->shape, ea->dtype, &grad_in[0]);
  }
  if (st == VOX_OK && vox_node_needs_grad(node, 1)) {
    vox_tensor *a = node->saved[c->saved_a];
    /* d op(B) = op(A)^T dC; stored B^T gets dC^T op(A). */
    if (!tb) st = grad_gemm(a, g, !ta, false, eb->ndim, eb->shape, eb->dtype, &grad_in[1]);
    else st = grad_gemm(g, a, true, ta, eb->ndim, eb->shape, eb->dtype, &grad_in[1]);
  }
  vox_tensor_release(g);
  return st;
}

static vox_status matmul_record(vox_tensor *a, vox_tensor *b, bool trans_a, bool trans_b, vox_dtype dtype,
                                vox_tensor **out);

vox_status vox_op_matmul(vox_tensor *a, vox_tensor *b, bool trans_a, bool trans_b, vox_tensor **out) {
  char b1[96], b2[96];
  *out = NULL;
  VOX_TRY(check_float("matmul", "a", a));
  VOX_TRY(check_float("matmul", "b", b));
  if (a->ndim < 2 || b->ndim < 2)
    return vox_errorf(VOX_ERR_SHAPE, "matmul: %s @ %s: both operands need at least 2 dims",
                      vox_tensor_describe(a, b1, sizeof b1), vox_tensor_describe(b, b2, sizeof b2));
  if (a->device != b->device)
    return vox_errorf(VOX_ERR_DEVICE, "matmul: %s on %s @ %s on %s", vox_tensor_describe(a, b1, sizeof b1),
                      vox_device_name(a->device), vox_tensor_describe(b, b2, sizeof b2), vox_device_name(b->device));
  int64_t ka = trans_a ? a->shape[a->ndim - 2] : a->shape[a->ndim - 1];
  int64_t kb = trans_b ? b->shape[b->ndim - 1] : b->shape[b->ndim - 2];
  if (ka != kb)
    return vox_errorf(VOX_ERR_SHAPE, "matmul: %s%s @ %s%s: inner dims %lld != %lld",
                      vox_tensor_describe(a, b1, sizeof b1), trans_a ? "^T" : "",
                      vox_tensor_describe(b, b2, sizeof b2), trans_b ? "^T" : "", (long long)ka, (long long)kb);
  if (bf16_policy(a, b)) { /* mixed precision: bf16 operands, f32 result (core/backend.h) */
    vox_tensor *a16 = NULL, *b16 = NULL;
    vox_status st = bf16_operand(a, &a16);
    if (st == VOX_OK) st = bf16_operand(b, &b16);
    if (st == VOX_OK) st = matmul_record(a16, b16, trans_a, trans_b, VOX_F32, out);
    vox_tensor_release(a16);
    vox_tensor_release(b16);
    return st;
  }
  return matmul_record(a, b, trans_a, trans_b, a->dtype == b->dtype ? a->dtype : VOX_F32, out);
}

static vox_status matmul_record(vox_tensor *a, vox_tensor *b, bool trans_a, bool trans_b, vox_dtype dtype,
                                vox_tensor **out) {
  VOX_TRY(gemm_new("matmul", a, b, trans_a, trans_b, dtype, out));
  vox_tensor *inputs[2] = {a, b};
  vox_node *node = NULL;
  vox_status st = vox_autograd_record("matmul", *out, 2, inputs, matmul_backward, &node);
  if (st != VOX_OK) {
    vox_tensor_drop(out);
    return st;
  }
  if (node) {
    matmul_ctx c = {.trans_a = trans_a, .trans_b = trans_b, .saved_a = -1, .saved_b = -1};
    if (vox_node_needs_grad(node, 1)) c.saved_a = vox_node_save(node, a);
    if (vox_node_needs_grad(node, 0)) c.saved_b = vox_node_save(node, b);
    memcpy(node->ctx, &c, sizeof c);
  }
  return VOX_OK;
}

/* ---- linear ----------------------------------------------------------------------------------------------- */

static vox_status run_gemm2(const char *op, const vox_tensor *a, const vox_tensor *b, bool ta, bool tb, float beta,
                            vox_tensor *out) {
  vox_matmul_params p = {.trans_a = ta, .trans_b = tb, .alpha = 1.0f, .beta = beta};
  vox_kernel_args args = {.n_in = 2, .n_out = 1, .in = {a, b}, .out = {out}, .params = &p};
  return vox_kernel_run(op, VOX_K_MATMUL, &args);
}

static vox_status linear_backward(vox_node *node, vox_tensor *g0, vox_tensor **grad_in) {
  const linear_ctx *c = (const linear_ctx *)node->ctx;
  const vox_edge *ex = &node->inputs[0], *ew = &node->inputs[1], *eb = &node->inputs[2];
  vox_tensor *g = NULL, *g2 = NULL, *x2 = NULL, *view = NULL, *ones = NULL;
  VOX_TRY(grad_as(g0, ex->dtype == VOX_BF16 && ew->dtype == VOX_BF16 ? VOX_BF16 : g0->dtype, &g));
  vox_status st = as_rows(g, &g2); /* [R, out] */
  int64_t rows = g2 ? g2->shape[0] : 0, n_out = g2 ? g2->shape[1] : 0;
  if (st == VOX_OK && vox_node_needs_grad(node, 0)) {
    vox_tensor *w = node->saved[c->saved_w];
    int64_t shape[2] = {rows, w->shape[1]};
    st = vox_tensor_empty(ex->dtype, g->device, ex->ndim, ex->shape, &grad_in[0]);
    if (st == VOX_OK) st = vox_tensor_view_reshape(grad_in[0], 2, shape, &view);
    if (st == VOX_OK) st = run_gemm2("linear backward", g2, w, false, false, 0.0f, view);
    vox_tensor_drop(&view);
  }
  if (st == VOX_OK && vox_node_needs_grad(node, 1)) {
    /* dW = dY^T X over all leading dims at once: one [out, R] @ [R, in] GEMM. */
    st = as_rows(node->saved[c->saved_x], &x2);
    if (st == VOX_OK) st = vox_tensor_empty(ew->dtype, g->device, 2, ew->shape, &grad_in[1]);
    if (st == VOX_OK) st = run_gemm2("linear backward", g2, x2, true, false, 0.0f, grad_in[1]);
  }
  if (st == VOX_OK && vox_node_needs_grad(node, 2)) {
    /* db = 1^T dY, a [1, R] @ [R, out] GEMM (column sums on the same BLAS path). */
    int64_t oshape[2] = {1, rows}, bshape[2] = {1, n_out};
    st = vox_tensor_full(g2->dtype, g->device, 2, oshape, 1.0, &ones); /* bf16 ones keep a bf16 GEMM */
    if (st == VOX_OK) st = vox_tensor_empty(eb->dtype, g->device, 1, eb->shape, &grad_in[2]);
    if (st == VOX_OK) st = vox_tensor_view_reshape(grad_in[2], 2, bshape, &view);
    if (st == VOX_OK) st = run_gemm2("linear backward", ones, g2, false, false, 0.0f, view);
  }
  vox_tensor_release(g);
  vox_tensor_release(g2);
  vox_tensor_release(x2);
  vox_tensor_release(view);
  vox_tensor_release(ones);
  return st;
}

static vox_status linear_record(vox_tensor *x, vox_tensor *w, vox_tensor *b, vox_dtype dtype, vox_tensor **out);

vox_status vox_op_linear(vox_tensor *x, vox_tensor *w, vox_tensor *b, vox_tensor **out) {
  char b1[96], b2[96], b3[96];
  *out = NULL;
  VOX_TRY(check_float("linear", "x", x));
  VOX_TRY(check_float("linear", "weight", w));
  if (b) VOX_TRY(check_float("linear", "bias", b));
  if (x->ndim < 1 || w->ndim != 2 || x->shape[x->ndim - 1] != w->shape[1])
    return vox_errorf(VOX_ERR_SHAPE, "linear: x %s with weight %s: expected x [..., %lld] and weight [out, in]",
                      vox_tensor_describe(x, b1, sizeof b1), vox_tensor_describe(w, b2, sizeof b2),
                      (long long)(w->ndim == 2 ? w->shape[1] : -1));
  if (b && (b->ndim != 1 || b->shape[0] != w->shape[0]))
    return vox_errorf(VOX_ERR_SHAPE, "linear: bias %s does not match weight %s (expected [%lld])",
                      vox_tensor_describe(b, b3, sizeof b3), vox_tensor_describe(w, b2, sizeof b2),
                      (long long)w->shape[0]);
  if (w->device != x->device || (b && b->device != x->device))
    return vox_errorf(VOX_ERR_DEVICE, "linear: x, weight and bias must be on one device");
  if (bf16_policy(x, w)) { /* mixed precision: bf16 x and weight, f32 result (core/backend.h) */
    vox_tensor *x16 = NULL, *w16 = NULL;
    vox_status st = bf16_operand(x, &x16);
    if (st == VOX_OK) st = bf16_operand(w, &w16);
    if (st == VOX_OK) st = linear_record(x16, w16, b, VOX_F32, out);
    vox_tensor_release(x16);
    vox_tensor_release(w16);
    return st;
  }
  return linear_record(x, w, b, x->dtype, out);
}

/* y (dtype `dtype`) = x @ w^T + b with the autograd node; operands already checked. */
static vox_status linear_record(vox_tensor *x, vox_tensor *w, vox_tensor *b, vox_dtype dtype, vox_tensor **out) {
  int64_t shape[VOX_MAX_DIMS];
  memcpy(shape, x->shape, sizeof shape);
  shape[x->ndim - 1] = w->shape[0];
  vox_tensor *x2 = NULL, *y2 = NULL, *bias = NULL;
  vox_status st = as_rows(x, &x2);
  if (st == VOX_OK) st = vox_tensor_empty(dtype, x->device, x->ndim, shape, out);
  int64_t shape2[2] = {x2 ? x2->shape[0] : 0, w->shape[0]};
  if (st == VOX_OK) st = vox_tensor_view_reshape(*out, 2, shape2, &y2);
  /* The bias is broadcast into the output first and the GEMM accumulates onto it (beta = 1). */
  if (st == VOX_OK && b) st = vox_tensor_view_expand(b, 2, shape2, &bias);
  if (st == VOX_OK && b) st = vox_tensor_copy_(y2, bias);
  if (st == VOX_OK) st = run_gemm2("linear", x2, w, false, true, b ? 1.0f : 0.0f, y2);
  vox_tensor_release(x2);
  vox_tensor_release(y2);
  vox_tensor_release(bias);
  vox_node *node = NULL;
  vox_tensor *inputs[3] = {x, w, b};
  if (st == VOX_OK) st = vox_autograd_record("linear", *out, 3, inputs, linear_backward, &node);
  if (st != VOX_OK) {
    vox_tensor_drop(out);
    return st;
  }
  if (node) {
    linear_ctx c = {.saved_x = -1, .saved_w = -1};
    if (vox_node_needs_grad(node, 1)) c.saved_x = vox_node_save(node, x);
    if (vox_node_needs_grad(node, 0)) c.saved_w = vox_node_save(node, w);
    memcpy(node->ctx, &c, sizeof c);
  }
  return VOX_OK;
}
