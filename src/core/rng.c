/* Philox4x32-10 counter-based random numbers (Salmon et al., 2011) and tensor fills built on it.
 * Tensor fills go through the RNG kernel so CPU and CUDA give the same values. */
#include "core/rng.h"

#include <math.h>

#include "core/backend.h"
#include "core/kernel_params.h"

void vox_philox4x32(uint64_t seed, uint64_t counter, uint32_t out[4]) {
  uint32_t c0 = (uint32_t)counter, c1 = (uint32_t)(counter >> 32), c2 = 0, c3 = 0;
  uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
  for (int r = 0; r < 10; r++) {
    uint64_t p0 = (uint64_t)0xD2511F53u * c0, p1 = (uint64_t)0xCD9E8D57u * c2;
    uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0, n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
    c1 = (uint32_t)p1;
    c3 = (uint32_t)p0;
    c0 = n0;
    c2 = n2;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  out[0] = c0;
  out[1] = c1;
  out[2] = c2;
  out[3] = c3;
}

static float u32_to_unit(uint32_t x) { return (float)(x >> 8) * (1.0f / 16777216.0f); }

float vox_rng_uniform_at(uint64_t seed, uint64_t index) {
  uint32_t r[4];
  vox_philox4x32(seed, index, r);
  return u32_to_unit(r[0]);
}

float vox_rng_normal_at(uint64_t seed, uint64_t index) {
  uint32_t r[4];
  vox_philox4x32(seed, index, r);
  /* (0, 1]. The constant is 2^-24 spelt in hex, as in the CUDA kernel: nvcc folds 1.0f / 16777217.0f to a float
   * 2 ulp below it where C rounds the literal first. */
  float u1 = ((float)(r[0] >> 8) + 1.0f) * 0x1p-24f;
  float u2 = u32_to_unit(r[1]);
  return sqrtf(-2.0f * logf(u1)) * cosf(6.28318530717958647692f * u2);
}

static vox_status rng_fill(vox_rng *rng, vox_tensor *t, vox_rng_dist dist, double a, double b) {
  vox_rng_params p = {.seed = rng->seed, .offset = vox_rng_take(rng, (uint64_t)vox_tensor_numel(t)),
                      .dist = dist, .a = a, .b = b};
  vox_kernel_args args = {.n_out = 1, .out = {t}, .params = &p};
  return vox_kernel_run("rng", VOX_K_RNG, &args);
}

vox_status vox_rng_uniform_(vox_rng *rng, vox_tensor *t, double lo, double hi) {
  return rng_fill(rng, t, VOX_RNG_UNIFORM, lo, hi);
}
vox_status vox_rng_normal_(vox_rng *rng, vox_tensor *t, double mean, double std) {
  return rng_fill(rng, t, VOX_RNG_NORMAL, mean, std);
}

uint64_t vox_rng_next_u64(vox_rng *rng) {
  uint32_t r[4];
  vox_philox4x32(rng->seed, vox_rng_take(rng, 1), r);
  return ((uint64_t)r[0] << 32) | r[1];
}

double vox_rng_next_double(vox_rng *rng) { return (double)(vox_rng_next_u64(rng) >> 11) * (1.0 / 9007199254740992.0); }
