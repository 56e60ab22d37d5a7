/* CUDA CTC loss: a warp-per-frame log-softmax, then one block per batch row running the alpha (forward) or beta
 * (backward) recursion over the extended label positions, one frame per step with __syncthreads between steps.
 * The recursions run in double (as the CPU kernels do): at |log alpha| ~ 10^3, f32 would cost ~1e-4 in gradient. */
#include "common.cuh"

#define CTC_MAX_THREADS 1024

/* log(exp(a) + exp(b)) without ever forming -inf - -inf. */
__device__ __forceinline__ double ctc_lse2(double a, double b) {
  if (a == -INFINITY) return b;
  if (b == -INFINITY) return a;
  return fmax(a, b) + log1p(exp(-fabs(a - b)));
}

__device__ __forceinline__ int32_t ctc_label(const int32_t *lab, int64_t s, int32_t blank) {
  return (s & 1) ? lab[(s - 1) / 2] : blank;
}

/* The row's log-likelihood from its final-frame alphas (paths end on the last label or the trailing blank). */
template <typename F>
__device__ __forceinline__ double ctc_row_ll(const F *a_last, int32_t Tb, int32_t L) {
  if (Tb == 0) return L == 0 ? 0.0 : -INFINITY;
  int64_t E = 2 * (int64_t)L + 1;
  double ll = a_last[E - 1];
  return E >= 2 ? ctc_lse2(ll, a_last[E - 2]) : ll;
}

/* One warp per frame row of C logits (grid-stride over the rows). */
__global__ void ctc_log_softmax_kernel(const void *x, int x_dtype, float *logp, int64_t rows, int64_t C) {
  int lane = threadIdx.x & 31;
  int64_t warps = ((int64_t)gridDim.x * blockDim.x) >> 5;
  for (int64_t r = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) >> 5; r < rows; r += warps) {
    int64_t o = r * C;
    float m = -INFINITY;
    for (int64_t c = lane; c < C; c += 32) m = fmaxf(m, vox_cu_load(x, x_dtype, o + c));
    m = vox_cu_warp_max(m);
    float s = 0.0f;
    for (int64_t c = lane; c < C; c += 32) s += expf(vox_cu_load(x, x_dtype, o + c) - m);
    s = vox_cu_warp_sum(s);
    float lse = m + logf(s);
    for (int64_t c = lane; c < C; c += 32) logp[o + c] = vox_cu_load(x, x_dtype, o + c) - lse;
  }
}

/* alpha_t(s) = lse(alpha_{t-1}(s), alpha_{t-1}(s-1), [skip] alpha_{t-1}(s-2)) + logp_t(l'(s)); frames past the row's
 * length and positions past 2L+1 stay -inf. The recursion reads and writes double frames in `work` (two per row);
 * alpha keeps an f32 copy for the backward. Global writes are visible to the block after __syncthreads. */
