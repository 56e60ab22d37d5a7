/* A parameter-registry subtree in Hugging Face form (module prefix vox_hf_): loading model.safetensors or a sharded
 * model.safetensors.index.json directory into vox_params, all-or-nothing, and saving it back (sharded or not). */
#ifndef VOX_IO_HF_WEIGHTS_H
#define VOX_IO_HF_WEIGHTS_H

#include <stdbool.h>
#include <stddef.h>

#include "core/tensor.h"
#include "nn/module.h"

/* Maps a tensor name in the file to a parameter name below the prefix, written into buf (cap bytes); returns buf
 * (or any string that lives until the next call), or NULL to skip the tensor. */
typedef const char *(*vox_hf_rename_fn)(const char *file_name, char *buf, size_t cap, void *ctx);

typedef struct vox_hf_load_opts {
  bool strict;                          /* tensors in the files that map to no parameter are errors (else warnings) */
  const char *const *ignore_missing;    /* NULL-terminated globs of parameters that may stay unloaded (e.g. a tied
                                           lm_head); matched against the full name and the name below the prefix */
  const char *const *ignore_unexpected; /* NULL-terminated globs of file tensor names to skip silently */
  vox_hf_rename_fn rename;
  void *rename_ctx;                     /* file name -> name below prefix; NULL = identity */
  /* Row selection (a vocabulary subset): file tensors matching row_globs load only rows[0..n_rows) of their first
   * dimension, in that order, into a parameter of n_rows rows; a row past the file's is an error naming both. */
  const char *const *row_globs;
  const int32_t *rows;
  int32_t n_rows;
} vox_hf_load_opts;

/* path: a directory holding model.safetensors or model.safetensors.index.json (sharded; preferred when both are
 * there), a *.safetensors.index.json file, or a .safetensors file. opts NULL = strict, no globs, identity names.
 * Parameter name = prefix + (renamed) file name. Checks ALL tensors first (missing / unexpected / mis-shaped /
 * unreadable dtype, each listed by name with shapes, in one error message) and only then copies anything: nothing
 * loads half-way. Copies convert into each parameter's own dtype and device; requires_grad is left alone. */
vox_status vox_hf_load_params(vox_params *reg, const char *prefix, const char *path, const vox_hf_load_opts *opts);

/* Saves every parameter whose name starts with prefix (prefix stripped) to dir/model.safetensors, or, when
 * shard_bytes > 0 and the total exceeds it, to shards of at most shard_bytes (a larger single tensor gets a shard of
 * its own) as model-0000K-of-0000N.safetensors + model.safetensors.index.json (HF layout: "metadata.total_size" and
 * "weight_map" sorted by name). Parameters are packed into shards in registration order. Files carry the metadata
 * {"format": "pt"} that transformers checks. `dir` is created when missing; weight files of an earlier save in
 * another layout (model.safetensors, model-*-of-*.safetensors, the index) are removed after the new ones are in
 * place. on_disk: VOX_F32 or VOX_BF16. */
vox_status vox_hf_save_params(const vox_params *reg, const char *prefix, const char *dir, vox_dtype on_disk,
                              size_t shard_bytes);

#endif
