/* FlashAttention-2 style backward for bf16, head dim 64 or 128: a block of 4 warps owns 64 keys of one
 * (batch, kv head) and accumulates their dK/dV in registers over every query head of the GQA group and every
 * 64-query tile (recomputing P from the saved lse); dQ is added with f32 atomics, then scaled and converted. */
#include "flash_attn_mma.cuh"

#define BWD_WARPS 4
#define BWD_N 64 /* keys per block (16 per warp) */
#define BWD_M 64 /* queries per tile */
#define BWD_SP (BWD_M + FA_PAD)

/* delta[b, h, t] = sum_d dO[t, d] * O[t, d] (f32): one warp per row. */
__global__ void fa_tc_delta(vox_fa_args a) {
  int64_t row = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) / 32;
  int lane = threadIdx.x % 32;
  if (row >= a.B * a.Hq * a.T) return;
  int64_t t = row % a.T, h = (row / a.T) % a.Hq, b = row / (a.T * a.Hq);
  const __nv_bfloat16 *o = (const __nv_bfloat16 *)a.o_in + b * a.o_str[0] + h * a.o_str[1] + t * a.o_str[2];
  const __nv_bfloat16 *g = (const __nv_bfloat16 *)a.dout + b * a.do_str[0] + h * a.do_str[1] + t * a.do_str[2];
  float s = 0.0f;
  for (int64_t d = lane; d < a.Dv; d += 32) s += __bfloat162float(o[d]) * __bfloat162float(g[d]);
  s = fa_warp_sum(s);
  if (lane == 0) a.delta[row] = s;
}

