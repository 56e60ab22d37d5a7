/* nn Dropout: skips the op entirely when inactive (no copy, no autograd node), else vox_op_dropout. */
#include "nn/dropout.h"

#include "core/ops.h"

vox_status vox_dropout_forward(const vox_dropout *d, vox_tensor *x, bool training, vox_rng *rng, vox_tensor **out) {
  if (!(d->p >= 0.0f && d->p < 1.0f))
    return vox_errorf(VOX_ERR_INVALID, "dropout: p = %g must lie in [0, 1)", d->p);
  if (!training || d->p == 0.0f) {
    *out = vox_tensor_retain(x);
    return VOX_OK;
  }
  if (!rng) return vox_errorf(VOX_ERR_INVALID, "dropout: training with p = %g needs an rng", d->p);
  return vox_op_dropout(x, d->p, training, rng, out);
}
