/* nn RMSNorm and LayerNorm: parameter registration (ones/zeros) and forwards through the fused norm ops,
 * which keep statistics in f32. */
#include "nn/norm.h"

#include "core/ops.h"

vox_status vox_rms_norm_init(vox_rms_norm *n, vox_params *reg, const char *name, int dim, float eps) {
  char buf[VOX_PARAM_NAME_MAX];
  *n = (vox_rms_norm){.dim = dim, .eps = eps};
  if (dim <= 0) return vox_errorf(VOX_ERR_INVALID, "rms_norm '%s': dim %d must be positive", name, dim);
  VOX_TRY(vox_params_create(reg, vox_params_path(buf, sizeof buf, "%s.weight", name), VOX_CPU, 1, (int64_t[]){dim},
                            &n->weight));
  return vox_init_constant(n->weight, 1.0);
}

vox_status vox_rms_norm_forward(const vox_rms_norm *n, vox_tensor *x, vox_tensor **out) {
  return vox_op_rms_norm(x, n->weight, n->eps, out);
}

vox_status vox_layer_norm_init(vox_layer_norm *n, vox_params *reg, const char *name, int dim, float eps, bool bias) {
  char buf[VOX_PARAM_NAME_MAX];
  *n = (vox_layer_norm){.dim = dim, .eps = eps};
  if (dim <= 0) return vox_errorf(VOX_ERR_INVALID, "layer_norm '%s': dim %d must be positive", name, dim);
  VOX_TRY(vox_params_create(reg, vox_params_path(buf, sizeof buf, "%s.weight", name), VOX_CPU, 1, (int64_t[]){dim},
                            &n->weight));
  VOX_TRY(vox_init_constant(n->weight, 1.0));
  if (bias) {
    VOX_TRY(vox_params_create(reg, vox_params_path(buf, sizeof buf, "%s.bias", name), VOX_CPU, 1, (int64_t[]){dim},
                              &n->bias));
    VOX_TRY(vox_init_constant(n->bias, 0.0));
  }
  return VOX_OK;
}

vox_status vox_layer_norm_forward(const vox_layer_norm *n, vox_tensor *x, vox_tensor **out) {
  return vox_op_layer_norm(x, n->weight, n->bias, n->eps, out);
}
