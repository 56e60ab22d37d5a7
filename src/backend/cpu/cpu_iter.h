/* Strided iteration for CPU kernels: coalesces the dims of up to four operands that share a shape, then hands
 * out tiles (an outer index and a run of the innermost dim) that OpenMP threads process independently. */
#ifndef VOX_BACKEND_CPU_ITER_H
#define VOX_BACKEND_CPU_ITER_H

#include <stdint.h>

#include "core/tensor.h"

#define VOX_CPU_ITER_MAX_OPS 4
#define VOX_CPU_ITER_TILE 4096
/* Below this many elements, kernels run on one thread (thread start-up costs more than the work). */
#define VOX_CPU_PARALLEL_MIN 32768

typedef struct vox_cpu_iter {
  int ndim, n_ops;
  int64_t shape[VOX_MAX_DIMS];
  int64_t strides[VOX_CPU_ITER_MAX_OPS][VOX_MAX_DIMS];
  int64_t inner, outer, tiles_per_row, numel;
} vox_cpu_iter;

/* All operands are viewed with `shape` (broadcast operands carry stride 0). Operand 0 is usually the output. */
static inline void vox_cpu_iter_init(vox_cpu_iter *it, int ndim, const int64_t *shape, int n_ops,
                                     const vox_tensor *const *ops) {
  it->n_ops = n_ops;
  it->numel = 1;
  for (int d = 0; d < ndim; d++) it->numel *= shape[d];
  /* Drop size-1 dims, then merge neighbours that are contiguous for every operand. */
  int n = 0;
  for (int d = 0; d < ndim; d++) {
    if (shape[d] == 1) continue;
    if (n > 0) {
      bool merge = true;
      for (int k = 0; k < n_ops; k++)
        if (it->strides[k][n - 1] != ops[k]->strides[d] * shape[d]) merge = false;
      if (merge) {
        it->shape[n - 1] *= shape[d];
        for (int k = 0; k < n_ops; k++) it->strides[k][n - 1] = ops[k]->strides[d];
        continue;
      }
    }
    it->shape[n] = shape[d];
    for (int k = 0; k < n_ops; k++) it->strides[k][n] = ops[k]->strides[d];
    n++;
  }
  if (n == 0) {
    it->shape[0] = 1;
    for (int k = 0; k < n_ops; k++) it->strides[k][0] = 1;
    n = 1;
  }
  it->ndim = n;
  it->inner = it->shape[n - 1];
  it->outer = it->inner ? it->numel / it->inner : 0;
  it->tiles_per_row = (it->inner + VOX_CPU_ITER_TILE - 1) / VOX_CPU_ITER_TILE;
}

static inline int64_t vox_cpu_iter_tiles(const vox_cpu_iter *it) { return it->outer * it->tiles_per_row; }

/* Element offsets of operand k for the first element of `tile`, the run length, and the inner strides. */
static inline int64_t vox_cpu_iter_tile(const vox_cpu_iter *it, int64_t tile, int64_t *offsets) {
  int64_t row = tile / it->tiles_per_row, start = (tile % it->tiles_per_row) * VOX_CPU_ITER_TILE;
  for (int k = 0; k < it->n_ops; k++) offsets[k] = start * it->strides[k][it->ndim - 1];
  int64_t rem = row;
  for (int d = it->ndim - 2; d >= 0; d--) {
    int64_t i = rem % it->shape[d];
    rem /= it->shape[d];
    for (int k = 0; k < it->n_ops; k++) offsets[k] += i * it->strides[k][d];
  }
  int64_t len = it->inner - start;
  return len < VOX_CPU_ITER_TILE ? len : VOX_CPU_ITER_TILE;
}

static inline int64_t vox_cpu_iter_inner_stride(const vox_cpu_iter *it, int k) { return it->strides[k][it->ndim - 1]; }

#endif
