/* Simple CUDA attention kernels for every case (f32 or bf16, head dims up to 256, additive bias): online
 * softmax with K/V tiles in shared memory and scalar f32 FMAs; the backward runs without atomics in three
 * passes (rowsum(dO*O); dQ per query row; dK/dV per key summed over its query-head group). */
#include "flash_attn_common.cuh"

#define REF_THREADS 128
#define REF_WARPS (REF_THREADS / 32)
#define REF_ROWS 16            /* query rows (forward, dQ) or keys (dK/dV) per block: 4 per warp */
#define REF_PER_WARP (REF_ROWS / REF_WARPS)
#define REF_TILE 32            /* keys (forward, dQ) or queries (dK/dV) per shared-memory tile: one per lane */
#define REF_VEC (VOX_FA_REF_MAX_D / 32) /* features per lane */

/* Element (t, d) of a [rows, features] matrix of one (batch, head). */
template <typename T>
__device__ __forceinline__ float at(const void *base, const int64_t *str, int64_t b, int64_t h, int64_t t, int64_t d) {
  return fa_load((const T *)base + b * str[0] + h * str[1] + t * str[2] + d);
}

__device__ __forceinline__ float bias_at(const vox_fa_args &a, int64_t b, int64_t h, int64_t t, int64_t s) {
  return a.bias[b * a.bias_str[0] + h * a.bias_str[1] + t * a.bias_str[2] + s * a.bias_str[3]];
}

/* Loads rows [r0, r0 + n) of one (batch, head) matrix as f32 into dst with row pitch `pitch` (zero past `rows`). */
template <typename T>
__device__ void load_rows(float *dst, int pitch, const void *base, const int64_t *str, int64_t b, int64_t h,
                          int64_t r0, int n, int64_t rows, int64_t feat) {
  for (int64_t i = threadIdx.x; i < (int64_t)n * feat; i += blockDim.x) {
    int64_t r = i / feat, d = i % feat;
    dst[r * pitch + d] = r0 + r < rows ? at<T>(base, str, b, h, r0 + r, d) : 0.0f;
  }
}

/* ---- forward ------------------------------------------------------------------------------------------ */

template <typename T>
__global__ void __launch_bounds__(REF_THREADS) fa_ref_fwd(vox_fa_args a) {
  extern __shared__ float sm[];
  const int D = (int)a.D, Dv = (int)a.Dv, Dp = D + 1, Dvp = Dv + 1;
  float *sq = sm, *sk = sq + REF_ROWS * D, *sv = sk + REF_TILE * Dp;
  const int64_t bh = blockIdx.x, b = bh / a.Hq, h = bh % a.Hq, hk = h / (a.Hq / a.Hkv);
  const int64_t t0 = (int64_t)blockIdx.y * REF_ROWS;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  load_rows<T>(sq, D, a.q, a.q_str, b, h, t0, REF_ROWS, a.T, D);
  int64_t send = 0, hi[REF_PER_WARP];
  for (int r = 0; r < REF_ROWS; r++)
    if (t0 + r < a.T) send = max(send, fa_visible_end(a, b, t0 + r));
  float m[REF_PER_WARP], l[REF_PER_WARP], acc[REF_PER_WARP][REF_VEC];
#pragma unroll
  for (int i = 0; i < REF_PER_WARP; i++) {
    int64_t t = t0 + warp * REF_PER_WARP + i;
    hi[i] = t < a.T ? fa_visible_end(a, b, t) : 0;
    m[i] = -INFINITY;
    l[i] = 0.0f;
#pragma unroll
    for (int v = 0; v < REF_VEC; v++) acc[i][v] = 0.0f;
  }
  for (int64_t s0 = 0; s0 < send; s0 += REF_TILE) {
    __syncthreads();
    load_rows<T>(sk, Dp, a.k, a.k_str, b, hk, s0, REF_TILE, a.S, D);
    load_rows<T>(sv, Dvp, a.v, a.v_str, b, hk, s0, REF_TILE, a.S, Dv);
    __syncthreads();
#pragma unroll
    for (int i = 0; i < REF_PER_WARP; i++) {
      if (hi[i] <= s0) continue; /* warp-uniform */
      const int r = warp * REF_PER_WARP + i;
      const int64_t s = s0 + lane;
      float sc = -INFINITY;
      if (s < hi[i]) {
        float dot = 0.0f;
        for (int d = 0; d < D; d++) dot += sq[r * D + d] * sk[lane * Dp + d];
        sc = dot * a.scale;
        if (a.bias) sc += bias_at(a, b, h, t0 + r, s);
      }
      float mnew = fmaxf(m[i], fa_warp_max(sc));
      if (mnew == -INFINITY) continue; /* nothing visible so far (warp-uniform) */
      float p = sc == -INFINITY ? 0.0f : expf(sc - mnew);
      float corr = m[i] == -INFINITY ? 0.0f : expf(m[i] - mnew);
      l[i] = l[i] * corr + fa_warp_sum(p);
#pragma unroll
      for (int v = 0; v < REF_VEC; v++) acc[i][v] *= corr;
      for (int j = 0; j < REF_TILE; j++) {
        float pj = __shfl_sync(0xffffffffu, p, j);
        if (pj == 0.0f) continue;
#pragma unroll
        for (int v = 0; v < REF_VEC; v++) {
          int d = lane + 32 * v;
          if (d < Dv) acc[i][v] += pj * sv[j * Dvp + d];
        }
      }
      m[i] = mnew;
    }
  }
#pragma unroll
  for (int i = 0; i < REF_PER_WARP; i++) {
    int64_t t = t0 + warp * REF_PER_WARP + i;
    if (t >= a.T) continue;
    float inv = l[i] > 0.0f ? 1.0f / l[i] : 0.0f;
    T *orow = (T *)a.o + ((b * a.Hq + h) * a.T + t) * Dv;
#pragma unroll
    for (int v = 0; v < REF_VEC; v++) {
      int d = lane + 32 * v;
      if (d < Dv) fa_store(orow + d, acc[i][v] * inv);
    }
    if (lane == 0) a.lse[(b * a.Hq + h) * a.T + t] = l[i] > 0.0f ? m[i] + logf(l[i]) : -INFINITY;
  }
}

