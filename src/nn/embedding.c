/* nn Embedding: registration, normal initialisation and the lookup through vox_op_embedding (whose backward
 * scatters into the table's gradient). */
#include "nn/embedding.h"

#include "core/ops.h"

vox_status vox_embedding_init(vox_embedding *e, vox_params *reg, const char *name, int num_embeddings, int dim,
                              double init_std, vox_rng *rng) {
  char buf[VOX_PARAM_NAME_MAX];
  *e = (vox_embedding){.num_embeddings = num_embeddings, .dim = dim};
  if (num_embeddings <= 0 || dim <= 0)
    return vox_errorf(VOX_ERR_INVALID, "embedding '%s': size %d x %d must be positive", name, num_embeddings, dim);
  VOX_TRY(vox_params_create(reg, vox_params_path(buf, sizeof buf, "%s.weight", name), VOX_CPU, 2,
                            (int64_t[]){num_embeddings, dim}, &e->weight));
  return vox_init_normal(e->weight, rng, 0.0, init_std);
}

vox_status vox_embedding_forward(const vox_embedding *e, vox_tensor *ids, vox_tensor **out) {
  return vox_op_embedding(e->weight, ids, out);
}
