/* nn Conv1d / ConvTranspose1d: config defaults, shape checks at build time, PyTorch initialisation (fan_in is
 * weight.shape[1] * K for both, as torch computes it) and forwards through the conv ops. */
#include "nn/conv.h"

#include <math.h>

#include "core/ops.h"

static vox_status conv_init(vox_conv1d *c, vox_params *reg, const char *name, const vox_conv1d_config *cfg,
                            bool transposed, vox_rng *rng) {
  char buf[VOX_PARAM_NAME_MAX];
  c->cfg = *cfg;
  c->transposed = transposed;
  c->weight = c->bias = NULL;
  vox_conv1d_config *k = &c->cfg;
  if (k->stride <= 0) k->stride = 1;
  if (k->dilation <= 0) k->dilation = 1;
  if (k->groups <= 0) k->groups = 1;
  if (k->in_channels <= 0 || k->out_channels <= 0 || k->kernel_size <= 0 || k->padding < 0 ||
      k->in_channels % k->groups || k->out_channels % k->groups)
    return vox_errorf(VOX_ERR_INVALID,
                      "conv1d '%s': in %d, out %d, kernel %d, padding %d, groups %d: channels must be positive and "
                      "divisible by groups",
                      name, k->in_channels, k->out_channels, k->kernel_size, k->padding, k->groups);
  int64_t shape[3];
  if (transposed) shape[0] = k->in_channels, shape[1] = k->out_channels / k->groups;
  else shape[0] = k->out_channels, shape[1] = k->in_channels / k->groups;
  shape[2] = k->kernel_size;
  double bound = 1.0 / sqrt((double)(shape[1] * shape[2]));
  VOX_TRY(vox_params_create(reg, vox_params_path(buf, sizeof buf, "%s.weight", name), VOX_CPU, 3, shape, &c->weight));
  VOX_TRY(vox_init_uniform(c->weight, rng, -bound, bound));
  if (k->bias) {
    VOX_TRY(vox_params_create(reg, vox_params_path(buf, sizeof buf, "%s.bias", name), VOX_CPU, 1,
                              (int64_t[]){k->out_channels}, &c->bias));
    VOX_TRY(vox_init_uniform(c->bias, rng, -bound, bound));
  }
  return VOX_OK;
}

vox_status vox_conv1d_init(vox_conv1d *c, vox_params *reg, const char *name, const vox_conv1d_config *cfg,
                           vox_rng *rng) {
  return conv_init(c, reg, name, cfg, false, rng);
}

vox_status vox_conv_transpose1d_init(vox_conv1d *c, vox_params *reg, const char *name, const vox_conv1d_config *cfg,
                                     vox_rng *rng) {
  return conv_init(c, reg, name, cfg, true, rng);
}

vox_status vox_conv1d_forward(const vox_conv1d *c, vox_tensor *x, vox_tensor **out) {
  const vox_conv1d_config *k = &c->cfg;
  if (c->transposed)
    return vox_op_conv_transpose1d(x, c->weight, c->bias, k->stride, k->padding, k->output_padding, k->dilation,
                                   k->groups, out);
  return vox_op_conv1d(x, c->weight, c->bias, k->stride, k->padding, k->dilation, k->groups, out);
}