/* ---- backward ----------------------------------------------------------------------------------------- */

/* delta[b, h, t] = sum_d dO[t, d] * O[t, d]: one warp per row. */
template <typename T>
__global__ void fa_ref_delta(vox_fa_args a) {
  int64_t row = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) / 32;
  int lane = threadIdx.x % 32;
  if (row >= a.B * a.Hq * a.T) return;
  int64_t t = row % a.T, h = (row / a.T) % a.Hq, b = row / (a.T * a.Hq);
  float s = 0.0f;
  for (int64_t d = lane; d < a.Dv; d += 32) s += at<T>(a.dout, a.do_str, b, h, t, d) * at<T>(a.o_in, a.o_str, b, h, t, d);
  s = fa_warp_sum(s);
  if (lane == 0) a.delta[row] = s;
}

/* dQ[t] = scale * sum_s P[t,s] (dO[t].V[s] - delta[t]) K[s], with P recomputed from the saved lse. */
template <typename T>
__global__ void __launch_bounds__(REF_THREADS) fa_ref_dq(vox_fa_args a) {
  extern __shared__ float sm[];
  const int D = (int)a.D, Dv = (int)a.Dv, Dp = D + 1, Dvp = Dv + 1;
  float *sq = sm, *sdo = sq + REF_ROWS * D, *sk = sdo + REF_ROWS * Dv, *sv = sk + REF_TILE * Dp;
  const int64_t bh = blockIdx.x, b = bh / a.Hq, h = bh % a.Hq, hk = h / (a.Hq / a.Hkv);
  const int64_t t0 = (int64_t)blockIdx.y * REF_ROWS;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  load_rows<T>(sq, D, a.q, a.q_str, b, h, t0, REF_ROWS, a.T, D);
  load_rows<T>(sdo, Dv, a.dout, a.do_str, b, h, t0, REF_ROWS, a.T, Dv);
  int64_t send = 0, hi[REF_PER_WARP];
  for (int r = 0; r < REF_ROWS; r++)
    if (t0 + r < a.T) send = max(send, fa_visible_end(a, b, t0 + r));
  float lse[REF_PER_WARP], del[REF_PER_WARP], acc[REF_PER_WARP][REF_VEC];
#pragma unroll
  for (int i = 0; i < REF_PER_WARP; i++) {
    int64_t t = t0 + warp * REF_PER_WARP + i;
    hi[i] = t < a.T ? fa_visible_end(a, b, t) : 0;
    lse[i] = t < a.T ? a.lse_in[(b * a.Hq + h) * a.T + t] : -INFINITY;
    del[i] = t < a.T ? a.delta[(b * a.Hq + h) * a.T + t] : 0.0f;
    if (lse[i] == -INFINITY) hi[i] = 0;
#pragma unroll
    for (int v = 0; v < REF_VEC; v++) acc[i][v] = 0.0f;
  }
  for (int64_t s0 = 0; s0 < send; s0 += REF_TILE) {
    __syncthreads();
    load_rows<T>(sk, Dp, a.k, a.k_str, b, hk, s0, REF_TILE, a.S, D);
    load_rows<T>(sv, Dvp, a.v, a.v_str, b, hk, s0, REF_TILE, a.S, Dv);
    __syncthreads();
#pragma unroll
    for (int i = 0; i < REF_PER_WARP; i++) {
      if (hi[i] <= s0) continue;
      const int r = warp * REF_PER_WARP + i;
      const int64_t s = s0 + lane;
      float ds = 0.0f;
      if (s < hi[i]) {
        float dot = 0.0f;
        for (int d = 0; d < D; d++) dot += sq[r * D + d] * sk[lane * Dp + d];
        float sc = dot * a.scale;
        if (a.bias) sc += bias_at(a, b, h, t0 + r, s);
        float p = sc == -INFINITY ? 0.0f : expf(sc - lse[i]);
        if (p != 0.0f) {
          float dp = 0.0f;
          for (int d = 0; d < Dv; d++) dp += sdo[r * Dv + d] * sv[lane * Dvp + d];
          ds = p * (dp - del[i]);
        }
      }
      for (int j = 0; j < REF_TILE; j++) {
        float dj = __shfl_sync(0xffffffffu, ds, j);
        if (dj == 0.0f) continue;
#pragma unroll
        for (int v = 0; v < REF_VEC; v++) {
          int d = lane + 32 * v;
          if (d < D) acc[i][v] += dj * sk[j * Dp + d];
        }
      }
    }
  }
#pragma unroll
  for (int i = 0; i < REF_PER_WARP; i++) {
    int64_t t = t0 + warp * REF_PER_WARP + i;
    if (t >= a.T) continue;
    T *row = (T *)a.dq + ((b * a.Hq + h) * a.T + t) * D;
#pragma unroll
    for (int v = 0; v < REF_VEC; v++) {
      int d = lane + 32 * v;
      if (d < D) fa_store(row + d, acc[i][v] * a.scale);
    }
  }
}

