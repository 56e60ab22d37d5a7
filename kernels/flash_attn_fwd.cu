/* FlashAttention-2 style forward for bf16, head dim 64 or 128: a block of 4 warps owns 64 query rows (16 per
 * warp, Q fragments kept in registers), streams 64-key K/V tiles through shared memory, computes S = QK^T and
 * O += PV with mma.sync m16n8k16 and keeps the softmax online in f32 (running max and sum per row). */
#include "flash_attn_mma.cuh"

#define FWD_WARPS 4
#define FWD_M 64 /* query rows per block */
#define FWD_N 64 /* keys per tile */

template <int D>
__global__ void __launch_bounds__(FWD_WARPS * 32) fa_tc_fwd(vox_fa_args a) {
  constexpr int P = D + FA_PAD, KSTEPS = D / 16, NT = FWD_N / 8, DT = D / 8;
  extern __shared__ __align__(16) unsigned char fa_smem[];
  __nv_bfloat16 *sq = reinterpret_cast<__nv_bfloat16 *>(fa_smem);
  __nv_bfloat16 *sk = sq + FWD_M * P, *sv = sk + FWD_N * P;
  const int64_t bh = blockIdx.x, b = bh / a.Hq, h = bh % a.Hq, hk = h / (a.Hq / a.Hkv);
  const int64_t t0 = (int64_t)blockIdx.y * FWD_M;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, g = lane / 4, q4 = lane % 4;
  const __nv_bfloat16 *qg = (const __nv_bfloat16 *)a.q + b * a.q_str[0] + h * a.q_str[1];
  const __nv_bfloat16 *kg = (const __nv_bfloat16 *)a.k + b * a.k_str[0] + hk * a.k_str[1];
  const __nv_bfloat16 *vg = (const __nv_bfloat16 *)a.v + b * a.v_str[0] + hk * a.v_str[1];

  fa_copy_tile<D>(sq, qg, a.q_str[2], t0, FWD_M, a.T);
  __syncthreads();
  uint32_t qf[KSTEPS][4];
#pragma unroll
  for (int kk = 0; kk < KSTEPS; kk++) fa_load_a(qf[kk], sq, P, warp * 16, kk * 16, lane);

  /* This thread's two rows: g and g + 8 of the warp's 16. */
  const int64_t tr[2] = {t0 + warp * 16 + g, t0 + warp * 16 + g + 8};
  int64_t hi[2];
#pragma unroll
  for (int r = 0; r < 2; r++) hi[r] = tr[r] < a.T ? fa_visible_end(a, b, tr[r]) : 0;
  /* Visible prefixes grow with t, so the block's last row bounds the keys any row needs. */
  const int64_t send = fa_visible_end(a, b, min(t0 + FWD_M, a.T) - 1);

  float o[DT][4], m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};
#pragma unroll
  for (int j = 0; j < DT; j++) o[j][0] = o[j][1] = o[j][2] = o[j][3] = 0.0f;

  for (int64_t s0 = 0; s0 < send; s0 += FWD_N) {
    __syncthreads(); /* previous tile fully consumed */
    fa_copy_tile<D>(sk, kg, a.k_str[2], s0, FWD_N, a.S);
    fa_copy_tile<D>(sv, vg, a.v_str[2], s0, FWD_N, a.S);
    __syncthreads();
    if (__all_sync(0xffffffffu, hi[0] <= s0 && hi[1] <= s0)) continue; /* the warp's rows see none of it */

    float s[NT][4];
#pragma unroll
    for (int j = 0; j < NT; j++) s[j][0] = s[j][1] = s[j][2] = s[j][3] = 0.0f;
#pragma unroll
    for (int kk = 0; kk < KSTEPS; kk++) {
#pragma unroll
      for (int j = 0; j < NT; j += 2) {
        uint32_t kb[4];
        fa_load_b_nk(kb, sk, P, j * 8, kk * 16, lane);
        fa_mma(s[j], qf[kk], kb);
        fa_mma(s[j + 1], qf[kk], kb + 2);
      }
    }
    /* Scale, mask (element c of n-tile j is key s0 + 8j + 2*q4 + (c & 1), row g + 8*(c >> 1)), row max. */
    float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
    for (int j = 0; j < NT; j++)
#pragma unroll
      for (int c = 0; c < 4; c++) {
        int64_t key = s0 + j * 8 + 2 * q4 + (c & 1);
        float v = key < hi[c >> 1] ? s[j][c] * a.scale : -INFINITY;
        s[j][c] = v;
        mx[c >> 1] = fmaxf(mx[c >> 1], v);
      }
    float corr[2], mu[2];
#pragma unroll
    for (int r = 0; r < 2; r++) {
      mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 1));
      mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 2));
      float mnew = fmaxf(m[r], mx[r]);
      mu[r] = mnew == -INFINITY ? 0.0f : mnew; /* a row with nothing visible yet keeps p = 0, no NaN */
      corr[r] = expf(m[r] - mu[r]);
      m[r] = mnew;
    }
    float rs[2] = {0.0f, 0.0f};
