/* CPU CTC_LOSS / CTC_LOSS_BACKWARD kernels: log-softmax, the alpha (forward) and beta (backward) recursions in
 * log space over the extended label sequence (blank, l1, blank, ..., lL, blank), accumulated in double. */
#include <math.h>
#include <stdlib.h>

#include "backend/cpu/cpu_iter.h"
#include "backend/cpu/cpu_rows.h"
#include "backend/cpu/cpu_vmath.h"
#include "core/backend.h"
#include "core/kernel_params.h"

/* log(exp(a) + exp(b)) without ever forming -inf - -inf. */
static inline double lse2(double a, double b) {
  if (a == -INFINITY) return b;
  if (b == -INFINITY) return a;
  return a > b ? a + log1p(exp(b - a)) : b + log1p(exp(a - b));
}

/* Label of extended position s: blank on even positions, the row's labels on odd ones. */
static inline int32_t ext_label(const int32_t *tg, int64_t s, int32_t blank) {
  return (s & 1) ? tg[(s - 1) / 2] : blank;
}

/* The log-likelihood of a row from its final-frame alphas: paths end on the last label or the trailing blank. */
static double row_log_likelihood(const float *alpha_last, int32_t Tb, int32_t L) {
  if (Tb == 0) return L == 0 ? 0.0 : -INFINITY; /* no frames: only the empty labelling is possible */
  int64_t E = 2 * (int64_t)L + 1;
  double ll = alpha_last[E - 1];
  if (E >= 2) ll = lse2(ll, alpha_last[E - 2]);
  return ll;
}

/* Shapes, dtypes, density and (cheap, so always checked) lengths and label values: the kernels index with them. */
static vox_status check_operands(const char *k, const vox_tensor *logp_like, const vox_tensor *tg,
                                 const vox_tensor *il, const vox_tensor *tl, const vox_tensor *alpha, int32_t blank) {
  if (logp_like->ndim != 3 || tg->ndim != 2 || il->ndim != 1 || tl->ndim != 1 || alpha->ndim != 3)
    return vox_errorf(VOX_ERR_SHAPE, "%s kernel: logits [B,T,C], targets [B,S], lens [B], alpha [B,T,2S+1] expected",
                      k);
  int64_t B = logp_like->shape[0], T = logp_like->shape[1], C = logp_like->shape[2], S = tg->shape[1];
  if (tg->shape[0] != B || il->shape[0] != B || tl->shape[0] != B || alpha->shape[0] != B || alpha->shape[1] != T ||
      alpha->shape[2] != 2 * S + 1)
    return vox_errorf(VOX_ERR_SHAPE, "%s kernel: operands disagree on B, T or S", k);
  if (tg->dtype != VOX_I32 || il->dtype != VOX_I32 || tl->dtype != VOX_I32 || alpha->dtype != VOX_F32 ||
      !vox_dtype_is_float(logp_like->dtype))
    return vox_errorf(VOX_ERR_DTYPE, "%s kernel: float logits, i32 targets and lengths, f32 alpha expected", k);
  if (!vox_tensor_is_contiguous(logp_like) || !vox_tensor_is_contiguous(tg) || !vox_tensor_is_contiguous(il) ||
      !vox_tensor_is_contiguous(tl) || !vox_tensor_is_contiguous(alpha))
    return vox_errorf(VOX_ERR_INVALID, "%s kernel: contiguous operands expected", k);
  if (blank < 0 || blank >= C) return vox_errorf(VOX_ERR_INVALID, "%s kernel: blank %d outside [0, %lld)", k, blank,
                                                 (long long)C);
  const int32_t *t = vox_tensor_i32(tg), *ilp = vox_tensor_i32(il), *tlp = vox_tensor_i32(tl);
  for (int64_t b = 0; b < B; b++) {
    if (ilp[b] < 0 || ilp[b] > T || tlp[b] < 0 || tlp[b] > S)
      return vox_errorf(VOX_ERR_INDEX, "%s kernel: row %lld lengths (%d, %d) outside T=%lld, S=%lld", k, (long long)b,
                        ilp[b], tlp[b], (long long)T, (long long)S);
    for (int64_t j = 0; j < tlp[b]; j++)
      if (t[b * S + j] < 0 || t[b * S + j] >= C || t[b * S + j] == blank)
        return vox_errorf(VOX_ERR_INDEX, "%s kernel: label %d at [%lld, %lld] outside [0, %lld) or blank", k,
                          t[b * S + j], (long long)b, (long long)j, (long long)C);
  }
  return VOX_OK;
}

