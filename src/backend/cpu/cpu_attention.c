/* CPU attention kernels, flash-attention style: the forward keeps only the output and per-row log-sum-exp; the
 * backward recomputes probabilities block by block. Score and output products are single-threaded GEMMs
 * inside an OpenMP loop over (batch, head, query block); masks are key prefixes, so GEMMs stop at the last key. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/cpu_blas.h"
#include "backend/cpu/cpu_iter.h"
#include "core/backend.h"
#include "core/kernel_params.h"

#define ATTN_BLOCK 64

typedef struct attn_dims {
  int64_t B, Hq, Hkv, T, S, D, Dv, group;
} attn_dims;

/* Leading dimension of the [rows, features] matrix of one (batch, head); any value >= features when rows == 1. */
static int ld(const vox_tensor *t) { return (int)(t->shape[2] > 1 ? t->strides[2] : t->shape[3]); }

static int64_t floor_div(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

/* Keys [0, hi) are visible to query t of batch row b (every mask kind is a prefix of the keys). */
static int64_t visible_end(const vox_attention_params *p, const int32_t *lens, int64_t S, int64_t b, int64_t t) {
  int64_t hi = S;
  if (lens) {
    int64_t l = lens[b];
    if (l < hi) hi = l;
  }
  int64_t tp = t + p->causal_offset;
  if (p->chunk_size > 0) {
    int64_t end = (floor_div(tp, p->chunk_size) + 1) * p->chunk_size;
    if (end < hi) hi = end;
  } else if (p->causal && tp + 1 < hi) {
    hi = tp + 1;
  }
  return hi < 0 ? 0 : hi;
}

static vox_status check(const char *k, const vox_kernel_args *a, int n, attn_dims *d) {
  for (int i = 0; i < n; i++) {
    const vox_tensor *t = a->in[i];
    if (t && t->dtype != VOX_F32)
      return vox_errorf(VOX_ERR_UNSUPPORTED, "%s: the cpu kernel takes f32 operands, operand %d is %s", k, i,
                        vox_dtype_name(t->dtype));
    if (t && t->strides[3] != 1 && t->shape[3] != 1)
      return vox_errorf(VOX_ERR_INVALID, "%s: operand %d needs unit stride along its last dim", k, i);
  }
  const vox_tensor *q = a->in[0], *kk = a->in[1], *v = a->in[2];
  *d = (attn_dims){.B = q->shape[0], .Hq = q->shape[1], .Hkv = kk->shape[1], .T = q->shape[2], .S = kk->shape[2],
                   .D = q->shape[3], .Dv = v->shape[3]};
  d->group = d->Hq / d->Hkv;
  return VOX_OK;
}

/* Fills row[0, n) with scores + bias and turns the visible prefix [0, hi) into probabilities in place (zero
 * elsewhere). Returns the log-sum-exp, or -inf for a fully masked row (then the row is all zero). */
static float softmax_row(float *row, int64_t n, int64_t hi, const float *bias, int64_t bias_stride) {
  if (bias)
    for (int64_t s = 0; s < hi; s++) row[s] += bias[s * bias_stride];
  float m = -INFINITY;
  for (int64_t s = 0; s < hi; s++) m = row[s] > m ? row[s] : m;
  if (m == -INFINITY) {
    memset(row, 0, sizeof(float) * (size_t)n);
    return -INFINITY;
  }
  double sum = 0;
  for (int64_t s = 0; s < hi; s++) {
    float e = expf(row[s] - m);
    row[s] = e;
    sum += e;
  }
  float inv = (float)(1.0 / sum);
  for (int64_t s = 0; s < hi; s++) row[s] *= inv;
  for (int64_t s = hi; s < n; s++) row[s] = 0;
  return m + (float)log(sum);
}

/* in = {q, k, v, kv_lens|NULL, bias|NULL} -> out = {o [B,Hq,T,Dv] contiguous, lse [B,Hq,T]} */
static vox_status cpu_attention(const vox_kernel_args *a) {
  attn_dims d;
  VOX_TRY(check("ATTENTION", a, 3, &d));
  const vox_attention_params *p = a->params;
  const vox_tensor *q = a->in[0], *k = a->in[1], *v = a->in[2], *lt = a->in[3], *bt = a->in[4];
  vox_tensor *o = a->out[0], *lse = a->out[1];
  const float *qp = vox_tensor_f32(q), *kp = vox_tensor_f32(k), *vp = vox_tensor_f32(v);
  const float *bp = bt ? vox_tensor_f32(bt) : NULL;
  const int32_t *lens = lt ? vox_tensor_i32(lt) : NULL;
  float *op = vox_tensor_f32(o), *lp = vox_tensor_f32(lse);
  int64_t nblk = (d.T + ATTN_BLOCK - 1) / ATTN_BLOCK, tasks = d.B * d.Hq * nblk;
  int nt = d.B * d.Hq * d.T * d.S * (d.D + d.Dv) > 4 * VOX_CPU_PARALLEL_MIN ? vox_num_threads() : 1;
  if (nt > tasks) nt = (int)(tasks > 0 ? tasks : 1);
  float *scratch = malloc(sizeof(float) * (size_t)nt * ATTN_BLOCK * (size_t)(d.S > 0 ? d.S : 1));
  if (!scratch) return vox_errorf(VOX_ERR_NOMEM, "ATTENTION: out of memory for %d score blocks", nt);
  int blas = vox_cpu_blas_single();
#pragma omp parallel for schedule(dynamic) num_threads(nt)
  for (int64_t task = 0; task < tasks; task++) {
    float *sc = scratch + (size_t)omp_get_thread_num() * ATTN_BLOCK * (size_t)(d.S > 0 ? d.S : 1);
    int64_t blk = task % nblk, h = (task / nblk) % d.Hq, b = task / (nblk * d.Hq), hk = h / d.group;
    int64_t t0 = blk * ATTN_BLOCK, nq = d.T - t0 < ATTN_BLOCK ? d.T - t0 : ATTN_BLOCK;
    const float *qb = qp + b * q->strides[0] + h * q->strides[1] + t0 * q->strides[2];
    const float *kb = kp + b * k->strides[0] + hk * k->strides[1];
    const float *vb = vp + b * v->strides[0] + hk * v->strides[1];
    float *ob = op + ((b * d.Hq + h) * d.T + t0) * d.Dv, *lb = lp + (b * d.Hq + h) * d.T + t0;
    int64_t smax = 0;
    for (int64_t i = 0; i < nq; i++) {
      int64_t e = visible_end(p, lens, d.S, b, t0 + i);
      if (e > smax) smax = e;
    }
    if (smax == 0) {
      memset(ob, 0, sizeof(float) * (size_t)(nq * d.Dv));
      for (int64_t i = 0; i < nq; i++) lb[i] = -INFINITY;
      continue;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nq, (int)smax, (int)d.D, p->scale, qb,
                ld(q), kb, ld(k), 0.0f, sc, (int)smax);
    for (int64_t i = 0; i < nq; i++) {
      int64_t t = t0 + i, hi = visible_end(p, lens, d.S, b, t);
      const float *brow = bp ? bp + b * bt->strides[0] + h * bt->strides[1] + t * bt->strides[2] : NULL;
      lb[i] = softmax_row(sc + i * smax, smax, hi, brow, bt ? bt->strides[3] : 0);
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)nq, (int)d.Dv, (int)smax, 1.0f, sc, (int)smax, vb,
                ld(v), 0.0f, ob, (int)d.Dv);
  }
  vox_cpu_blas_restore(blas);
  free(scratch);
  return VOX_OK;
}
VOX_REGISTER_KERNEL(VOX_CPU, ATTENTION, cpu_attention)

