/* softmax and log_softmax over any dim. The kernels work along the last dim; other dims are handled by
 * handing them a permuted view (no copy) of the input and of the output. */
#include <string.h>

#include "core/autograd.h"
#include "core/backend.h"
#include "core/kernel_params.h"
#include "core/ops.h"

typedef struct softmax_ctx {
  int dim;
  bool log;
} softmax_ctx;

/* The permutation that swaps `dim` with the last dim (its own inverse). */
static void last_dim_perm(int ndim, int dim, int *perm) {
  for (int i = 0; i < ndim; i++) perm[i] = i;
  perm[dim] = ndim - 1;
  perm[ndim - 1] = dim;
}

/* Runs `kernel` with every operand viewed so that `dim` is last. */
static vox_status run_over_dim(const char *op, vox_kernel_id kernel, int dim, bool log, int n_in,
                               vox_tensor *const *in, vox_tensor *out) {
  int perm[VOX_MAX_DIMS];
  last_dim_perm(out->ndim, dim, perm);
  vox_tensor *views[4] = {0};
  vox_status st = VOX_OK;
  for (int i = 0; i <= n_in && st == VOX_OK; i++)
    st = vox_tensor_view_permute(i < n_in ? in[i] : out, perm, &views[i]);
  if (st == VOX_OK) {
    vox_softmax_params p = {.log = log};
    vox_kernel_args a = {.n_in = n_in, .n_out = 1, .out = {views[n_in]}, .params = &p};
    for (int i = 0; i < n_in; i++) a.in[i] = views[i];
    st = vox_kernel_run(op, kernel, &a);
  }
  for (int i = 0; i <= n_in; i++) vox_tensor_release(views[i]);
  return st;
}

static vox_status softmax_backward(vox_node *node, vox_tensor *g, vox_tensor **grad_in) {
  const softmax_ctx *c = (const softmax_ctx *)node->ctx;
  vox_tensor *y = node->saved[0];
  const vox_edge *e = &node->inputs[0];
  VOX_TRY(vox_tensor_empty(e->dtype, y->device, e->ndim, e->shape, &grad_in[0]));
  vox_tensor *in[2] = {y, g};
  return run_over_dim(c->log ? "log_softmax backward" : "softmax backward", VOX_K_SOFTMAX_BACKWARD, c->dim, c->log,
                      2, in, grad_in[0]);
}

static vox_status softmax_impl(const char *op, vox_tensor *x, int dim, bool log, vox_tensor **out) {
  char b1[96];
  *out = NULL;
  if (!x) return vox_errorf(VOX_ERR_INVALID, "%s: input is NULL", op);
  if (!vox_dtype_is_float(x->dtype))
    return vox_errorf(VOX_ERR_DTYPE, "%s: input %s must be f32 or bf16", op, vox_tensor_describe(x, b1, sizeof b1));
  int d = vox_tensor_dim(x, dim);
  if (d < 0)
    return vox_errorf(VOX_ERR_INDEX, "%s: dim %d out of range for %s", op, dim, vox_tensor_describe(x, b1, sizeof b1));
  VOX_TRY(vox_tensor_empty_like(x, out));
  vox_status st = run_over_dim(op, VOX_K_SOFTMAX, d, log, 1, &x, *out);
  vox_node *node = NULL;
  if (st == VOX_OK) st = vox_autograd_record(op, *out, 1, &x, softmax_backward, &node);
  if (st != VOX_OK) {
    vox_tensor_drop(out);
    return st;
  }
  if (node) {
    softmax_ctx c = {.dim = d, .log = log};
    memcpy(node->ctx, &c, sizeof c);
    /* Saving the output itself would make a reference cycle (out -> node -> out); a detached view shares the
     * storage without the node. */
    vox_tensor *y = NULL;
    st = vox_tensor_detach(*out, &y);
    if (st != VOX_OK) {
      vox_tensor_drop(out);
      return st;
    }
    vox_node_save(node, y);
    vox_tensor_release(y);
  }
  return VOX_OK;
}

vox_status vox_op_softmax(vox_tensor *x, int dim, vox_tensor **out) { return softmax_impl("softmax", x, dim, false, out); }
vox_status vox_op_log_softmax(vox_tensor *x, int dim, vox_tensor **out) {
  return softmax_impl("log_softmax", x, dim, true, out);
}
