/* RMSNorm and LayerNorm over the last dim: checks, the forward kernels (which save only rstd and the mean)
 * and backward nodes that run the dedicated backward kernels. Statistics are computed in double by the kernels. */
#include <stdlib.h>
#include <string.h>

#include "core/autograd.h"
#include "core/backend.h"
#include "core/kernel_params.h"
#include "core/ops.h"

/* Checks x [..., D] and an optional parameter vector [D] of the same dtype and device. */
static vox_status check_param(const char *op, const char *what, const vox_tensor *x, const vox_tensor *p) {
  char b1[96], b2[96];
  if (!p) return VOX_OK;
  int64_t d = x->shape[x->ndim - 1];
  if (p->ndim != 1 || p->shape[0] != d)
    return vox_errorf(VOX_ERR_SHAPE, "%s: input %s needs %s of shape [%lld], got %s", op,
                      vox_tensor_describe(x, b1, sizeof b1), what, (long long)d,
                      vox_tensor_describe(p, b2, sizeof b2));
  if (p->dtype != x->dtype || p->device != x->device)
    return vox_errorf(VOX_ERR_DTYPE, "%s: %s %s (%s) does not match input %s (%s)", op, what,
                      vox_tensor_describe(p, b2, sizeof b2), vox_device_name(p->device),
                      vox_tensor_describe(x, b1, sizeof b1), vox_device_name(x->device));
  return VOX_OK;
}

static vox_status check_input(const char *op, const vox_tensor *x) {
  char b1[96];
  if (x->ndim < 1 || x->shape[x->ndim - 1] < 1)
    return vox_errorf(VOX_ERR_SHAPE, "%s: input %s needs a non-empty last dim", op,
                      vox_tensor_describe(x, b1, sizeof b1));
  if (!vox_dtype_is_float(x->dtype))
    return vox_errorf(VOX_ERR_DTYPE, "%s: input %s must be a float tensor", op, vox_tensor_describe(x, b1, sizeof b1));
  return VOX_OK;
}

/* Row statistics are one value per row of x: shape x.shape[:-1] (at least one dim). */
static vox_status stat_tensor(const vox_tensor *x, vox_tensor **out) {
  int64_t rows = vox_tensor_numel(x) / x->shape[x->ndim - 1];
  return vox_tensor_empty(VOX_F32, x->device, 1, (int64_t[]){rows}, out);
}

/* ---- rms_norm ------------------------------------------------------------------------------------------ */

/* saved: x, w (or NULL), rstd */
static vox_status rms_norm_backward(vox_node *node, vox_tensor *grad_out, vox_tensor **grad_in) {
  vox_norm_params p;
  memcpy(&p, node->ctx, sizeof p);
  vox_tensor *x = node->saved[0], *w = node->saved[1], *rstd = node->saved[2];
  vox_tensor *dy = NULL, *dx = NULL, *dw = NULL;
  vox_status st = vox_tensor_contiguous(grad_out, &dy);
  if (st == VOX_OK && vox_node_needs_grad(node, 0)) st = vox_tensor_empty_like(x, &dx);
  if (st == VOX_OK && w && vox_node_needs_grad(node, 1)) st = vox_tensor_empty_like(w, &dw);
  if (st == VOX_OK) {
    vox_kernel_args a = {.n_in = 4, .n_out = 2, .in = {x, w, rstd, dy}, .out = {dx, dw}, .params = &p};
    st = vox_kernel_run("rms_norm backward", VOX_K_RMSNORM_BACKWARD, &a);
  }
  vox_tensor_release(dy);
  if (st != VOX_OK) {
    vox_tensor_release(dx);
    vox_tensor_release(dw);
    return st;
  }
  grad_in[0] = dx;
  grad_in[1] = dw;
  return VOX_OK;
}

vox_status vox_op_rms_norm(vox_tensor *x, vox_tensor *weight, float eps, vox_tensor **out) {
  *out = NULL;
  VOX_TRY(check_input("rms_norm", x));
  VOX_TRY(check_param("rms_norm", "weight", x, weight));
  vox_tensor *xc = NULL, *wc = NULL, *y = NULL, *rstd = NULL;
  vox_norm_params p = {.eps = eps};
  vox_status st;
  VOX_CHECK_GOTO(st, vox_tensor_contiguous(x, &xc), fail);
  if (weight) VOX_CHECK_GOTO(st, vox_tensor_contiguous(weight, &wc), fail);
  VOX_CHECK_GOTO(st, vox_tensor_empty(x->dtype, x->device, x->ndim, x->shape, &y), fail);
  VOX_CHECK_GOTO(st, stat_tensor(x, &rstd), fail);
  vox_kernel_args a = {.n_in = 2, .n_out = 2, .in = {xc, wc}, .out = {y, rstd}, .params = &p};
  VOX_CHECK_GOTO(st, vox_kernel_run("rms_norm", VOX_K_RMSNORM, &a), fail);
  vox_node *node = NULL;
  VOX_CHECK_GOTO(st, vox_autograd_record("rms_norm", y, 2, (vox_tensor *[]){x, weight}, rms_norm_backward, &node),
                 fail);
  if (node) {
    memcpy(node->ctx, &p, sizeof p);
    vox_node_save(node, xc);
    node->saved[node->n_saved++] = wc ? vox_tensor_retain(wc) : NULL;
    vox_node_save(node, rstd);
  }
  vox_tensor_release(xc);
  vox_tensor_release(wc);
  vox_tensor_release(rstd);
  *out = y;
  return VOX_OK;
fail:
  vox_tensor_release(xc);
  vox_tensor_release(wc);
  vox_tensor_release(y);
  vox_tensor_release(rstd);
  return st;
}

