/* Device helpers shared by the attention kernels: the mask rule (the visible key prefix of a query, exactly
 * as the CPU kernel computes it), element loads/stores for f32 and bf16, and warp reductions. */
#ifndef VOX_KERNELS_FLASH_ATTN_COMMON_CUH
#define VOX_KERNELS_FLASH_ATTN_COMMON_CUH

#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>

#include "flash_attn.h"

__device__ __forceinline__ int64_t fa_floor_div(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

/* Keys [0, end) are visible to query t of batch row b: every mask kind is a prefix of the keys. */
__device__ __forceinline__ int64_t fa_visible_end(const vox_fa_args &a, int64_t b, int64_t t) {
  int64_t hi = a.S;
  if (a.kv_lens) {
    int64_t l = a.kv_lens[b];
    if (l < hi) hi = l;
  }
  int64_t tp = t + a.causal_offset;
  if (a.chunk_size > 0) {
    int64_t end = (fa_floor_div(tp, a.chunk_size) + 1) * a.chunk_size;
    if (end < hi) hi = end;
  } else if (a.causal && tp + 1 < hi) {
    hi = tp + 1;
  }
  return hi < 0 ? 0 : hi;
}

template <typename T> __device__ __forceinline__ float fa_load(const T *p);
template <> __device__ __forceinline__ float fa_load<float>(const float *p) { return *p; }
template <> __device__ __forceinline__ float fa_load<__nv_bfloat16>(const __nv_bfloat16 *p) { return __bfloat162float(*p); }

template <typename T> __device__ __forceinline__ void fa_store(T *p, float v);
template <> __device__ __forceinline__ void fa_store<float>(float *p, float v) { *p = v; }
template <> __device__ __forceinline__ void fa_store<__nv_bfloat16>(__nv_bfloat16 *p, float v) { *p = __float2bfloat16_rn(v); }

__device__ __forceinline__ float fa_warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float fa_warp_max(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

#endif
