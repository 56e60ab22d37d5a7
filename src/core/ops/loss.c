/* Losses: fused cross-entropy (ignore_index, label smoothing; saves only the per-row log-sum-exp) and the
 * mean L1 / MSE losses composed from elementwise ops. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/autograd.h"
#include "core/backend.h"
#include "core/kernel_params.h"
#include "core/ops.h"

typedef struct ce_ctx {
  int32_t ignore_index;
  float label_smoothing;
  double scale; /* 1 / number of non-ignored rows (0 when there are none) */
} ce_ctx;

/* t as a view of the given shape, or a contiguous copy reshaped when the strides do not allow a view. */
static vox_status reshaped(vox_tensor *t, int ndim, const int64_t *shape, vox_tensor **out) {
  if (vox_tensor_view_reshape(t, ndim, shape, out) == VOX_OK) return VOX_OK;
  vox_tensor *dense = NULL;
  VOX_TRY(vox_tensor_clone(t, &dense));
  vox_status st = vox_tensor_view_reshape(dense, ndim, shape, out);
  vox_tensor_release(dense);
  return st;
}

static vox_status ce_backward(vox_node *node, vox_tensor *g, vox_tensor **grad_in) {
  if (!vox_node_needs_grad(node, 0)) return VOX_OK;
  const ce_ctx *c = (const ce_ctx *)node->ctx;
  vox_tensor *logits = node->saved[0], *targets = node->saved[1], *lse = node->saved[2];
  const vox_edge *e = &node->inputs[0];
  vox_tensor *scaled = NULL, *dloss = NULL, *dx2 = NULL;
  int64_t n = logits->shape[0], one = 1, stride0 = 0;
  /* Every row's loss enters the mean with weight scale: dloss[r] = g * scale (a stride-0 view of one value). */
  vox_status st = vox_op_affine(g, c->scale, 0.0, &scaled);
  vox_tensor *flat = NULL;
  if (st == VOX_OK) st = vox_tensor_view_reshape(scaled, 1, &one, &flat);
  if (st == VOX_OK) st = vox_tensor_view(flat, 1, &n, &stride0, flat->offset, &dloss);
  if (st == VOX_OK) st = vox_tensor_empty(e->dtype, logits->device, e->ndim, e->shape, &grad_in[0]);
  if (st == VOX_OK) st = vox_tensor_view_reshape(grad_in[0], 2, logits->shape, &dx2);
  if (st == VOX_OK) {
    vox_cross_entropy_params p = {.ignore_index = c->ignore_index, .label_smoothing = c->label_smoothing};
    vox_kernel_args a = {.n_in = 4, .n_out = 1, .in = {logits, targets, lse, dloss}, .out = {dx2}, .params = &p};
    st = vox_kernel_run("cross_entropy backward", VOX_K_CROSS_ENTROPY_BACKWARD, &a);
  }
  vox_tensor_release(scaled);
  vox_tensor_release(flat);
  vox_tensor_release(dloss);
  vox_tensor_release(dx2);
  return st;
}