/* ---- layer_norm ---------------------------------------------------------------------------------------- */

/* saved: x, w (or NULL), mean, rstd */
static vox_status layer_norm_backward(vox_node *node, vox_tensor *grad_out, vox_tensor **grad_in) {
  vox_norm_params p;
  memcpy(&p, node->ctx, sizeof p);
  vox_tensor *x = node->saved[0], *w = node->saved[1], *mean = node->saved[2], *rstd = node->saved[3];
  vox_tensor *dy = NULL, *dx = NULL, *dw = NULL, *db = NULL;
  vox_status st = vox_tensor_contiguous(grad_out, &dy);
  if (st == VOX_OK && vox_node_needs_grad(node, 0)) st = vox_tensor_empty_like(x, &dx);
  if (st == VOX_OK && w && vox_node_needs_grad(node, 1)) st = vox_tensor_empty_like(w, &dw);
  if (st == VOX_OK && vox_node_needs_grad(node, 2)) {
    int64_t d = x->shape[x->ndim - 1];
    st = vox_tensor_empty(x->dtype, x->device, 1, &d, &db);
  }
  if (st == VOX_OK) {
    vox_kernel_args a = {.n_in = 5, .n_out = 3, .in = {x, w, mean, rstd, dy}, .out = {dx, dw, db}, .params = &p};
    st = vox_kernel_run("layer_norm backward", VOX_K_LAYERNORM_BACKWARD, &a);
  }
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

vox_status vox_op_layer_norm(vox_tensor *x, vox_tensor *weight, vox_tensor *bias, float eps, vox_tensor **out) {
  *out = NULL;
  VOX_TRY(check_input("layer_norm", x));
  VOX_TRY(check_param("layer_norm", "weight", x, weight));
  VOX_TRY(check_param("layer_norm", "bias", x, bias));
  vox_tensor *xc = NULL, *wc = NULL, *bc = NULL, *y = NULL, *mean = NULL, *rstd = NULL;
  vox_norm_params p = {.eps = eps};
  vox_status st;
  VOX_CHECK_GOTO(st, vox_tensor_contiguous(x, &xc), fail);
  if (weight) VOX_CHECK_GOTO(st, vox_tensor_contiguous(weight, &wc), fail);
  if (bias) VOX_CHECK_GOTO(st, vox_tensor_contiguous(bias, &bc), fail);
  VOX_CHECK_GOTO(st, vox_tensor_empty(x->dtype, x->device, x->ndim, x->shape, &y), fail);
  VOX_CHECK_GOTO(st, stat_tensor(x, &mean), fail);
  VOX_CHECK_GOTO(st, stat_tensor(x, &rstd), fail);
  vox_kernel_args a = {.n_in = 3, .n_out = 3, .in = {xc, wc, bc}, .out = {y, mean, rstd}, .params = &p};
  VOX_CHECK_GOTO(st, vox_kernel_run("layer_norm", VOX_K_LAYERNORM, &a), fail);
  vox_node *node = NULL;
  VOX_CHECK_GOTO(st, vox_autograd_record("layer_norm", y, 3, (vox_tensor *[]){x, weight, bias},
                                         layer_norm_backward, &node),
                 fail);
  if (node) {
    memcpy(node->ctx, &p, sizeof p);
    vox_node_save(node, xc);
    node->saved[node->n_saved++] = wc ? vox_tensor_retain(wc) : NULL;
    vox_node_save(node, mean);
    vox_node_save(node, rstd);
  }
  vox_tensor_release(xc);
  vox_tensor_release(wc);
  vox_tensor_release(bc);
  vox_tensor_release(mean);
  vox_tensor_release(rstd);
  *out = y;
  return VOX_OK;
fail:
  vox_tensor_release(xc);
  vox_tensor_release(wc);
  vox_tensor_release(bc);
  vox_tensor_release(y);
  vox_tensor_release(mean);
  vox_tensor_release(rstd);
  return st;
}
