/* CUDA kernels that move or create data: strided copy with f32/bf16/i32 conversion, fill with a bit pattern, and
 * the counter-based RNG (values identical to the CPU's for the same seed and counter). */
#include "common.cuh"

/* Same dtype: raw element moves (bf16 bits kept, so a copy never changes a NaN payload). */
template <typename T>
__global__ void copy_same_kernel(vox_cu_iter it) {
  const T *src = (const T *)it.data[1];
  T *dst = (T *)it.data[0];
  VOX_CU_GRID_LOOP(i, it.numel) {
    int64_t off[2];
    vox_cu_offsets<2>(it, i, off);
    dst[off[0]] = src[off[1]];
  }
}

__global__ void copy_cast_kernel(vox_cu_iter it) {
  int dt = it.dtype[0], st = it.dtype[1];
  VOX_CU_GRID_LOOP(i, it.numel) {
    int64_t off[2];
    vox_cu_offsets<2>(it, i, off);
    if (dt == VOX_CU_I32 && st == VOX_CU_I32) ((int32_t *)it.data[0])[off[0]] = ((const int32_t *)it.data[1])[off[1]];
    else vox_cu_store(it.data[0], dt, off[0], vox_cu_load(it.data[1], st, off[1]));
  }
}

extern "C" cudaError_t vox_cu_copy(cudaStream_t s, const vox_cu_iter *it) {
  if (it->numel == 0) return cudaSuccess;
  unsigned g = vox_cu_blocks(it->numel);
  if (it->dtype[0] == it->dtype[1]) {
    if (it->dtype[0] == VOX_CU_BF16) copy_same_kernel<uint16_t><<<g, VOX_CU_THREADS, 0, s>>>(*it);
    else copy_same_kernel<uint32_t><<<g, VOX_CU_THREADS, 0, s>>>(*it);
  } else {
    copy_cast_kernel<<<g, VOX_CU_THREADS, 0, s>>>(*it);
  }
  return cudaGetLastError();
}

template <typename T>
__global__ void fill_kernel(vox_cu_iter it, T v) {
  T *dst = (T *)it.data[0];
  VOX_CU_GRID_LOOP(i, it.numel) {
    int64_t off[1];
    vox_cu_offsets<1>(it, i, off);
    dst[off[0]] = v;
  }
}

extern "C" cudaError_t vox_cu_fill(cudaStream_t s, const vox_cu_iter *it, uint32_t bits) {
  if (it->numel == 0) return cudaSuccess;
  unsigned g = vox_cu_blocks(it->numel);
  if (it->dtype[0] == VOX_CU_BF16) fill_kernel<uint16_t><<<g, VOX_CU_THREADS, 0, s>>>(*it, (uint16_t)bits);
  else fill_kernel<uint32_t><<<g, VOX_CU_THREADS, 0, s>>>(*it, bits);
  return cudaGetLastError();
}

/* uniform: a + (b - a) * u and normal: a + b * z are formed in double as the CPU does; gcc contracts them into
 * one fused multiply-add on x86-64-v3 (-ffp-contract=fast), so fma() here gives the same double. The normal
 * draw's log and cos are evaluated in double and rounded, which equals glibc's logf/cosf except where those are
 * not correctly rounded (a last-bit difference on a small share of values). */
__global__ void rng_kernel(void *out, int dtype, int64_t n, uint64_t seed, uint64_t offset, int dist, double a,
                           double b) {
  VOX_CU_GRID_LOOP(i, n) {
    uint64_t idx = offset + (uint64_t)i;
    float v;
    if (dist == 0) {
      v = (float)fma(b - a, (double)vox_cu_uniform_at(seed, idx), a);
    } else if (dist == 1) {
      uint32_t r[4];
      vox_cu_philox(seed, idx, r);
      float u1 = __fmul_rn(__fadd_rn((float)(r[0] >> 8), 1.0f), 0x1p-24f); /* the CPU's constant, exactly */
      float u2 = vox_cu_u32_to_unit(r[1]);
      float lg = (float)log((double)u1);
      float cs = (float)cos((double)__fmul_rn(6.28318530717958647692f, u2));
      float z = __fmul_rn(__fsqrt_rn(__fmul_rn(-2.0f, lg)), cs);
      v = (float)fma(b, (double)z, a);
    } else {
      v = vox_cu_uniform_at(seed, idx) < a ? 1.0f : 0.0f;
    }
    if (dtype == VOX_CU_F32) ((float *)out)[i] = v;
    else ((uint16_t *)out)[i] = vox_cu_f32_to_bf16(v);
  }
}

extern "C" cudaError_t vox_cu_rng(cudaStream_t s, void *out, int dtype, int64_t n, uint64_t seed, uint64_t offset,
                                  int dist, double a, double b) {
  if (n == 0) return cudaSuccess;
  rng_kernel<<<vox_cu_blocks(n), VOX_CU_THREADS, 0, s>>>(out, dtype, n, seed, offset, dist, a, b);
  return cudaGetLastError();
}
