/* Runs the CUDA MATMUL host logic (src/backend/cuda/cuda_blas.c: layouts, transposes, batch folding, strided and
 * broadcast operands, beta) on the CPU: the "CUDA" device is host memory and every other kernel is the CPU one. */
#include <stdlib.h>
#include <string.h>
#include "core/backend.h"
#include "backend/cuda/cuda_blas.c"
static vox_status h_alloc(size_t n, void **p) { *p = malloc(n ? n : 1); return VOX_OK; }
static void h_free(void *p, size_t n) { free(p); }
static vox_status h_copy(void *d, const void *s, size_t n) { memcpy(d, s, n); return VOX_OK; }
static vox_status h_sync(void) { return VOX_OK; }
__attribute__((constructor(65535))) static void fake_cuda(void) {
  vox_backend *g = vox_backend_get(VOX_CUDA), *c = vox_backend_get(VOX_CPU);
  g->available = true; g->alloc = h_alloc; g->free = h_free; g->copy_to_host = h_copy; g->copy_from_host = h_copy; g->synchronize = h_sync;
  for (int k = 0; k < VOX_K_COUNT; k++) g->kernels[k] = c->kernels[k];
  g->kernels[VOX_K_MATMUL] = cuda_matmul;
}