template <int D>
__global__ void __launch_bounds__(BWD_WARPS * 32) fa_tc_bwd(vox_fa_args a) {
  constexpr int P = D + FA_PAD, KSTEPS = D / 16, NT = BWD_M / 8, DT = D / 8;
  extern __shared__ __align__(16) unsigned char fa_smem[];
  __nv_bfloat16 *sk = reinterpret_cast<__nv_bfloat16 *>(fa_smem);
  __nv_bfloat16 *sv = sk + BWD_N * P, *sq = sv + BWD_N * P, *sdo = sq + BWD_M * P, *sds = sdo + BWD_M * P;
  float *slse = reinterpret_cast<float *>(sds + BWD_N * BWD_SP), *sdel = slse + BWD_M;
  long long *svis = reinterpret_cast<long long *>(sdel + BWD_M);
  const int64_t bh = blockIdx.x, b = bh / a.Hkv, hk = bh % a.Hkv, group = a.Hq / a.Hkv;
  const int64_t s_first = (int64_t)blockIdx.y * BWD_N;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, g = lane / 4, q4 = lane % 4;
  const __nv_bfloat16 *kg = (const __nv_bfloat16 *)a.k + b * a.k_str[0] + hk * a.k_str[1];
  const __nv_bfloat16 *vg = (const __nv_bfloat16 *)a.v + b * a.v_str[0] + hk * a.v_str[1];
  fa_copy_tile<D>(sk, kg, a.k_str[2], s_first, BWD_N, a.S);
  fa_copy_tile<D>(sv, vg, a.v_str[2], s_first, BWD_N, a.S);

  float dk[DT][4], dv[DT][4];
#pragma unroll
  for (int j = 0; j < DT; j++)
#pragma unroll
    for (int c = 0; c < 4; c++) dk[j][c] = dv[j][c] = 0.0f;
  /* This thread's keys: rows g and g + 8 of the warp's 16. */
  const int64_t key[2] = {s_first + warp * 16 + g, s_first + warp * 16 + g + 8};

  for (int64_t h = hk * group; h < (hk + 1) * group; h++) {
    const __nv_bfloat16 *qg = (const __nv_bfloat16 *)a.q + b * a.q_str[0] + h * a.q_str[1];
    const __nv_bfloat16 *dog = (const __nv_bfloat16 *)a.dout + b * a.do_str[0] + h * a.do_str[1];
    const int64_t row0 = (b * a.Hq + h) * a.T;
    for (int64_t t0 = 0; t0 < a.T; t0 += BWD_M) {
      /* Visible prefixes grow with t: skip tiles whose last query sees none of this block's keys. */
      if (fa_visible_end(a, b, min(t0 + BWD_M, a.T) - 1) <= s_first) continue;
      __syncthreads(); /* the previous tile's shared data is no longer read */
      fa_copy_tile<D>(sq, qg, a.q_str[2], t0, BWD_M, a.T);
      fa_copy_tile<D>(sdo, dog, a.do_str[2], t0, BWD_M, a.T);
      if (threadIdx.x < BWD_M) {
        int64_t t = t0 + threadIdx.x;
        float l = t < a.T ? a.lse_in[row0 + t] : -INFINITY;
        slse[threadIdx.x] = l;
        sdel[threadIdx.x] = t < a.T ? a.delta[row0 + t] : 0.0f;
        svis[threadIdx.x] = t < a.T && l != -INFINITY ? fa_visible_end(a, b, t) : 0;
      }
      __syncthreads();

      /* S^T = K Q^T and dP^T = V dO^T for the warp's 16 keys x 64 queries. */
      float st[NT][4], dpt[NT][4];
#pragma unroll
      for (int j = 0; j < NT; j++)
#pragma unroll
        for (int c = 0; c < 4; c++) st[j][c] = dpt[j][c] = 0.0f;
#pragma unroll
      for (int kk = 0; kk < KSTEPS; kk++) {
        uint32_t ka[4], va[4];
        fa_load_a(ka, sk, P, warp * 16, kk * 16, lane);
        fa_load_a(va, sv, P, warp * 16, kk * 16, lane);
#pragma unroll
        for (int j = 0; j < NT; j += 2) {
          uint32_t qb[4], gb[4];
          fa_load_b_nk(qb, sq, P, j * 8, kk * 16, lane);
          fa_load_b_nk(gb, sdo, P, j * 8, kk * 16, lane);
          fa_mma(st[j], ka, qb);
          fa_mma(st[j + 1], ka, qb + 2);
          fa_mma(dpt[j], va, gb);
          fa_mma(dpt[j + 1], va, gb + 2);
        }
      }
      /* P^T and dS^T = P^T (dP^T - delta); element c of n-tile j: key row g + 8*(c >> 1), query 8j + 2*q4 + (c & 1). */
#pragma unroll
      for (int j = 0; j < NT; j++)
#pragma unroll
        for (int c = 0; c < 4; c++) {
          int tl = j * 8 + 2 * q4 + (c & 1);
          float p = key[c >> 1] < svis[tl] ? expf(st[j][c] * a.scale - slse[tl]) : 0.0f;
          st[j][c] = p;
          dpt[j][c] = p * (dpt[j][c] - sdel[tl]);
        }
      /* dV += P^T dO and dK += dS^T Q (queries are the inner dim; Q and dO tiles read transposed). */
#pragma unroll
      for (int kk = 0; kk < BWD_M / 16; kk++) {
        uint32_t pa[4] = {fa_pack_bf16(st[2 * kk][0], st[2 * kk][1]), fa_pack_bf16(st[2 * kk][2], st[2 * kk][3]),
                          fa_pack_bf16(st[2 * kk + 1][0], st[2 * kk + 1][1]),
                          fa_pack_bf16(st[2 * kk + 1][2], st[2 * kk + 1][3])};
        uint32_t da[4] = {fa_pack_bf16(dpt[2 * kk][0], dpt[2 * kk][1]), fa_pack_bf16(dpt[2 * kk][2], dpt[2 * kk][3]),
                          fa_pack_bf16(dpt[2 * kk + 1][0], dpt[2 * kk + 1][1]),
                          fa_pack_bf16(dpt[2 * kk + 1][2], dpt[2 * kk + 1][3])};
#pragma unroll
        for (int j = 0; j < DT; j += 2) {
          uint32_t gb[4], qb[4];
          fa_load_b_kn(gb, sdo, P, j * 8, kk * 16, lane);
          fa_load_b_kn(qb, sq, P, j * 8, kk * 16, lane);
          fa_mma(dv[j], pa, gb);
          fa_mma(dv[j + 1], pa, gb + 2);
          fa_mma(dk[j], da, qb);
          fa_mma(dk[j + 1], da, qb + 2);
        }
        /* dS^T to shared memory (rows = keys) for the dQ product below. */
        int kr = warp * 16 + g;
        *reinterpret_cast<uint32_t *>(sds + kr * BWD_SP + kk * 16 + 2 * q4) = da[0];
        *reinterpret_cast<uint32_t *>(sds + (kr + 8) * BWD_SP + kk * 16 + 2 * q4) = da[1];
        *reinterpret_cast<uint32_t *>(sds + kr * BWD_SP + kk * 16 + 8 + 2 * q4) = da[2];
        *reinterpret_cast<uint32_t *>(sds + (kr + 8) * BWD_SP + kk * 16 + 8 + 2 * q4) = da[3];
      }
      __syncthreads();
      /* dQ (warp: 16 queries x D) += dS K over the block's 64 keys, added to the f32 buffer atomically. */
      float dq[DT][4];
#pragma unroll
      for (int j = 0; j < DT; j++) dq[j][0] = dq[j][1] = dq[j][2] = dq[j][3] = 0.0f;
#pragma unroll
      for (int kk = 0; kk < BWD_N / 16; kk++) {
        uint32_t sa[4];
        fa_load_a_trans(sa, sds, BWD_SP, warp * 16, kk * 16, lane);
#pragma unroll
        for (int j = 0; j < DT; j += 2) {
          uint32_t kb[4];
          fa_load_b_kn(kb, sk, P, j * 8, kk * 16, lane);
          fa_mma(dq[j], sa, kb);
          fa_mma(dq[j + 1], sa, kb + 2);
        }
      }
      if (a.dq) {
#pragma unroll
        for (int r = 0; r < 2; r++) {
          int64_t t = t0 + warp * 16 + g + 8 * r;
          if (t >= a.T) continue;
          float *row = a.dq_acc + (row0 + t) * D;
#pragma unroll
          for (int j = 0; j < DT; j++) {
            atomicAdd(row + j * 8 + 2 * q4, dq[j][2 * r]);
            atomicAdd(row + j * 8 + 2 * q4 + 1, dq[j][2 * r + 1]);
          }
        }
      }
    }
  }
#pragma unroll
  for (int r = 0; r < 2; r++) {
    if (key[r] >= a.S) continue;
    int64_t off = ((b * a.Hkv + hk) * a.S + key[r]) * D;
#pragma unroll
    for (int j = 0; j < DT; j++) {
      if (a.dk)
        *reinterpret_cast<__nv_bfloat162 *>((__nv_bfloat16 *)a.dk + off + j * 8 + 2 * q4) =
            __floats2bfloat162_rn(dk[j][2 * r] * a.scale, dk[j][2 * r + 1] * a.scale);
      if (a.dv)
        *reinterpret_cast<__nv_bfloat162 *>((__nv_bfloat16 *)a.dv + off + j * 8 + 2 * q4) =
            __floats2bfloat162_rn(dv[j][2 * r], dv[j][2 * r + 1]);
    }
  }
}

