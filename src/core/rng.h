/* Counter-based RNG (Philox4x32-10): value i of a draw depends only on (seed, offset + i), so results are
 * the same for any thread count and on any device. A vox_rng hands out non-overlapping offset ranges. */
#ifndef VOX_CORE_RNG_H
#define VOX_CORE_RNG_H

#include <stdint.h>

#include "core/tensor.h"

typedef struct vox_rng {
  uint64_t seed;
  uint64_t offset; /* next unused counter */
} vox_rng;

static inline vox_rng vox_rng_make(uint64_t seed) { return (vox_rng){.seed = seed, .offset = 0}; }
/* Reserves n counters and returns the first. */
static inline uint64_t vox_rng_take(vox_rng *rng, uint64_t n) {
  uint64_t o = rng->offset;
  rng->offset += n;
  return o;
}

/* Philox4x32-10 block for (seed, counter): four uniform 32-bit words. Shared by CPU and CUDA kernels. */
void vox_philox4x32(uint64_t seed, uint64_t counter, uint32_t out[4]);
/* Uniform float in [0,1) from element index i of stream (seed, offset). */
float vox_rng_uniform_at(uint64_t seed, uint64_t index);
/* Standard normal from element index i (Box-Muller on two words of the same block). */
float vox_rng_normal_at(uint64_t seed, uint64_t index);

/* Fill t in place (contiguous f32/bf16) and advance rng by numel. */
vox_status vox_rng_uniform_(vox_rng *rng, vox_tensor *t, double lo, double hi);
vox_status vox_rng_normal_(vox_rng *rng, vox_tensor *t, double mean, double std);
/* Host-side scalar draws for data shuffling etc. */
uint64_t vox_rng_next_u64(vox_rng *rng);
double vox_rng_next_double(vox_rng *rng);

#endif
