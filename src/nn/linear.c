/* nn Linear: registration, PyTorch-default initialisation and the forward through vox_op_linear
 * (one GEMM with the bias fused by the op). */
#include "nn/linear.h"

#include <math.h>

#include "core/ops.h"
#include "nn/lora.h"

vox_status vox_linear_init(vox_linear *l, vox_params *reg, const char *name, int in_features, int out_features,
                           bool bias, vox_rng *rng) {
  char buf[VOX_PARAM_NAME_MAX];
  *l = (vox_linear){.in_features = in_features, .out_features = out_features};
  if (in_features <= 0 || out_features <= 0)
    return vox_errorf(VOX_ERR_INVALID, "linear '%s': features %d -> %d must be positive", name, in_features,
                      out_features);
  double k = 1.0 / sqrt((double)in_features);
  VOX_TRY(vox_params_create(reg, vox_params_path(buf, sizeof buf, "%s.weight", name), VOX_CPU,
                            2, (int64_t[]){out_features, in_features}, &l->weight));
  VOX_TRY(vox_init_uniform(l->weight, rng, -k, k));
  if (bias) {
    VOX_TRY(vox_params_create(reg, vox_params_path(buf, sizeof buf, "%s.bias", name), VOX_CPU, 1,
                              (int64_t[]){out_features}, &l->bias));
    VOX_TRY(vox_init_uniform(l->bias, rng, -k, k));
  }
  return vox_params_register_module(reg, name, "linear", l);
}

vox_status vox_linear_forward(const vox_linear *l, vox_tensor *x, vox_tensor **out) {
  if (l->lora) return vox_lora_forward(l, x, out);
  return vox_op_linear(x, l->weight, l->bias, out);
}