/* dV[s] = sum_{h in group, t} P[t,s] dO[t]; dK[s] = scale * sum P[t,s] (dO[t].V[s] - delta[t]) Q[t].
 * A block owns 16 keys of one (batch, kv head), so the group sum needs no atomics. */
template <typename T>
__global__ void __launch_bounds__(REF_THREADS) fa_ref_dkv(vox_fa_args a) {
  extern __shared__ float sm[];
  const int D = (int)a.D, Dv = (int)a.Dv, Dp = D + 1, Dvp = Dv + 1;
  float *sk = sm, *sv = sk + REF_ROWS * D, *sq = sv + REF_ROWS * Dv, *sdo = sq + REF_TILE * Dp,
        *slse = sdo + REF_TILE * Dvp, *sdel = slse + REF_TILE;
  const int64_t bh = blockIdx.x, b = bh / a.Hkv, hk = bh % a.Hkv, group = a.Hq / a.Hkv;
  const int64_t s_first = (int64_t)blockIdx.y * REF_ROWS;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  load_rows<T>(sk, D, a.k, a.k_str, b, hk, s_first, REF_ROWS, a.S, D);
  load_rows<T>(sv, Dv, a.v, a.v_str, b, hk, s_first, REF_ROWS, a.S, Dv);
  float dk[REF_PER_WARP][REF_VEC], dv[REF_PER_WARP][REF_VEC];
#pragma unroll
  for (int i = 0; i < REF_PER_WARP; i++)
#pragma unroll
    for (int v = 0; v < REF_VEC; v++) dk[i][v] = dv[i][v] = 0.0f;
  for (int64_t h = hk * group; h < (hk + 1) * group; h++) {
    for (int64_t t0 = 0; t0 < a.T; t0 += REF_TILE) {
      /* Visible prefixes grow with t: a tile whose last query sees none of these keys is skipped whole. */
      int64_t tl = min(t0 + REF_TILE, a.T) - 1;
      if (fa_visible_end(a, b, tl) <= s_first) continue;
      __syncthreads();
      load_rows<T>(sq, Dp, a.q, a.q_str, b, h, t0, REF_TILE, a.T, D);
      load_rows<T>(sdo, Dvp, a.dout, a.do_str, b, h, t0, REF_TILE, a.T, Dv);
      if (threadIdx.x < REF_TILE) {
        int64_t t = t0 + threadIdx.x;
        slse[threadIdx.x] = t < a.T ? a.lse_in[(b * a.Hq + h) * a.T + t] : -INFINITY;
        sdel[threadIdx.x] = t < a.T ? a.delta[(b * a.Hq + h) * a.T + t] : 0.0f;
      }
      __syncthreads();
      const int64_t t = t0 + lane;
      const int64_t hi = t < a.T ? fa_visible_end(a, b, t) : 0;
#pragma unroll
      for (int i = 0; i < REF_PER_WARP; i++) {
        const int kr = warp * REF_PER_WARP + i;
        const int64_t s = s_first + kr;
        float p = 0.0f, ds = 0.0f;
        if (s < hi && slse[lane] != -INFINITY) {
          float dot = 0.0f;
          for (int d = 0; d < D; d++) dot += sq[lane * Dp + d] * sk[kr * D + d];
          float sc = dot * a.scale;
          if (a.bias) sc += bias_at(a, b, h, t, s);
          p = sc == -INFINITY ? 0.0f : expf(sc - slse[lane]);
          if (p != 0.0f) {
            float dp = 0.0f;
            for (int d = 0; d < Dv; d++) dp += sdo[lane * Dvp + d] * sv[kr * Dv + d];
            ds = p * (dp - sdel[lane]);
          }
        }
        for (int j = 0; j < REF_TILE; j++) {
          float pj = __shfl_sync(0xffffffffu, p, j), dj = __shfl_sync(0xffffffffu, ds, j);
          if (pj == 0.0f) continue; /* ds is zero wherever p is */
#pragma unroll
          for (int v = 0; v < REF_VEC; v++) {
            int d = lane + 32 * v;
            if (d < Dv) dv[i][v] += pj * sdo[j * Dvp + d];
            if (d < D) dk[i][v] += dj * sq[j * Dp + d];
          }
        }
      }
    }
  }
#pragma unroll
  for (int i = 0; i < REF_PER_WARP; i++) {
    int64_t s = s_first + warp * REF_PER_WARP + i;
    if (s >= a.S) continue;
    T *krow = a.dk ? (T *)a.dk + ((b * a.Hkv + hk) * a.S + s) * D : NULL;
    T *vrow = a.dv ? (T *)a.dv + ((b * a.Hkv + hk) * a.S + s) * Dv : NULL;
#pragma unroll
    for (int v = 0; v < REF_VEC; v++) {
      int d = lane + 32 * v;
      if (krow && d < D) fa_store(krow + d, dk[i][v] * a.scale);
      if (vrow && d < Dv) fa_store(vrow + d, dv[i][v]);
    }
  }
}