/* Launched with up to CTC_MAX_THREADS threads: the bound keeps the registers within one block's register file. */
__global__ void __launch_bounds__(CTC_MAX_THREADS)
    ctc_alpha_kernel(const float *logp, const int32_t *targets, const int32_t *in_lens, const int32_t *tg_lens,
                     float *loss, float *alpha, double *work, int64_t T, int64_t C, int64_t S, int32_t blank) {
  int64_t b = blockIdx.x, ext = 2 * S + 1;
  int32_t Tb = in_lens[b], L = tg_lens[b];
  int64_t E = 2 * (int64_t)L + 1;
  const int32_t *lab = targets + b * S;
  const float *lp = logp + b * T * C;
  float *a = alpha + b * T * ext;
  double *w = work + b * 2 * ext;
  for (int64_t i = threadIdx.x; i < T * ext; i += blockDim.x) a[i] = -INFINITY;
  for (int64_t t = 0; t < Tb; t++) {
    const double *p = w + ((t + 1) & 1) * ext;
    double *cur = w + (t & 1) * ext;
    for (int64_t s = threadIdx.x; s < E; s += blockDim.x) {
      int32_t l = ctc_label(lab, s, blank);
      double v;
      if (t == 0) {
        v = s < 2 ? 0.0 : -INFINITY;
      } else {
        v = p[s];
        if (s >= 1) v = ctc_lse2(v, p[s - 1]);
        if (s >= 2 && (s & 1) && l != lab[(s - 3) / 2]) v = ctc_lse2(v, p[s - 2]);
      }
      cur[s] = v == -INFINITY ? -INFINITY : v + lp[t * C + l];
    }
    __syncthreads(); /* every thread's frame t is written; the -inf fill above is ordered before the copy too */
    for (int64_t s = threadIdx.x; s < E; s += blockDim.x) a[t * ext + s] = (float)cur[s];
  }
  if (threadIdx.x == 0) {
    double ll = ctc_row_ll(w + ((Tb > 0 ? Tb - 1 : 0) & 1) * ext, Tb, L);
    loss[b] = isfinite(ll) ? (float)-ll : 0.0f; /* zero_infinity */
  }
}

/* dx[b,t,c] = g_b * (exp(logp_t(c)) - sum_{s: l'(s)=c} exp(alpha_t(s) + beta_t(s) - ll_b)), beta_t(s) excluding frame
 * t's emission. beta lives in scratch (two frames per row); first[j] names the first position of label lab[j], whose
 * thread owns that label's sum (repeated labels add into one class, deterministically). */
__global__ void __launch_bounds__(CTC_MAX_THREADS)
    ctc_beta_kernel(const float *logp, const int32_t *targets, const int32_t *in_lens, const int32_t *tg_lens,
                    const float *alpha, const void *dloss, int dloss_dtype, void *dx, int dx_dtype, double *beta_buf,
                    int32_t *first_buf, int64_t T, int64_t C, int64_t S, int32_t blank) {
  __shared__ double sh[32];
  int64_t b = blockIdx.x, ext = 2 * S + 1;
  int32_t Tb = in_lens[b], L = tg_lens[b];
  int64_t E = 2 * (int64_t)L + 1;
  const int32_t *lab = targets + b * S;
  const float *lp = logp + b * T * C, *a = alpha + b * T * ext;
  double *beta = beta_buf + b * 2 * ext;
  int32_t *first = first_buf + b * S;
  int64_t xo = b * T * C;
  double ll = ctc_row_ll(a + (Tb > 0 ? Tb - 1 : 0) * ext, Tb, L);
  float g = vox_cu_load(dloss, dloss_dtype, b);
  int64_t live = isfinite(ll) && g != 0.0f ? Tb : 0; /* frames [live, T) get a zero gradient */
  for (int64_t i = live * C + threadIdx.x; i < T * C; i += blockDim.x) vox_cu_store(dx, dx_dtype, xo + i, 0.0f);
  if (live == 0) return;
  for (int64_t j = threadIdx.x; j < L; j += blockDim.x) {
    int32_t f = (int32_t)j;
    for (int64_t k = 0; k < j; k++)
      if (lab[k] == lab[j]) {
        f = (int32_t)k;
        break;
      }
    first[j] = f;
  }
  for (int64_t t = Tb - 1; t >= 0; t--) {
    double *cur = beta + (t & 1) * ext;
    const double *next = beta + ((t + 1) & 1) * ext;
    const float *lq = lp + (t + 1) * C;
    for (int64_t s = threadIdx.x; s < E; s += blockDim.x) {
      if (t == Tb - 1) {
        cur[s] = s >= E - 2 ? 0.0 : -INFINITY;
        continue;
      }
      int32_t l = ctc_label(lab, s, blank);
      double v = next[s] == -INFINITY ? -INFINITY : next[s] + lq[l];
      if (s + 1 < E && next[s + 1] != -INFINITY) v = ctc_lse2(v, next[s + 1] + lq[ctc_label(lab, s + 1, blank)]);
      if (s + 2 < E && (s & 1) && lab[(s + 1) / 2] != l && next[s + 2] != -INFINITY)
        v = ctc_lse2(v, next[s + 2] + lq[lab[(s + 1) / 2]]);
      cur[s] = v;
    }
    __syncthreads(); /* beta_t and first[] complete */
    const float *at = a + t * ext, *lt = lp + t * C;
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x) vox_cu_store(dx, dx_dtype, xo + t * C + c, g * expf(lt[c]));
    double qb = 0.0;
    for (int64_t s = 2 * threadIdx.x; s < E; s += 2 * blockDim.x) {
      double v = (double)at[s] + cur[s];
      if (v != -INFINITY) qb += exp(v - ll);
    }
    qb = vox_cu_block_sum(qb, sh); /* synchronises: the softmax writes above are done */
    if (threadIdx.x == 0)
      vox_cu_store(dx, dx_dtype, xo + t * C + blank, (float)(g * (exp((double)lt[blank]) - qb)));
    for (int64_t j = threadIdx.x; j < L; j += blockDim.x) {
      if (first[j] != j) continue;
      double q = 0.0;
      for (int64_t k = j; k < L; k++) {
        if (first[k] != j) continue;
        double v = (double)at[2 * k + 1] + cur[2 * k + 1];
        if (v != -INFINITY) q += exp(v - ll);
      }
      vox_cu_store(dx, dx_dtype, xo + t * C + lab[j], (float)(g * (exp((double)lt[lab[j]]) - q)));
    }
  }
}

