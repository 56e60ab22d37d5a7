/* CPU optimizer kernels: ADAMW_STEP and SGD_STEP, each one fused pass over a contiguous f32 tensor that reads
 * the gradient once and updates parameter and state in place (the math of torch.optim.AdamW / SGD). */
#include <math.h>

#include "backend/cpu/cpu_iter.h"
#include "core/backend.h"
#include "core/kernel_params.h"

static vox_status check_operand(const char *op, const vox_tensor *t, const vox_tensor *param, const char *what) {
  char b1[96], b2[96];
  if (!t) return vox_errorf(VOX_ERR_INVALID, "%s: missing %s", op, what);
  if (t->dtype != VOX_F32 || !vox_tensor_is_contiguous(t) || !vox_tensor_same_shape(t, param))
    return vox_errorf(VOX_ERR_INVALID, "%s: %s %s must be contiguous f32 shaped like the parameter %s", op, what,
                      vox_tensor_describe(t, b1, sizeof b1), vox_tensor_describe(param, b2, sizeof b2));
  return VOX_OK;
}

static vox_status cpu_adamw_step(const vox_kernel_args *a) {
  const vox_adamw_params *p = a->params;
  vox_tensor *param = a->out[0];
  VOX_TRY(check_operand("adamw_step", a->in[0], param, "gradient"));
  VOX_TRY(check_operand("adamw_step", param, param, "parameter"));
  VOX_TRY(check_operand("adamw_step", a->out[1], param, "exp_avg"));
  VOX_TRY(check_operand("adamw_step", a->out[2], param, "exp_avg_sq"));
  const float *g = vox_tensor_f32(a->in[0]);
  float *w = vox_tensor_f32(param), *m = vox_tensor_f32(a->out[1]), *v = vox_tensor_f32(a->out[2]);
  int64_t n = vox_tensor_numel(param);
  const float b1 = p->beta1, b2 = p->beta2, gs = p->grad_scale, eps = p->eps;
  const float decay = 1.0f - p->lr * p->weight_decay;   /* decoupled: p *= 1 - lr*wd before the Adam update */
  const float step = p->lr / p->bias_correction1;
  const float inv_sqrt_bc2 = 1.0f / sqrtf(p->bias_correction2);
#pragma omp parallel for simd if (n > VOX_CPU_PARALLEL_MIN) num_threads(vox_num_threads())
  for (int64_t i = 0; i < n; i++) {
    float gi = g[i] * gs;
    float mi = b1 * m[i] + (1.0f - b1) * gi;
    float vi = b2 * v[i] + (1.0f - b2) * gi * gi;
    m[i] = mi;
    v[i] = vi;
    w[i] = w[i] * decay - step * mi / (sqrtf(vi) * inv_sqrt_bc2 + eps);
  }
  return VOX_OK;
}
VOX_REGISTER_KERNEL(VOX_CPU, ADAMW_STEP, cpu_adamw_step)

/* PyTorch SGD: g += wd * p (coupled L2); buf = momentum * buf + g; g = nesterov ? g + momentum * buf : buf;
 * p -= lr * g. A zero-initialised buffer makes the first step buf = g, as in PyTorch. */
static vox_status cpu_sgd_step(const vox_kernel_args *a) {
  const vox_sgd_params *p = a->params;
  vox_tensor *param = a->out[0];
  bool has_buf = a->n_out > 1 && a->out[1];
  VOX_TRY(check_operand("sgd_step", a->in[0], param, "gradient"));
  VOX_TRY(check_operand("sgd_step", param, param, "parameter"));
  if (has_buf) VOX_TRY(check_operand("sgd_step", a->out[1], param, "momentum buffer"));
  if (p->momentum != 0.0f && !has_buf) return vox_errorf(VOX_ERR_INVALID, "sgd_step: momentum needs a buffer");
  const float *g = vox_tensor_f32(a->in[0]);
  float *w = vox_tensor_f32(param), *buf = has_buf ? vox_tensor_f32(a->out[1]) : NULL;
  int64_t n = vox_tensor_numel(param);
  const float lr = p->lr, mu = p->momentum, wd = p->weight_decay, gs = p->grad_scale;
  const bool nesterov = p->nesterov;
#pragma omp parallel for if (n > VOX_CPU_PARALLEL_MIN) num_threads(vox_num_threads())
  for (int64_t i = 0; i < n; i++) {
    float gi = g[i] * gs + wd * w[i];
    if (buf) {
      float bi = mu * buf[i] + gi;
      buf[i] = bi;
      gi = nesterov ? gi + mu * bi : bi;
    }
    w[i] -= lr * gi;
  }
  return VOX_OK;
}
VOX_REGISTER_KERNEL(VOX_CPU, SGD_STEP, cpu_sgd_step)