vox_status vox_op_cross_entropy(vox_tensor *logits, vox_tensor *targets, int32_t ignore_index,
                                float label_smoothing, vox_tensor **out) {
  char b1[96], b2[96];
  *out = NULL;
  if (!logits || !targets) return vox_errorf(VOX_ERR_INVALID, "cross_entropy: logits or targets is NULL");
  if (!vox_dtype_is_float(logits->dtype) || targets->dtype != VOX_I32)
    return vox_errorf(VOX_ERR_DTYPE, "cross_entropy: logits %s must be f32/bf16 and targets %s i32",
                      vox_tensor_describe(logits, b1, sizeof b1), vox_tensor_describe(targets, b2, sizeof b2));
  bool shapes_ok = logits->ndim >= 1 && targets->ndim == logits->ndim - 1;
  for (int d = 0; shapes_ok && d < targets->ndim; d++) shapes_ok = targets->shape[d] == logits->shape[d];
  if (!shapes_ok)
    return vox_errorf(VOX_ERR_SHAPE, "cross_entropy: logits %s and targets %s: expected logits [..., V], targets [...]",
                      vox_tensor_describe(logits, b1, sizeof b1), vox_tensor_describe(targets, b2, sizeof b2));
  if (!(label_smoothing >= 0.0f && label_smoothing <= 1.0f))
    return vox_errorf(VOX_ERR_INVALID, "cross_entropy: label_smoothing %g outside [0, 1]", label_smoothing);
  if (logits->device != targets->device)
    return vox_errorf(VOX_ERR_DEVICE, "cross_entropy: logits on %s, targets on %s", vox_device_name(logits->device),
                      vox_device_name(targets->device));
  int64_t V = logits->shape[logits->ndim - 1], N = vox_tensor_numel(targets);
  int64_t shape2[2] = {N, V};
  vox_tensor *x2 = NULL, *t1 = NULL, *loss = NULL, *lse = NULL, *total = NULL;
  int32_t *host = NULL;
  vox_status st = reshaped(logits, 2, shape2, &x2);
  if (st == VOX_OK) st = reshaped(targets, 1, &N, &t1);
  if (st == VOX_OK) st = vox_tensor_empty(VOX_F32, logits->device, 1, &N, &loss);
  if (st == VOX_OK) st = vox_tensor_empty(VOX_F32, logits->device, 1, &N, &lse);
  if (st == VOX_OK) {
    vox_cross_entropy_params p = {.ignore_index = ignore_index, .label_smoothing = label_smoothing};
    vox_kernel_args a = {.n_in = 2, .n_out = 2, .in = {x2, t1}, .out = {loss, lse}, .params = &p};
    char op[256];
    snprintf(op, sizeof op, "cross_entropy (logits %s, targets %s)", vox_tensor_describe(logits, b1, sizeof b1),
             vox_tensor_describe(targets, b2, sizeof b2));
    st = vox_kernel_run(op, VOX_K_CROSS_ENTROPY, &a);
  }
  /* The mean's denominator counts the rows that are not ignored. */
  int64_t count = 0;
  if (st == VOX_OK) {
    host = malloc(sizeof(int32_t) * (size_t)(N ? N : 1));
    st = host ? vox_tensor_read_i32(t1, host) : vox_errorf(VOX_ERR_NOMEM, "cross_entropy: out of memory");
    for (int64_t i = 0; st == VOX_OK && i < N; i++) count += host[i] != ignore_index;
  }
  double scale = count ? 1.0 / (double)count : 0.0;
  vox_no_grad_begin();
  if (st == VOX_OK) st = vox_op_sum(loss, 0, NULL, false, &total);
  if (st == VOX_OK) st = vox_op_affine(total, scale, 0.0, out);
  vox_no_grad_end();
  vox_node *node = NULL;
  if (st == VOX_OK) {
    vox_tensor *inputs[2] = {logits, targets};
    st = vox_autograd_record("cross_entropy", *out, 2, inputs, ce_backward, &node);
  }
  if (st == VOX_OK && node) {
    ce_ctx c = {.ignore_index = ignore_index, .label_smoothing = label_smoothing, .scale = scale};
    memcpy(node->ctx, &c, sizeof c);
    vox_node_save(node, x2);
    vox_node_save(node, t1);
    vox_node_save(node, lse);
  }
  if (st != VOX_OK) vox_tensor_drop(out);
  free(host);
  vox_tensor_release(x2);
  vox_tensor_release(t1);
  vox_tensor_release(loss);
  vox_tensor_release(lse);
  vox_tensor_release(total);
  return st;
}

/* mean(f(pred - target)) with f = square or abs, from differentiable elementwise ops. */
static vox_status mean_of_diff(const char *op, vox_tensor *pred, vox_tensor *target, bool square, vox_tensor **out) {
  char b1[96], b2[96];
  *out = NULL;
  if (!pred || !target) return vox_errorf(VOX_ERR_INVALID, "%s: pred or target is NULL", op);
  if (!vox_dtype_is_float(pred->dtype) || !vox_dtype_is_float(target->dtype))
    return vox_errorf(VOX_ERR_DTYPE, "%s: pred %s and target %s must be f32 or bf16", op,
                      vox_tensor_describe(pred, b1, sizeof b1), vox_tensor_describe(target, b2, sizeof b2));
  if (!vox_tensor_same_shape(pred, target))
    return vox_errorf(VOX_ERR_SHAPE, "%s: pred %s and target %s differ in shape", op,
                      vox_tensor_describe(pred, b1, sizeof b1), vox_tensor_describe(target, b2, sizeof b2));
  vox_tensor *diff = NULL, *f = NULL;
  vox_status st = vox_op_sub(pred, target, &diff);
  if (st == VOX_OK) st = square ? vox_op_square(diff, &f) : vox_op_abs(diff, &f);
  if (st == VOX_OK) st = vox_op_mean(f, 0, NULL, false, out);
  vox_tensor_release(diff);
  vox_tensor_release(f);
  return st;
}

vox_status vox_op_mse_loss(vox_tensor *pred, vox_tensor *target, vox_tensor **out) {
  return mean_of_diff("mse_loss", pred, target, true, out);
}
vox_status vox_op_l1_loss(vox_tensor *pred, vox_tensor *target, vox_tensor **out) {
  return mean_of_diff("l1_loss", pred, target, false, out);
}