static int ctc_threads(int64_t n) {
  int64_t t = (n + 31) / 32 * 32;
  if (t < 128) t = 128;
  if (t > CTC_MAX_THREADS) t = CTC_MAX_THREADS;
  return (int)t;
}

extern "C" cudaError_t vox_cu_ctc_loss(cudaStream_t s, const void *x, int x_dtype, const int32_t *targets,
                                       const int32_t *in_lens, const int32_t *tg_lens, float *loss, float *logp,
                                       float *alpha, void *scratch, int64_t B, int64_t T, int64_t C, int64_t S,
                                       int32_t blank) {
  if (B == 0) return cudaSuccess;
  int64_t rows = B * T;
  if (rows > 0 && C > 0) {
    ctc_log_softmax_kernel<<<vox_cu_blocks(rows * 32), VOX_CU_THREADS, 0, s>>>(x, x_dtype, logp, rows, C);
  }
  ctc_alpha_kernel<<<(unsigned)B, ctc_threads(2 * S + 1), 0, s>>>(logp, targets, in_lens, tg_lens, loss, alpha,
                                                                 (double *)scratch, T, C, S, blank);
  return cudaGetLastError();
}

extern "C" size_t vox_cu_ctc_scratch_bytes(int64_t B, int64_t S) {
  return sizeof(double) * (size_t)(B * 2 * (2 * S + 1)) + sizeof(int32_t) * (size_t)(B * S);
}

extern "C" cudaError_t vox_cu_ctc_loss_backward(cudaStream_t s, const float *logp, const int32_t *targets,
                                                const int32_t *in_lens, const int32_t *tg_lens, const float *alpha,
                                                const void *dloss, int dloss_dtype, void *dx, int dx_dtype,
                                                void *scratch, int64_t B, int64_t T, int64_t C, int64_t S,
                                                int32_t blank) {
  if (B == 0) return cudaSuccess;
  double *beta = (double *)scratch;
  int32_t *first = (int32_t *)(beta + B * 2 * (2 * S + 1));
  ctc_beta_kernel<<<(unsigned)B, ctc_threads(2 * S + 1 > C ? 2 * S + 1 : C), 0, s>>>(
      logp, targets, in_lens, tg_lens, alpha, dloss, dloss_dtype, dx, dx_dtype, beta, first, T, C, S, blank);
  return cudaGetLastError();
}