/* ---- launchers ---------------------------------------------------------------------------------------- */

template <typename K>
static cudaError_t launch(K kernel, dim3 grid, size_t smem, cudaStream_t stream, const vox_fa_args &a) {
  if (smem > 48 * 1024) {
    cudaError_t e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
    if (e != cudaSuccess) return e;
  }
  kernel<<<grid, REF_THREADS, smem, stream>>>(a);
  return cudaGetLastError();
}

template <typename T> static cudaError_t ref_forward(const vox_fa_args *a, cudaStream_t st) {
  size_t smem = sizeof(float) * (REF_ROWS * a->D + REF_TILE * (a->D + 1) + REF_TILE * (a->Dv + 1));
  dim3 grid((unsigned)(a->B * a->Hq), (unsigned)((a->T + REF_ROWS - 1) / REF_ROWS));
  return launch(fa_ref_fwd<T>, grid, smem, st, *a);
}

template <typename T> static cudaError_t ref_backward(const vox_fa_args *a, cudaStream_t st) {
  int64_t rows = a->B * a->Hq * a->T;
  cudaError_t e;
  if (rows > 0) {
    fa_ref_delta<T><<<(unsigned)((rows * 32 + 255) / 256), 256, 0, st>>>(*a);
    if ((e = cudaGetLastError()) != cudaSuccess) return e;
  }
  if (a->dq && rows > 0) {
    size_t smem = sizeof(float) * (REF_ROWS * (a->D + a->Dv) + REF_TILE * (a->D + 1) + REF_TILE * (a->Dv + 1));
    dim3 grid((unsigned)(a->B * a->Hq), (unsigned)((a->T + REF_ROWS - 1) / REF_ROWS));
    if ((e = launch(fa_ref_dq<T>, grid, smem, st, *a)) != cudaSuccess) return e;
  }
  if ((a->dk || a->dv) && a->B * a->Hkv * a->S > 0) {
    size_t smem =
        sizeof(float) * (REF_ROWS * (a->D + a->Dv) + REF_TILE * (a->D + 1) + REF_TILE * (a->Dv + 1) + 2 * REF_TILE);
    dim3 grid((unsigned)(a->B * a->Hkv), (unsigned)((a->S + REF_ROWS - 1) / REF_ROWS));
    if ((e = launch(fa_ref_dkv<T>, grid, smem, st, *a)) != cudaSuccess) return e;
  }
  return cudaSuccess;
}

extern "C" int vox_fa_ref_forward(const vox_fa_args *a, void *stream) {
  if (a->B * a->Hq * a->T == 0) return cudaSuccess;
  return a->bf16 ? ref_forward<__nv_bfloat16>(a, (cudaStream_t)stream) : ref_forward<float>(a, (cudaStream_t)stream);
}

extern "C" int vox_fa_ref_backward(const vox_fa_args *a, void *stream) {
  return a->bf16 ? ref_backward<__nv_bfloat16>(a, (cudaStream_t)stream) : ref_backward<float>(a, (cudaStream_t)stream);
}
