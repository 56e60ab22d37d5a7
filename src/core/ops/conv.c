/* conv1d and conv_transpose1d: checks, shape inference and autograd. conv_transpose1d's forward is conv1d's
 * backward-data kernel and its backward uses CONV1D / BACKWARD_WEIGHT, so three kernels serve both ops. The
 * bias is added with the BINARY kernel and its gradient is a REDUCE sum over batch and length. */
#include <string.h>

#include "core/autograd.h"
#include "core/backend.h"
#include "core/kernel_params.h"
#include "core/ops.h"

typedef struct conv_ctx {
  vox_conv1d_params p;
  bool transpose;
} conv_ctx;

static vox_status run_conv(const char *op, vox_kernel_id id, vox_tensor *in0, vox_tensor *in1, vox_tensor *out,
                           const vox_conv1d_params *p) {
  vox_kernel_args a = {.n_in = 2, .n_out = 1, .in = {in0, in1}, .out = {out}, .params = p};
  return vox_kernel_run(op, id, &a);
}

/* out = y + b[None, :, None] (new tensor). */
static vox_status add_bias(const char *op, vox_tensor *y, vox_tensor *b, vox_tensor **out) {
  vox_tensor *bv = NULL, *be = NULL;
  vox_status st = vox_tensor_view_reshape(b, 3, (int64_t[]){1, b->shape[0], 1}, &bv);
  if (st == VOX_OK) st = vox_tensor_view_expand(bv, 3, y->shape, &be);
  if (st == VOX_OK) st = vox_tensor_empty(y->dtype, y->device, 3, y->shape, out);
  if (st == VOX_OK) {
    vox_binary_params bp = {.op = VOX_BIN_ADD};
    vox_kernel_args a = {.n_in = 2, .n_out = 1, .in = {y, be}, .out = {*out}, .params = &bp};
    st = vox_kernel_run(op, VOX_K_BINARY, &a);
    if (st != VOX_OK) vox_tensor_drop(out);
  }
  vox_tensor_release(bv);
  vox_tensor_release(be);
  return st;
}

/* db = sum of dy [B, C, L] over batch and length, shaped [C]. */
static vox_status bias_grad(const char *op, vox_tensor *dy, vox_tensor **db) {
  vox_tensor *r = NULL;
  vox_status st = vox_tensor_empty(dy->dtype, dy->device, 3, (int64_t[]){1, dy->shape[1], 1}, &r);
  if (st == VOX_OK) {
    vox_reduce_params rp = {.op = VOX_RED_SUM, .dims = (1u << 0) | (1u << 2)};
    vox_kernel_args a = {.n_in = 1, .n_out = 1, .in = {dy}, .out = {r}, .params = &rp};
    st = vox_kernel_run(op, VOX_K_REDUCE, &a);
  }
  if (st == VOX_OK) st = vox_tensor_view_reshape(r, 1, (int64_t[]){dy->shape[1]}, db);
  vox_tensor_release(r);
  return st;
}

/* saved: x, w. conv1d: dx = BACKWARD_DATA(dy, w), dw = BACKWARD_WEIGHT(x, dy).
 * conv_transpose1d (y = BACKWARD_DATA(x, w)): dx = CONV1D(dy, w), dw = BACKWARD_WEIGHT(dy, x). */
