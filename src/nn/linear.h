/* nn Linear: y = x W^T + b with W [out, in] (PyTorch/HF layout), registered as "<name>.weight"/"<name>.bias".
 * Initialised like torch.nn.Linear: U(-1/sqrt(in), 1/sqrt(in)) for both. */
#ifndef VOX_NN_LINEAR_H
#define VOX_NN_LINEAR_H

#include <stdbool.h>

#include "nn/module.h"

struct vox_lora;

typedef struct vox_linear {
  int in_features, out_features;
  vox_tensor *weight; /* borrowed from the registry */
  vox_tensor *bias;   /* NULL without bias */
  struct vox_lora *lora; /* LoRA adapter (nn/lora.h) or NULL; owned by the registry */
} vox_linear;

/* Registers the parameters and the Linear itself under `name` (vox_params_register_module), so LoRA can find
 * it by glob: the struct must therefore stay at its address for the registry's lifetime. */
vox_status vox_linear_init(vox_linear *l, vox_params *reg, const char *name, int in_features, int out_features,
                           bool bias, vox_rng *rng);
/* x [..., in] -> [..., out]; with a LoRA adapter attached, base(x) + its low-rank update (nn/lora.h). */
vox_status vox_linear_forward(const vox_linear *l, vox_tensor *x, vox_tensor **out);

#endif
