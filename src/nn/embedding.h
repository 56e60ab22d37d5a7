/* nn Embedding: a [num, dim] table looked up by i32 ids, registered as "<name>.weight", N(0, std^2) init
 * (torch uses std 1; HF models use their initializer_range, e.g. 0.02). */
#ifndef VOX_NN_EMBEDDING_H
#define VOX_NN_EMBEDDING_H

#include "nn/module.h"

typedef struct vox_embedding {
  int num_embeddings, dim;
  vox_tensor *weight; /* borrowed */
} vox_embedding;

vox_status vox_embedding_init(vox_embedding *e, vox_params *reg, const char *name, int num_embeddings, int dim,
                              double init_std, vox_rng *rng);
/* ids i32 [...] -> [..., dim]. */
vox_status vox_embedding_forward(const vox_embedding *e, vox_tensor *ids, vox_tensor **out);

#endif
