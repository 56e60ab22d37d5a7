/* nn Conv1d and ConvTranspose1d (PyTorch layouts: weight [Cout, Cin/groups, K] and [Cin, Cout/groups, K]),
 * registered as "<name>.weight"/"<name>.bias", initialised U(-1/sqrt(fan_in), 1/sqrt(fan_in)) like PyTorch. */
#ifndef VOX_NN_CONV_H
#define VOX_NN_CONV_H

#include <stdbool.h>

#include "nn/module.h"

typedef struct vox_conv1d_config {
  int in_channels, out_channels, kernel_size;
  int stride, padding, dilation, groups; /* 0 means the PyTorch default (1, 0, 1, 1) */
  int output_padding;                    /* transposed only */
  bool bias;
} vox_conv1d_config;

typedef struct vox_conv1d {
  vox_conv1d_config cfg;
  bool transposed;
  vox_tensor *weight, *bias; /* borrowed; bias NULL without */
} vox_conv1d;

vox_status vox_conv1d_init(vox_conv1d *c, vox_params *reg, const char *name, const vox_conv1d_config *cfg,
                           vox_rng *rng);
vox_status vox_conv_transpose1d_init(vox_conv1d *c, vox_params *reg, const char *name, const vox_conv1d_config *cfg,
                                     vox_rng *rng);
/* x [B, Cin, L] -> [B, Cout, L'] (either direction, by how c was built). */
vox_status vox_conv1d_forward(const vox_conv1d *c, vox_tensor *x, vox_tensor **out);

#endif
