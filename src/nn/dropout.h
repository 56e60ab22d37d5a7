/* nn Dropout: inverted dropout with probability p while training, identity otherwise. Draws from the
 * caller's counter RNG, so a run (and a checkpointed recompute) is reproducible. */
#ifndef VOX_NN_DROPOUT_H
#define VOX_NN_DROPOUT_H

#include <stdbool.h>

#include "core/rng.h"
#include "core/tensor.h"

typedef struct vox_dropout {
  float p;
} vox_dropout;

/* out is a new reference to x itself when the dropout is inactive (p == 0 or !training). */
vox_status vox_dropout_forward(const vox_dropout *d, vox_tensor *x, bool training, vox_rng *rng, vox_tensor **out);

#endif
