/* Small helpers shared by the op files in src/core/ops: kernel calls with one output, operand checks that
 * name the op and the shapes, and the record-then-save step every differentiable op ends with. */
#ifndef VOX_CORE_OPS_UTIL_H
#define VOX_CORE_OPS_UTIL_H

#include <stdio.h>
#include <string.h>

#include "core/autograd.h"
#include "core/backend.h"
#include "core/kernel_params.h"
#include "core/ops.h"

/* Runs kernel `id` with n_in inputs and one output. */
static inline vox_status vox_ops_kernel1(const char *op, vox_kernel_id id, const void *params, int n_in,
                                         const vox_tensor *const *in, vox_tensor *out) {
  vox_kernel_args a = {.n_in = n_in, .n_out = 1, .out = {out}, .params = params};
  for (int i = 0; i < n_in; i++) a.in[i] = in[i];
  return vox_kernel_run(op, id, &a);
}

static inline vox_status vox_ops_check_float(const char *op, const vox_tensor *x) {
  char b1[96];
  if (!vox_dtype_is_float(x->dtype))
    return vox_errorf(VOX_ERR_DTYPE, "%s: %s must be f32 or bf16", op, vox_tensor_describe(x, b1, sizeof b1));
  return VOX_OK;
}

/* Same dtype and device for two operands, with both shapes in the message. */
static inline vox_status vox_ops_check_pair(const char *op, const vox_tensor *a, const vox_tensor *b) {
  char b1[96], b2[96];
  if (a->dtype != b->dtype)
    return vox_errorf(VOX_ERR_DTYPE, "%s: %s and %s have different dtypes (cast one first)", op,
                      vox_tensor_describe(a, b1, sizeof b1), vox_tensor_describe(b, b2, sizeof b2));
  if (a->device != b->device)
    return vox_errorf(VOX_ERR_DEVICE, "%s: %s on %s and %s on %s", op, vox_tensor_describe(a, b1, sizeof b1),
                      vox_device_name(a->device), vox_tensor_describe(b, b2, sizeof b2), vox_device_name(b->device));
  return VOX_OK;
}

/* Records the node for *out; on failure releases *out. ctx (ctx_bytes) is copied into node->ctx. Returns
 * the node (NULL when nothing is recorded) through *node. */
static inline vox_status vox_ops_record(const char *op, vox_tensor **out, int n_inputs, vox_tensor *const *inputs,
                                        vox_backward_fn backward, const void *ctx, size_t ctx_bytes,
                                        vox_node **node) {
  vox_node *n = NULL;
  vox_status st = vox_autograd_record(op, *out, n_inputs, inputs, backward, &n);
  if (st != VOX_OK) {
    vox_tensor_drop(out);
    return st;
  }
  if (n && ctx_bytes) memcpy(n->ctx, ctx, ctx_bytes);
  if (node) *node = n;
  return VOX_OK;
}

/* Writes "[2,3,4]" into buf (for messages about target shapes that are not tensors yet). */
static inline const char *vox_ops_shape_str(int ndim, const int64_t *shape, char *buf, size_t cap) {
  size_t n = (size_t)snprintf(buf, cap, "[");
  for (int i = 0; i < ndim && n < cap; i++) n += (size_t)snprintf(buf + n, cap - n, i ? ",%lld" : "%lld", (long long)shape[i]);
  if (n < cap) snprintf(buf + n, cap - n, "]");
  return buf;
}

#endif