/* in = {q, k, v, o, lse, do, kv_lens|NULL, bias|NULL} -> out = {dq, dk, dv} (contiguous; any may be NULL).
 * One task per (batch, kv head) owns its dk/dv rows, so GQA sums over the query heads need no atomics. */
static vox_status cpu_attention_backward(const vox_kernel_args *a) {
  attn_dims d;
  VOX_TRY(check("ATTENTION_BACKWARD", a, 4, &d));
  const vox_attention_params *p = a->params;
  const vox_tensor *q = a->in[0], *k = a->in[1], *v = a->in[2], *o = a->in[3], *lse = a->in[4], *dO = a->in[5],
                   *lt = a->in[6], *bt = a->in[7];
  if (dO->dtype != VOX_F32 || (dO->strides[3] != 1 && dO->shape[3] != 1))
    return vox_errorf(VOX_ERR_UNSUPPORTED, "ATTENTION_BACKWARD: gradient must be f32 with unit last stride");
  vox_tensor *dq = a->out[0], *dk = a->out[1], *dv = a->out[2];
  const float *qp = vox_tensor_f32(q), *kp = vox_tensor_f32(k), *vp = vox_tensor_f32(v), *opp = vox_tensor_f32(o),
              *lp = vox_tensor_f32(lse), *gp = vox_tensor_f32(dO);
  const float *bp = bt ? vox_tensor_f32(bt) : NULL;
  const int32_t *lens = lt ? vox_tensor_i32(lt) : NULL;
  float *dqp = dq ? vox_tensor_f32(dq) : NULL, *dkp = dk ? vox_tensor_f32(dk) : NULL,
        *dvp = dv ? vox_tensor_f32(dv) : NULL;
  int64_t nblk = (d.T + ATTN_BLOCK - 1) / ATTN_BLOCK, tasks = d.B * d.Hkv;
  int nt = d.B * d.Hq * d.T * d.S * (d.D + d.Dv) > VOX_CPU_PARALLEL_MIN ? vox_num_threads() : 1;
  if (nt > tasks) nt = (int)(tasks > 0 ? tasks : 1);
  size_t per = (size_t)2 * ATTN_BLOCK * (size_t)(d.S > 0 ? d.S : 1) + ATTN_BLOCK;
  float *scratch = malloc(sizeof(float) * (size_t)nt * per);
  if (!scratch) return vox_errorf(VOX_ERR_NOMEM, "ATTENTION_BACKWARD: out of memory");
  int blas = vox_cpu_blas_single();
#pragma omp parallel for schedule(dynamic) num_threads(nt)
  for (int64_t task = 0; task < tasks; task++) {
    float *P = scratch + (size_t)omp_get_thread_num() * per, *dP = P + ATTN_BLOCK * (d.S > 0 ? d.S : 1),
          *rowdot = dP + ATTN_BLOCK * (d.S > 0 ? d.S : 1);
    int64_t b = task / d.Hkv, hk = task % d.Hkv;
    const float *kb = kp + b * k->strides[0] + hk * k->strides[1];
    const float *vb = vp + b * v->strides[0] + hk * v->strides[1];
    float *dkb = dkp ? dkp + (b * d.Hkv + hk) * d.S * d.D : NULL;
    float *dvb = dvp ? dvp + (b * d.Hkv + hk) * d.S * d.Dv : NULL;
    if (dkb) memset(dkb, 0, sizeof(float) * (size_t)(d.S * d.D));
    if (dvb) memset(dvb, 0, sizeof(float) * (size_t)(d.S * d.Dv));
    for (int64_t h = hk * d.group; h < (hk + 1) * d.group; h++)
      for (int64_t blk = 0; blk < nblk; blk++) {
        int64_t t0 = blk * ATTN_BLOCK, nq = d.T - t0 < ATTN_BLOCK ? d.T - t0 : ATTN_BLOCK;
        const float *qb = qp + b * q->strides[0] + h * q->strides[1] + t0 * q->strides[2];
        const float *ob = opp + b * o->strides[0] + h * o->strides[1] + t0 * o->strides[2];
        const float *gb = gp + b * dO->strides[0] + h * dO->strides[1] + t0 * dO->strides[2];
        const float *lb = lp + (b * d.Hq + h) * d.T + t0;
        float *dqb = dqp ? dqp + ((b * d.Hq + h) * d.T + t0) * d.D : NULL;
        int64_t smax = 0;
        for (int64_t i = 0; i < nq; i++) {
          int64_t e = visible_end(p, lens, d.S, b, t0 + i);
          if (e > smax) smax = e;
        }
        if (smax == 0) {
          if (dqb) memset(dqb, 0, sizeof(float) * (size_t)(nq * d.D));
          continue;
        }
        /* P = exp(scale * q k^T + bias - lse) on the visible prefix, 0 elsewhere and on fully masked rows. */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nq, (int)smax, (int)d.D, p->scale, qb,
                    ld(q), kb, ld(k), 0.0f, P, (int)smax);
        for (int64_t i = 0; i < nq; i++) {
          int64_t t = t0 + i, hi = visible_end(p, lens, d.S, b, t);
          float *row = P + i * smax, l = lb[i];
          if (l == -INFINITY) hi = 0;
          const float *brow = bp ? bp + b * bt->strides[0] + h * bt->strides[1] + t * bt->strides[2] : NULL;
          for (int64_t s = 0; s < hi; s++) row[s] = expf(row[s] + (brow ? brow[s * bt->strides[3]] : 0.0f) - l);
          for (int64_t s = hi; s < smax; s++) row[s] = 0;
          double dot = 0;
          for (int64_t j = 0; j < d.Dv; j++) dot += (double)gb[i * ld(dO) + j] * ob[i * ld(o) + j];
          rowdot[i] = (float)dot;
        }
        if (dvb)
          cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)smax, (int)d.Dv, (int)nq, 1.0f, P, (int)smax, gb,
                      ld(dO), 1.0f, dvb, (int)d.Dv);
        if (!dqb && !dkb) continue;
        /* dS = P * (dO v^T - rowdot) */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nq, (int)smax, (int)d.Dv, 1.0f, gb,
                    ld(dO), vb, ld(v), 0.0f, dP, (int)smax);
        for (int64_t i = 0; i < nq; i++) {
          float *pr = P + i * smax, *dr = dP + i * smax, rd = rowdot[i];
          for (int64_t s = 0; s < smax; s++) dr[s] = pr[s] * (dr[s] - rd);
        }
        if (dqb)
          cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)nq, (int)d.D, (int)smax, p->scale, dP,
                      (int)smax, kb, ld(k), 0.0f, dqb, (int)d.D);
        if (dkb)
          cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)smax, (int)d.D, (int)nq, p->scale, dP, (int)smax,
                      qb, ld(q), 1.0f, dkb, (int)d.D);
      }
  }
  vox_cpu_blas_restore(blas);
  free(scratch);
  return VOX_OK;
}
VOX_REGISTER_KERNEL(VOX_CPU, ATTENTION_BACKWARD, cpu_attention_backward)
