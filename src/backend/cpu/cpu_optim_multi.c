/* CPU ADAMW_MULTI_STEP: the reference of the multi-tensor AdamW, one ADAMW_STEP per tensor with that tensor's lr
 * and weight decay, so its results are the per-tensor kernel's bit for bit (the CPU gains nothing from fusing). */
#include "core/backend.h"
#include "core/kernel_params.h"
#include "core/tensor.h"

static vox_status cpu_adamw_multi_step(const vox_kernel_args *a) {
  const vox_adamw_multi_params *p = a->params;
  vox_kernel_fn one = vox_backend_table(VOX_CPU)->kernels[VOX_K_ADAMW_STEP];
  if (!one) return vox_errorf(VOX_ERR_UNSUPPORTED, "adamw_multi_step: the cpu backend has no ADAMW_STEP kernel");
  for (int i = 0; i < p->n; i++) {
    const vox_tensor *ts[4] = {p->grads[i], p->params[i], p->exp_avg[i], p->exp_avg_sq[i]};
    for (int k = 0; k < 4; k++)
      if (!ts[k] || ts[k]->device != VOX_CPU)
        return vox_errorf(VOX_ERR_DEVICE, "adamw_multi_step: tensor %d operand %d is missing or not on the cpu", i, k);
    vox_adamw_params one_p = {.lr = p->lr[i], .beta1 = p->beta1, .beta2 = p->beta2, .eps = p->eps,
                              .weight_decay = p->weight_decay[i], .bias_correction1 = p->bias_correction1,
                              .bias_correction2 = p->bias_correction2, .grad_scale = p->grad_scale};
    vox_kernel_args args = {.n_in = 1, .n_out = 3, .in = {p->grads[i]},
                            .out = {p->params[i], p->exp_avg[i], p->exp_avg_sq[i]}, .params = &one_p};
    vox_status st = one(&args);
    if (st != VOX_OK) return vox_error_context(st, "adamw_multi_step tensor %d: ", i);
  }
  return VOX_OK;
}
VOX_REGISTER_KERNEL(VOX_CPU, ADAMW_MULTI_STEP, cpu_adamw_multi_step)
