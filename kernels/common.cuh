/* Device helpers shared by vox's CUDA kernels: f32/bf16/i32 element loads and stores (bf16 rounding bit-identical
 * to core/dtype.h), strided-iterator offsets, warp/block reductions and the Philox generator of core/rng.c. */
#ifndef VOX_KERNELS_COMMON_CUH
#define VOX_KERNELS_COMMON_CUH

#include <cuda_runtime.h>
#include <stdint.h>

#include "backend/cuda/cuda_kernels.h"

#define VOX_CU_THREADS 256

/* Same rounding as vox_f32_to_bf16: round to nearest even, NaN made quiet by setting bit 6 of the payload. */
__device__ __forceinline__ uint16_t vox_cu_f32_to_bf16(float f) {
  uint32_t bits = __float_as_uint(f);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((bits >> 16) | 0x40u);
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return (uint16_t)(bits >> 16);
}
__device__ __forceinline__ float vox_cu_bf16_to_f32(uint16_t h) { return __uint_as_float((uint32_t)h << 16); }

__device__ __forceinline__ float vox_cu_load(const void *base, int dtype, int64_t i) {
  if (dtype == VOX_CU_F32) return ((const float *)base)[i];
  if (dtype == VOX_CU_BF16) return vox_cu_bf16_to_f32(((const uint16_t *)base)[i]);
  return (float)((const int32_t *)base)[i];
}
__device__ __forceinline__ void vox_cu_store(void *base, int dtype, int64_t i, float v) {
  if (dtype == VOX_CU_F32) ((float *)base)[i] = v;
  else if (dtype == VOX_CU_BF16) ((uint16_t *)base)[i] = vox_cu_f32_to_bf16(v);
  else ((int32_t *)base)[i] = (int32_t)v;
}

/* Element offsets of flat index i for the first n operands of an iterator. */
template <int N>
__device__ __forceinline__ void vox_cu_offsets(const vox_cu_iter &it, int64_t i, int64_t *off) {
#pragma unroll
  for (int k = 0; k < N; k++) off[k] = 0;
  if (it.ndim == 1) {
#pragma unroll
    for (int k = 0; k < N; k++) off[k] = i * it.strides[k][0];
    return;
  }
  for (int d = it.ndim - 1; d >= 0; d--) {
    int64_t c = i % it.shape[d];
    i /= it.shape[d];
#pragma unroll
    for (int k = 0; k < N; k++) off[k] += c * it.strides[k][d];
  }
}

/* Offset of flat index i in a strided view; of row r (all dims but the last) with vox_cu_row_offset. */
__device__ __forceinline__ int64_t vox_cu_flat_offset(const vox_cu_view &v, int64_t i) {
  int64_t off = 0;
  for (int d = v.ndim - 1; d >= 0; d--) {
    off += (i % v.shape[d]) * v.strides[d];
    i /= v.shape[d];
  }
  return off;
}
__device__ __forceinline__ int64_t vox_cu_row_offset(const vox_cu_view &v, int64_t r) {
  int64_t off = 0;
  for (int d = v.ndim - 2; d >= 0; d--) {
    off += (r % v.shape[d]) * v.strides[d];
    r /= v.shape[d];
  }
  return off;
}

/* Grid size for a grid-stride loop over n elements. */
static inline unsigned vox_cu_blocks(int64_t n, int threads = VOX_CU_THREADS) {
  int64_t b = (n + threads - 1) / threads;
  if (b < 1) b = 1;
  if (b > 65536) b = 65536;
  return (unsigned)b;
}
#define VOX_CU_GRID_LOOP(i, n) \
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (int64_t)gridDim.x * blockDim.x)

template <typename T>
__device__ __forceinline__ T vox_cu_warp_sum(T v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float vox_cu_warp_max(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

/* Sum over the whole block (blockDim.x a multiple of 32, at most 1024); every thread gets the result. `sh` holds
 * 32 values; the block must be converged. */
template <typename T>
__device__ __forceinline__ T vox_cu_block_sum(T v, T *sh) {
  int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
  v = vox_cu_warp_sum(v);
  __syncthreads(); /* sh may still be read from a previous call */
  if (lane == 0) sh[warp] = v;
  __syncthreads();
  T r = lane < nw ? sh[lane] : (T)0;
  return vox_cu_warp_sum(r);
}
__device__ __forceinline__ float vox_cu_block_max(float v, float *sh) {
  int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
  v = vox_cu_warp_max(v);
  __syncthreads();
  if (lane == 0) sh[warp] = v;
  __syncthreads();
  float r = lane < nw ? sh[lane] : -INFINITY;
  return vox_cu_warp_max(r);
}

/* Philox4x32-10, word for word as vox_philox4x32 in core/rng.c. */
__device__ __forceinline__ void vox_cu_philox(uint64_t seed, uint64_t counter, uint32_t out[4]) {
  uint32_t c0 = (uint32_t)counter, c1 = (uint32_t)(counter >> 32), c2 = 0, c3 = 0;
  uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
#pragma unroll
  for (int r = 0; r < 10; r++) {
    uint32_t hi0 = __umulhi(0xD2511F53u, c0), lo0 = 0xD2511F53u * c0;
    uint32_t hi1 = __umulhi(0xCD9E8D57u, c2), lo1 = 0xCD9E8D57u * c2;
    uint32_t n0 = hi1 ^ c1 ^ k0, n2 = hi0 ^ c3 ^ k1;
    c1 = lo1;
    c3 = lo0;
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
/* (x >> 8) * 2^-24 is exact in f32, so this equals vox_rng_uniform_at bit for bit. */
__device__ __forceinline__ float vox_cu_u32_to_unit(uint32_t x) { return __fmul_rn((float)(x >> 8), 1.0f / 16777216.0f); }
__device__ __forceinline__ float vox_cu_uniform_at(uint64_t seed, uint64_t index) {
  uint32_t r[4];
  vox_cu_philox(seed, index, r);
  return vox_cu_u32_to_unit(r[0]);
}

#endif