static vox_status cpu_ctc_loss(const vox_kernel_args *args) {
  const vox_ctc_params *p = args->params;
  const vox_tensor *x = args->in[0], *tg = args->in[1], *il = args->in[2], *tl = args->in[3];
  vox_tensor *loss = args->out[0], *logp = args->out[1], *alpha = args->out[2];
  VOX_TRY(check_operands("ctc_loss", x, tg, il, tl, alpha, p->blank));
  if (loss->dtype != VOX_F32 || logp->dtype != VOX_F32 || !vox_tensor_same_shape(logp, x) || loss->ndim != 1 ||
      loss->shape[0] != x->shape[0] || !vox_tensor_is_contiguous(logp) || !vox_tensor_is_contiguous(loss))
    return vox_errorf(VOX_ERR_SHAPE, "ctc_loss kernel: loss f32 [B] and logp f32 [B,T,C] (dense) expected");
  int64_t B = x->shape[0], T = x->shape[1], C = x->shape[2], S = tg->shape[1], ext = 2 * S + 1;
  const void *xb = vox_tensor_data(x);
  const int32_t *tgb = vox_tensor_i32(tg), *ilb = vox_tensor_i32(il), *tlb = vox_tensor_i32(tl);
  float *lb = vox_tensor_f32(loss), *lpb = vox_tensor_f32(logp), *ab = vox_tensor_f32(alpha);
  int32_t blank = p->blank;
  int failed = 0;
#pragma omp parallel for num_threads(vox_num_threads()) if (B > 1 && B * T * (C + ext) > VOX_CPU_PARALLEL_MIN) \
    schedule(dynamic)
  for (int64_t b = 0; b < B; b++) {
    /* log-softmax of every frame (frames past the row's length too, so logp holds no garbage) */
    for (int64_t t = 0; t < T; t++) {
      int64_t o = (b * T + t) * C;
      float m = -INFINITY;
      for (int64_t c = 0; c < C; c++) {
        float v = vox_cpu_load(xb, x->dtype, o + c);
        m = v > m ? v : m;
      }
      double s = 0;
      for (int64_t c = 0; c < C; c++) s += vox_cpu_exp_nonpos(vox_cpu_load(xb, x->dtype, o + c) - m);
      double lse = m + log(s);
      for (int64_t c = 0; c < C; c++) lpb[o + c] = (float)(vox_cpu_load(xb, x->dtype, o + c) - lse);
    }
    float *a = ab + b * T * ext;
    for (int64_t i = 0; i < T * ext; i++) a[i] = -INFINITY;
    int32_t Tb = ilb[b], L = tlb[b];
    int64_t E = 2 * (int64_t)L + 1;
    const int32_t *lab = tgb + b * S;
    const float *lp = lpb + b * T * C;
    double *prev = malloc(sizeof(double) * (size_t)(2 * E)), *cur = prev ? prev + E : NULL;
    if (!prev) {
#pragma omp atomic write
      failed = 1;
      continue;
    }
    for (int64_t t = 0; t < Tb; t++) {
      for (int64_t s = 0; s < E; s++) {
        int32_t l = ext_label(lab, s, blank);
        double v;
        if (t == 0) {
          v = s < 2 ? 0.0 : -INFINITY;
        } else {
          v = prev[s];
          if (s >= 1) v = lse2(v, prev[s - 1]);
          if (s >= 2 && (s & 1) && l != lab[(s - 3) / 2]) v = lse2(v, prev[s - 2]);
        }
        cur[s] = v == -INFINITY ? -INFINITY : v + lp[t * C + l];
        a[t * ext + s] = (float)cur[s];
      }
      double *sw = prev;
      prev = cur;
      cur = sw;
    }
    /* after the loop prev holds the last frame in double: the loss uses it rather than the f32 copy */
    double ll;
    if (Tb == 0) ll = L == 0 ? 0.0 : -INFINITY;
    else ll = E >= 2 ? lse2(prev[E - 1], prev[E - 2]) : prev[E - 1];
    lb[b] = isfinite(ll) ? (float)-ll : 0.0f; /* zero_infinity: an infeasible row contributes nothing */
    free(prev < cur ? prev : cur);
  }
  if (failed) return vox_errorf(VOX_ERR_NOMEM, "ctc_loss kernel: out of memory for the alpha rows");
  return VOX_OK;
}
VOX_REGISTER_KERNEL(VOX_CPU, CTC_LOSS, cpu_ctc_loss)

/* dlogits[b,t,c] = dloss[b] * (softmax[b,t,c] - sum_{s: l'(s)=c} exp(alpha_t(s) + beta_t(s) - ll_b)), with beta_t(s)
 * the log-probability of completing the labelling from position s after frame t (frame t's emission is in alpha).
 * Frames past the row's length, and infeasible rows, get 0. */
