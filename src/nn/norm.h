/* nn norms over the last dim: RMSNorm (weight only, as Qwen2/LLaMA) and LayerNorm (weight and optional bias),
 * registered as "<name>.weight" (+ "<name>.bias"), initialised to ones / zeros like PyTorch. */
#ifndef VOX_NN_NORM_H
#define VOX_NN_NORM_H

#include <stdbool.h>

#include "nn/module.h"

typedef struct vox_rms_norm {
  int dim;
  float eps;
  vox_tensor *weight; /* borrowed */
} vox_rms_norm;

typedef struct vox_layer_norm {
  int dim;
  float eps;
  vox_tensor *weight, *bias; /* borrowed; bias NULL when built without */
} vox_layer_norm;

vox_status vox_rms_norm_init(vox_rms_norm *n, vox_params *reg, const char *name, int dim, float eps);
vox_status vox_rms_norm_forward(const vox_rms_norm *n, vox_tensor *x, vox_tensor **out);
vox_status vox_layer_norm_init(vox_layer_norm *n, vox_params *reg, const char *name, int dim, float eps, bool bias);
vox_status vox_layer_norm_forward(const vox_layer_norm *n, vox_tensor *x, vox_tensor **out);

#endif