#pragma unroll
    for (int j = 0; j < NT; j++)
#pragma unroll
      for (int c = 0; c < 4; c++) {
        float p = expf(s[j][c] - mu[c >> 1]);
        s[j][c] = p;
        rs[c >> 1] += p;
      }
#pragma unroll
    for (int r = 0; r < 2; r++) {
      rs[r] += __shfl_xor_sync(0xffffffffu, rs[r], 1);
      rs[r] += __shfl_xor_sync(0xffffffffu, rs[r], 2);
      l[r] = l[r] * corr[r] + rs[r];
    }
#pragma unroll
    for (int j = 0; j < DT; j++) {
      o[j][0] *= corr[0];
      o[j][1] *= corr[0];
      o[j][2] *= corr[1];
      o[j][3] *= corr[1];
    }
    /* O += P V: the S accumulators of n-tiles 2kk, 2kk+1 are exactly the A fragment of k-step kk. */
#pragma unroll
    for (int kk = 0; kk < FWD_N / 16; kk++) {
      uint32_t pa[4] = {fa_pack_bf16(s[2 * kk][0], s[2 * kk][1]), fa_pack_bf16(s[2 * kk][2], s[2 * kk][3]),
                        fa_pack_bf16(s[2 * kk + 1][0], s[2 * kk + 1][1]),
                        fa_pack_bf16(s[2 * kk + 1][2], s[2 * kk + 1][3])};
#pragma unroll
      for (int j = 0; j < DT; j += 2) {
        uint32_t vb[4];
        fa_load_b_kn(vb, sv, P, j * 8, kk * 16, lane);
        fa_mma(o[j], pa, vb);
        fa_mma(o[j + 1], pa, vb + 2);
      }
    }
  }

  /* Normalise and write this thread's pairs of features; lse from the quad's first thread. */
#pragma unroll
  for (int r = 0; r < 2; r++) {
    if (tr[r] >= a.T) continue;
    float inv = l[r] > 0.0f ? 1.0f / l[r] : 0.0f;
    __nv_bfloat16 *orow = (__nv_bfloat16 *)a.o + ((b * a.Hq + h) * a.T + tr[r]) * D;
#pragma unroll
    for (int j = 0; j < DT; j++)
      *reinterpret_cast<__nv_bfloat162 *>(orow + j * 8 + 2 * q4) =
          __floats2bfloat162_rn(o[j][2 * r] * inv, o[j][2 * r + 1] * inv);
    if (q4 == 0) a.lse[(b * a.Hq + h) * a.T + tr[r]] = l[r] > 0.0f ? m[r] + logf(l[r]) : -INFINITY;
  }
}

static bool aligned16(const void *p) { return ((uintptr_t)p & 15) == 0; }
static bool rows16(const int64_t *s) { return s[0] % 8 == 0 && s[1] % 8 == 0 && s[2] % 8 == 0; }

extern "C" int vox_fa_tc_supported(const vox_fa_args *a, int backward) {
  if (!a->bf16 || a->bias || a->D != a->Dv || (a->D != 64 && a->D != 128)) return 0;
  if (!aligned16(a->q) || !aligned16(a->k) || !aligned16(a->v) || !rows16(a->q_str) || !rows16(a->k_str) ||
      !rows16(a->v_str))
    return 0;
  if (!backward) return aligned16(a->o);
  return aligned16(a->o_in) && aligned16(a->dout) && rows16(a->o_str) && rows16(a->do_str) &&
         (!a->dq || aligned16(a->dq)) && (!a->dk || aligned16(a->dk)) && (!a->dv || aligned16(a->dv));
}

template <int D> static int tc_forward(const vox_fa_args *a, cudaStream_t st) {
  size_t smem = sizeof(__nv_bfloat16) * (size_t)(FWD_M + 2 * FWD_N) * (D + FA_PAD);
  cudaError_t e = cudaFuncSetAttribute(fa_tc_fwd<D>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
  if (e != cudaSuccess) return e;
  dim3 grid((unsigned)(a->B * a->Hq), (unsigned)((a->T + FWD_M - 1) / FWD_M));
  fa_tc_fwd<D><<<grid, FWD_WARPS * 32, smem, st>>>(*a);
  return cudaGetLastError();
}

extern "C" int vox_fa_tc_forward(const vox_fa_args *a, void *stream) {
  if (a->B * a->Hq * a->T == 0) return cudaSuccess;
  return a->D == 64 ? tc_forward<64>(a, (cudaStream_t)stream) : tc_forward<128>(a, (cudaStream_t)stream);
}