static vox_status cpu_ctc_loss_backward(const vox_kernel_args *args) {
  const vox_ctc_params *p = args->params;
  const vox_tensor *logp = args->in[0], *tg = args->in[1], *il = args->in[2], *tl = args->in[3], *alpha = args->in[4],
                   *dloss = args->in[5];
  vox_tensor *dx = args->out[0];
  VOX_TRY(check_operands("ctc_loss backward", logp, tg, il, tl, alpha, p->blank));
  if (logp->dtype != VOX_F32 || !vox_tensor_same_shape(dx, logp) || !vox_tensor_is_contiguous(dx) ||
      !vox_dtype_is_float(dx->dtype) || dloss->ndim != 1 || dloss->shape[0] != logp->shape[0])
    return vox_errorf(VOX_ERR_SHAPE, "ctc_loss backward kernel: logp f32 [B,T,C], dloss [B], dense dlogits expected");
  int64_t B = logp->shape[0], T = logp->shape[1], C = logp->shape[2], S = tg->shape[1], ext = 2 * S + 1;
  const float *lpb = vox_tensor_f32(logp), *ab = vox_tensor_f32(alpha);
  const int32_t *tgb = vox_tensor_i32(tg), *ilb = vox_tensor_i32(il), *tlb = vox_tensor_i32(tl);
  const void *gb = vox_tensor_data(dloss);
  void *db = vox_tensor_data(dx);
  int32_t blank = p->blank;
  int failed = 0;
#pragma omp parallel for num_threads(vox_num_threads()) if (B > 1 && B * T * (C + ext) > VOX_CPU_PARALLEL_MIN) \
    schedule(dynamic)
  for (int64_t b = 0; b < B; b++) {
    int32_t Tb = ilb[b], L = tlb[b];
    int64_t E = 2 * (int64_t)L + 1;
    const int32_t *lab = tgb + b * S;
    const float *lp = lpb + b * T * C, *a = ab + b * T * ext;
    double ll = row_log_likelihood(a + (Tb > 0 ? Tb - 1 : 0) * ext, Tb, L);
    double g = vox_cpu_load(gb, dloss->dtype, b * dloss->strides[0]);
    int64_t first_zero = 0; /* frames [first_zero, T) get a zero gradient */
    if (isfinite(ll) && g != 0.0) {
      double *buf = malloc(sizeof(double) * (size_t)(2 * E + C));
      if (!buf) {
#pragma omp atomic write
        failed = 1;
        continue;
      }
      double *next = buf, *cur = buf + E, *row = buf + 2 * E;
      first_zero = Tb;
      for (int64_t t = Tb - 1; t >= 0; t--) {
        for (int64_t s = 0; s < E; s++) {
          if (t == Tb - 1) {
            cur[s] = s >= E - 2 ? 0.0 : -INFINITY; /* the path may end on the last label or the final blank */
            continue;
          }
          int32_t l = ext_label(lab, s, blank);
          const float *lq = lp + (t + 1) * C;
          double v = next[s] == -INFINITY ? -INFINITY : next[s] + lq[l];
          if (s + 1 < E && next[s + 1] != -INFINITY) v = lse2(v, next[s + 1] + lq[ext_label(lab, s + 1, blank)]);
          if (s + 2 < E && (s & 1) && lab[(s + 1) / 2] != l && next[s + 2] != -INFINITY)
            v = lse2(v, next[s + 2] + lq[lab[(s + 1) / 2]]);
          cur[s] = v;
        }
        for (int64_t c = 0; c < C; c++) row[c] = vox_cpu_exp_nonpos(lp[t * C + c]); /* softmax: lp <= 0 */
        for (int64_t s = 0; s < E; s++) {
          double ab_s = (double)a[t * ext + s] + cur[s];
          if (ab_s != -INFINITY) row[ext_label(lab, s, blank)] -= exp(ab_s - ll);
        }
        for (int64_t c = 0; c < C; c++) vox_cpu_store(db, dx->dtype, (b * T + t) * C + c, (float)(g * row[c]));
        double *sw = next;
        next = cur;
        cur = sw;
      }
      free(buf);
    }
    for (int64_t i = first_zero * C; i < T * C; i++) vox_cpu_store(db, dx->dtype, b * T * C + i, 0.0f);
  }
  if (failed) return vox_errorf(VOX_ERR_NOMEM, "ctc_loss backward kernel: out of memory for the beta rows");
  return VOX_OK;
}
VOX_REGISTER_KERNEL(VOX_CPU, CTC_LOSS_BACKWARD, cpu_ctc_loss_backward)
