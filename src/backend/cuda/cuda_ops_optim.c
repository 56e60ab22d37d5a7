/* CUDA glue for the optimizer kernels: ADAMW_STEP, SGD_STEP and ADAMW_MULTI_STEP (every parameter in one launch;
 * the per-tensor records travel in one host-to-device copy). Device code in kernels/optim.cu. */
#include <math.h>
#include <stdlib.h>

#include "backend/cuda/cuda_internal.h"

static vox_status check_operand(const char *op, const vox_tensor *t, const vox_tensor *param, const char *what) {
  char b1[96], b2[96];
  if (!t) return vox_errorf(VOX_ERR_INVALID, "%s: missing %s", op, what);
  if (t->dtype != VOX_F32 || t->device != VOX_CUDA || !vox_tensor_is_contiguous(t) || !vox_tensor_same_shape(t, param))
    return vox_errorf(VOX_ERR_INVALID, "%s: %s %s must be contiguous f32 on cuda shaped like the parameter %s", op,
                      what, vox_tensor_describe(t, b1, sizeof b1), vox_tensor_describe(param, b2, sizeof b2));
  return VOX_OK;
}

/* The CPU kernel's derived constants, computed the same way. */
static vox_cu_adamw_args adamw_args(const vox_adamw_params *p) {
  return (vox_cu_adamw_args){.b1 = p->beta1, .b2 = p->beta2, .eps = p->eps, .grad_scale = p->grad_scale,
                             .decay = 1.0f - p->lr * p->weight_decay, .step = p->lr / p->bias_correction1,
                             .inv_sqrt_bc2 = 1.0f / sqrtf(p->bias_correction2)};
}

static vox_status cuda_adamw_step(const vox_kernel_args *a) {
  const vox_adamw_params *p = a->params;
  vox_tensor *param = a->out[0];
  VOX_TRY(check_operand("adamw_step", a->in[0], param, "gradient"));
  VOX_TRY(check_operand("adamw_step", param, param, "parameter"));
  VOX_TRY(check_operand("adamw_step", a->out[1], param, "exp_avg"));
  VOX_TRY(check_operand("adamw_step", a->out[2], param, "exp_avg_sq"));
  vox_cu_adamw_args c = adamw_args(p);
  return vox_cuda_status(vox_cu_adamw(vox_cuda_compute_stream(), vox_tensor_f32(a->in[0]), vox_tensor_f32(param),
                                      vox_tensor_f32(a->out[1]), vox_tensor_f32(a->out[2]), vox_tensor_numel(param), &c),
                         "adamw_step");
}
VOX_REGISTER_KERNEL(VOX_CUDA, ADAMW_STEP, cuda_adamw_step)

#define MULTI_CHUNK 16384 /* elements per block: few blocks per small tensor, many for large ones */

static vox_status cuda_adamw_multi_step(const vox_kernel_args *a) {
  const vox_adamw_multi_params *p = a->params;
  if (p->n <= 0) return VOX_OK;
  vox_cu_adamw_tensor *host = malloc(sizeof *host * (size_t)p->n);
  if (!host) return vox_errorf(VOX_ERR_NOMEM, "adamw_multi_step: out of host memory for %d records", p->n);
  int64_t blocks = 0;
  vox_status st = VOX_OK;
  for (int i = 0; i < p->n && st == VOX_OK; i++) {
    const vox_tensor *w = p->params[i];
    if (!w) {
      st = vox_errorf(VOX_ERR_INVALID, "adamw_multi_step: parameter %d is missing", i);
      break;
    }
    st = check_operand("adamw_multi_step", p->grads[i], w, "gradient");
    if (st == VOX_OK) st = check_operand("adamw_multi_step", w, w, "parameter");
    if (st == VOX_OK) st = check_operand("adamw_multi_step", p->exp_avg[i], w, "exp_avg");
    if (st == VOX_OK) st = check_operand("adamw_multi_step", p->exp_avg_sq[i], w, "exp_avg_sq");
    if (st != VOX_OK) {
      st = vox_error_context(st, "tensor %d: ", i);
      break;
    }
    int64_t n = vox_tensor_numel(w);
    host[i] = (vox_cu_adamw_tensor){.g = vox_tensor_f32(p->grads[i]), .w = vox_tensor_f32(w),
                                    .m = vox_tensor_f32(p->exp_avg[i]), .v = vox_tensor_f32(p->exp_avg_sq[i]),
                                    .n = n, .first_block = blocks,
                                    .decay = 1.0f - p->lr[i] * p->weight_decay[i],
                                    .step = p->lr[i] / p->bias_correction1};
    blocks += (n + MULTI_CHUNK - 1) / MULTI_CHUNK;
  }
  size_t nbytes = sizeof *host * (size_t)p->n;
  void *dev = NULL;
  if (st == VOX_OK) st = vox_cuda_scratch_alloc(nbytes, &dev);
  if (st == VOX_OK) {
    cudaStream_t s = vox_cuda_compute_stream();
    /* From pageable memory the copy is staged before it returns, so `host` may be freed right after. */
    cudaError_t e = cudaMemcpyAsync(dev, host, nbytes, cudaMemcpyHostToDevice, s);
    vox_cu_adamw_multi_args args = {.tensors = dev, .n_tensors = p->n, .n_blocks = blocks, .chunk = MULTI_CHUNK,
                                    .b1 = p->beta1, .b2 = p->beta2, .eps = p->eps, .grad_scale = p->grad_scale,
                                    .inv_sqrt_bc2 = 1.0f / sqrtf(p->bias_correction2)};
    if (e == cudaSuccess) e = vox_cu_adamw_multi(s, &args);
    vox_cuda_scratch_free(dev, nbytes);
    st = vox_cuda_status(e, "adamw_multi_step");
  }
  free(host);
  return st;
}
VOX_REGISTER_KERNEL(VOX_CUDA, ADAMW_MULTI_STEP, cuda_adamw_multi_step)

static vox_status cuda_sgd_step(const vox_kernel_args *a) {
  const vox_sgd_params *p = a->params;
  vox_tensor *param = a->out[0];
  bool has_buf = a->n_out > 1 && a->out[1];
  VOX_TRY(check_operand("sgd_step", a->in[0], param, "gradient"));
  VOX_TRY(check_operand("sgd_step", param, param, "parameter"));
  if (has_buf) VOX_TRY(check_operand("sgd_step", a->out[1], param, "momentum buffer"));
  if (p->momentum != 0.0f && !has_buf) return vox_errorf(VOX_ERR_INVALID, "sgd_step: momentum needs a buffer");
  return vox_cuda_status(vox_cu_sgd(vox_cuda_compute_stream(), vox_tensor_f32(a->in[0]), vox_tensor_f32(param),
                                    has_buf ? vox_tensor_f32(a->out[1]) : NULL, vox_tensor_numel(param), p->lr,
                                    p->momentum, p->weight_decay, p->grad_scale, p->nesterov),
                         "sgd_step");
}
VOX_REGISTER_KERNEL(VOX_CUDA, SGD_STEP, cuda_sgd_step)