static vox_status conv_backward(vox_node *node, vox_tensor *grad_out, vox_tensor **grad_in) {
  conv_ctx c;
  memcpy(&c, node->ctx, sizeof c);
  const char *op = c.transpose ? "conv_transpose1d backward" : "conv1d backward";
  vox_tensor *x = node->saved[0], *w = node->saved[1];
  vox_tensor *dy = NULL, *dx = NULL, *dw = NULL, *db = NULL;
  vox_status st = vox_tensor_contiguous(grad_out, &dy);
  if (st == VOX_OK && vox_node_needs_grad(node, 0)) {
    st = vox_tensor_empty(x->dtype, x->device, 3, x->shape, &dx);
    if (st == VOX_OK)
      st = run_conv(op, c.transpose ? VOX_K_CONV1D : VOX_K_CONV1D_BACKWARD_DATA, dy, w, dx, &c.p);
  }
  if (st == VOX_OK && vox_node_needs_grad(node, 1)) {
    st = vox_tensor_empty(w->dtype, w->device, 3, w->shape, &dw);
    if (st == VOX_OK)
      st = run_conv(op, VOX_K_CONV1D_BACKWARD_WEIGHT, c.transpose ? dy : x, c.transpose ? x : dy, dw, &c.p);
  }
  if (st == VOX_OK && vox_node_needs_grad(node, 2)) st = bias_grad(op, dy, &db);
  vox_tensor_release(dy);
  if (st != VOX_OK) {
    vox_tensor_release(dx);
    vox_tensor_release(dw);
    vox_tensor_release(db);
    return st;
  }
  grad_in[0] = dx;
  grad_in[1] = dw;
  grad_in[2] = db;
  return VOX_OK;
}

/* Shared checks. For conv1d w is [Cout, Cin/groups, K]; for the transpose w is [Cin, Cout/groups, K]. */
static vox_status check_conv(const char *op, const vox_tensor *x, const vox_tensor *w, const vox_tensor *b,
                             int stride, int padding, int dilation, int groups, bool transpose, int64_t *cout) {
  char b1[96], b2[96], b3[96];
  const char *xs = vox_tensor_describe(x, b1, sizeof b1), *ws = vox_tensor_describe(w, b2, sizeof b2);
  if (x->ndim != 3 || w->ndim != 3)
    return vox_errorf(VOX_ERR_SHAPE, "%s: input %s must be [B, C, L] and weight %s [C, C/groups, K]", op, xs, ws);
  if (!vox_dtype_is_float(x->dtype) || w->dtype != x->dtype)
    return vox_errorf(VOX_ERR_DTYPE, "%s: input %s and weight %s must share one float dtype", op, xs, ws);
  if (w->device != x->device || (b && b->device != x->device))
    return vox_errorf(VOX_ERR_DEVICE, "%s: input, weight and bias must be on one device", op);
  if (stride < 1 || dilation < 1 || padding < 0 || groups < 1)
    return vox_errorf(VOX_ERR_INVALID, "%s: stride %d, dilation %d must be >= 1, padding %d >= 0, groups %d >= 1",
                      op, stride, dilation, padding, groups);
  int64_t cin = x->shape[1];
  if (cin % groups)
    return vox_errorf(VOX_ERR_SHAPE, "%s: input channels %lld of %s are not divisible by groups %d", op,
                      (long long)cin, xs, groups);
  if (w->shape[2] < 1) return vox_errorf(VOX_ERR_SHAPE, "%s: weight %s has an empty kernel", op, ws);
  if (!transpose) {
    if (w->shape[1] * groups != cin || w->shape[0] % groups)
      return vox_errorf(VOX_ERR_SHAPE,
                        "%s: input %s with groups %d needs weight [Cout, %lld, K] with Cout divisible by %d, got %s",
                        op, xs, groups, (long long)(cin / groups), groups, ws);
    *cout = w->shape[0];
  } else {
    if (w->shape[0] != cin)
      return vox_errorf(VOX_ERR_SHAPE, "%s: input %s with groups %d needs weight [%lld, Cout/groups, K], got %s", op,
                        xs, groups, (long long)cin, ws);
    *cout = w->shape[1] * groups;
  }
  if (b && (b->ndim != 1 || b->shape[0] != *cout || b->dtype != x->dtype))
    return vox_errorf(VOX_ERR_SHAPE, "%s: bias %s must be [%lld] of the input's dtype (input %s, weight %s)", op,
                      vox_tensor_describe(b, b3, sizeof b3), (long long)*cout, xs, ws);
  return VOX_OK;
}

