/* Rotary position embedding (HF rotate_half convention, partial rotary): checks, the ROPE kernel, and a
 * backward that rotates the gradient back by the same angles (the same kernel with params.inverse). */
#include <string.h>

#include "core/autograd.h"
#include "core/backend.h"
#include "core/kernel_params.h"
#include "core/ops.h"

/* saved: positions */
static vox_status rope_backward(vox_node *node, vox_tensor *grad_out, vox_tensor **grad_in) {
  vox_rope_params p;
  memcpy(&p, node->ctx, sizeof p);
  p.inverse = !p.inverse;
  vox_tensor *dy = NULL, *dx = NULL;
  vox_status st = vox_tensor_contiguous(grad_out, &dy);
  if (st == VOX_OK) st = vox_tensor_empty(dy->dtype, dy->device, dy->ndim, dy->shape, &dx);
  if (st == VOX_OK) {
    vox_kernel_args a = {.n_in = 2, .n_out = 1, .in = {dy, node->saved[0]}, .out = {dx}, .params = &p};
    st = vox_kernel_run("rope backward", VOX_K_ROPE, &a);
  }
  vox_tensor_release(dy);
  if (st != VOX_OK) {
    vox_tensor_release(dx);
    return st;
  }
  grad_in[0] = dx;
  return VOX_OK;
}

vox_status vox_op_rope(vox_tensor *x, vox_tensor *positions, float theta, int rotary_dim, vox_tensor **out) {
  char b1[96], b2[96];
  *out = NULL;
  if (x->ndim != 4 || !vox_dtype_is_float(x->dtype))
    return vox_errorf(VOX_ERR_SHAPE, "rope: input %s must be a float [B, H, T, D] tensor",
                      vox_tensor_describe(x, b1, sizeof b1));
  int64_t B = x->shape[0], T = x->shape[2], D = x->shape[3];
  bool pos_ok = positions->dtype == VOX_I32 &&
                ((positions->ndim == 1 && positions->shape[0] == T) ||
                 (positions->ndim == 2 && positions->shape[0] == B && positions->shape[1] == T));
  if (!pos_ok)
    return vox_errorf(VOX_ERR_SHAPE, "rope: input %s needs i32 positions [%lld, %lld] or [%lld], got %s",
                      vox_tensor_describe(x, b1, sizeof b1), (long long)B, (long long)T, (long long)T,
                      vox_tensor_describe(positions, b2, sizeof b2));
  if (positions->device != x->device)
    return vox_errorf(VOX_ERR_DEVICE, "rope: positions on %s, input on %s", vox_device_name(positions->device),
                      vox_device_name(x->device));
  int rd = rotary_dim == 0 ? (int)D : rotary_dim;
  if (rd <= 0 || rd > D || rd % 2)
    return vox_errorf(VOX_ERR_INVALID, "rope: rotary_dim %d must be even and in (0, %lld] for input %s", rotary_dim,
                      (long long)D, vox_tensor_describe(x, b1, sizeof b1));
  if (!(theta > 0))
    return vox_errorf(VOX_ERR_INVALID, "rope: theta %g must be positive", (double)theta);
  vox_rope_params p = {.theta = theta, .rotary_dim = rd, .inverse = false};
  vox_tensor *xc = NULL, *pc = NULL, *y = NULL;
  vox_status st;
  VOX_CHECK_GOTO(st, vox_tensor_contiguous(x, &xc), fail);
  VOX_CHECK_GOTO(st, vox_tensor_contiguous(positions, &pc), fail);
  VOX_CHECK_GOTO(st, vox_tensor_empty(x->dtype, x->device, 4, x->shape, &y), fail);
  vox_kernel_args a = {.n_in = 2, .n_out = 1, .in = {xc, pc}, .out = {y}, .params = &p};
  VOX_CHECK_GOTO(st, vox_kernel_run("rope", VOX_K_ROPE, &a), fail);
  vox_node *node = NULL;
  VOX_CHECK_GOTO(st, vox_autograd_record("rope", y, 1, &x, rope_backward, &node), fail);
  if (node) {
    memcpy(node->ctx, &p, sizeof p);
    vox_node_save(node, pc);
  }
  vox_tensor_release(xc);
  vox_tensor_release(pc);
  *out = y;
  return VOX_OK;
fail:
  vox_tensor_release(xc);
  vox_tensor_release(pc);
  vox_tensor_release(y);
  return st;
}
