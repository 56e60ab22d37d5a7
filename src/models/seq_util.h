/* Small helpers shared by the speech-LLM parts (module prefix vox_seq_): host copies of per-row lengths, padding
 * masks and i32 index tensors built on the host and moved to the device of the data they index. */
#ifndef VOX_MODELS_SEQ_UTIL_H
#define VOX_MODELS_SEQ_UTIL_H

#include <stdint.h>

#include "core/tensor.h"

/* lengths i32 [B] (any device) into a malloc'd host array (caller frees); NULL lengths give T for every row.
 * Every length must lie in [0, T]. */
vox_status vox_seq_lengths_host(const vox_tensor *lengths, int64_t B, int64_t T, const char *what, int32_t **out);
/* i32 [B, T, 1] on `device`: 1 where t >= lens[b] (padding), else 0. */
vox_status vox_seq_pad_mask(const int32_t *lens, int64_t B, int64_t T, vox_device device, vox_tensor **out);
/* An i32 tensor of the given shape from host values, on `device`. */
vox_status vox_seq_i32(const int32_t *values, int ndim, const int64_t *shape, vox_device device, vox_tensor **out);

/* Rows of x (viewed as [N, d], all leading dims flattened) picked by host indices: out [shape..., d] where shape
 * is (ndim, dims). Differentiable in x (through the embedding op: a gather forward, a scatter-add backward). */
vox_status vox_seq_gather_rows(vox_tensor *x, const int32_t *rows, int ndim, const int64_t *dims, vox_tensor **out);

#endif