static vox_status conv_common(const char *op, vox_tensor *x, vox_tensor *w, vox_tensor *b, const conv_ctx *c,
                              int64_t cout, int64_t lout, vox_tensor **out) {
  *out = NULL;
  vox_tensor *xc = NULL, *wc = NULL, *y = NULL, *yb = NULL;
  vox_status st;
  VOX_CHECK_GOTO(st, vox_tensor_contiguous(x, &xc), done);
  VOX_CHECK_GOTO(st, vox_tensor_contiguous(w, &wc), done);
  VOX_CHECK_GOTO(st, vox_tensor_empty(x->dtype, x->device, 3, (int64_t[]){x->shape[0], cout, lout}, &y), done);
  VOX_CHECK_GOTO(st, run_conv(op, c->transpose ? VOX_K_CONV1D_BACKWARD_DATA : VOX_K_CONV1D, xc, wc, y, &c->p), done);
  if (b) {
    VOX_CHECK_GOTO(st, add_bias(op, y, b, &yb), done);
    vox_tensor_release(y);
    y = yb;
  }
  vox_node *node = NULL;
  VOX_CHECK_GOTO(st, vox_autograd_record(op, y, 3, (vox_tensor *[]){x, w, b}, conv_backward, &node), done);
  if (node) {
    memcpy(node->ctx, c, sizeof *c);
    vox_node_save(node, xc);
    vox_node_save(node, wc);
  }
  *out = y;
  y = NULL;
done:
  vox_tensor_release(xc);
  vox_tensor_release(wc);
  vox_tensor_release(y);
  return st;
}

vox_status vox_op_conv1d(vox_tensor *x, vox_tensor *w, vox_tensor *b, int stride, int padding, int dilation,
                         int groups, vox_tensor **out) {
  char b1[96], b2[96];
  *out = NULL;
  int64_t cout = 0;
  VOX_TRY(check_conv("conv1d", x, w, b, stride, padding, dilation, groups, false, &cout));
  int64_t span = (int64_t)dilation * (w->shape[2] - 1) + 1, padded = x->shape[2] + 2 * (int64_t)padding;
  if (padded < span)
    return vox_errorf(VOX_ERR_SHAPE, "conv1d: input %s padded by %d is shorter than the kernel span %lld of weight %s",
                      vox_tensor_describe(x, b1, sizeof b1), padding, (long long)span,
                      vox_tensor_describe(w, b2, sizeof b2));
  conv_ctx c = {.p = {.stride = stride, .padding = padding, .dilation = dilation, .groups = groups}};
  return conv_common("conv1d", x, w, b, &c, cout, (padded - span) / stride + 1, out);
}

vox_status vox_op_conv_transpose1d(vox_tensor *x, vox_tensor *w, vox_tensor *b, int stride, int padding,
                                   int output_padding, int dilation, int groups, vox_tensor **out) {
  char b1[96];
  *out = NULL;
  int64_t cout = 0;
  VOX_TRY(check_conv("conv_transpose1d", x, w, b, stride, padding, dilation, groups, true, &cout));
  if (output_padding < 0 || (output_padding >= stride && output_padding >= dilation))
    return vox_errorf(VOX_ERR_INVALID,
                      "conv_transpose1d: output_padding %d must be >= 0 and smaller than stride %d or dilation %d",
                      output_padding, stride, dilation);
  int64_t lout = (x->shape[2] - 1) * stride - 2 * (int64_t)padding + (int64_t)dilation * (w->shape[2] - 1) +
                 output_padding + 1;
  if (lout < 1)
    return vox_errorf(VOX_ERR_SHAPE, "conv_transpose1d: input %s gives output length %lld < 1",
                      vox_tensor_describe(x, b1, sizeof b1), (long long)lout);
  conv_ctx c = {.p = {.stride = stride, .padding = padding, .dilation = dilation, .groups = groups},
                .transpose = true};
  return conv_common("conv_transpose1d", x, w, b, &c, cout, lout, out);
}