/* dq = bf16(scale * dq_acc) */
__global__ void fa_tc_dq_convert(vox_fa_args a, int64_t n) {
  int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) ((__nv_bfloat16 *)a.dq)[i] = __float2bfloat16_rn(a.dq_acc[i] * a.scale);
}

template <int D> static int tc_backward(const vox_fa_args *a, cudaStream_t st) {
  int64_t rows = a->B * a->Hq * a->T;
  if (rows > 0) {
    fa_tc_delta<<<(unsigned)((rows * 32 + 255) / 256), 256, 0, st>>>(*a);
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) return e;
  }
  if (a->B * a->Hkv * a->S > 0) {
    size_t smem = sizeof(__nv_bfloat16) * ((size_t)(2 * BWD_N + 2 * BWD_M) * (D + FA_PAD) + BWD_N * BWD_SP) +
                  sizeof(float) * 2 * BWD_M + sizeof(long long) * BWD_M;
    cudaError_t e = cudaFuncSetAttribute(fa_tc_bwd<D>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
    if (e != cudaSuccess) return e;
    dim3 grid((unsigned)(a->B * a->Hkv), (unsigned)((a->S + BWD_N - 1) / BWD_N));
    fa_tc_bwd<D><<<grid, BWD_WARPS * 32, smem, st>>>(*a);
    if ((e = cudaGetLastError()) != cudaSuccess) return e;
  }
  if (a->dq && rows > 0) {
    int64_t n = rows * a->D;
    fa_tc_dq_convert<<<(unsigned)((n + 255) / 256), 256, 0, st>>>(*a, n);
    return cudaGetLastError();
  }
  return cudaSuccess;
}

extern "C" int vox_fa_tc_backward(const vox_fa_args *a, void *stream) {
  return a->D == 64 ? tc_backward<64>(a, (cudaStream_t)stream) : tc_backward<128>(a, (cudaStream_t)stream);
}
