/* CPU reductions: REDUCE (sum/mean/max/min/sumsq over a set of dims) and ARG_REDUCE (argmax/argmin over one dim).
 * Accumulation is in double over 8 independent lanes, and work is split in a way that depends only on the
 * shape (never on the thread count), so results are bit-identical for any VOX_NUM_THREADS. */
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>

#include "backend/cpu/cpu_iter.h"
#include "core/backend.h"
#include "core/kernel_params.h"

#define RED_BUF 1024
#define RED_LANES 64 /* output lanes per task in column mode */
#define RED_CHUNKS 16 /* reduction chunks per output when there are few outputs */

/* Kept and reduced dims after dropping size-1 dims and merging neighbours that are contiguous. */
typedef struct red_plan {
  int nk, nr;
  int64_t ks[VOX_MAX_DIMS], kxs[VOX_MAX_DIMS], kos[VOX_MAX_DIMS];
  int64_t rs[VOX_MAX_DIMS], rxs[VOX_MAX_DIMS];
  int64_t n_out, n_red;
} red_plan;

static void plan_push(int *n, int64_t *sizes, int64_t *s1, int64_t *s2, int64_t size, int64_t a, int64_t b) {
  if (size == 1) return;
  int k = *n;
  if (k > 0 && s1[k - 1] == a * size && (!s2 || s2[k - 1] == b * size)) {
    sizes[k - 1] *= size;
    s1[k - 1] = a;
    if (s2) s2[k - 1] = b;
    return;
  }
  sizes[k] = size;
  s1[k] = a;
  if (s2) s2[k] = b;
  *n = k + 1;
}

static void plan_init(red_plan *p, const vox_tensor *x, const vox_tensor *out, uint32_t dims) {
  p->nk = p->nr = 0;
  p->n_out = p->n_red = 1;
  for (int d = 0; d < x->ndim; d++) {
    if (dims & (1u << d)) {
      plan_push(&p->nr, p->rs, p->rxs, NULL, x->shape[d], x->strides[d], 0);
      p->n_red *= x->shape[d];
    } else {
      plan_push(&p->nk, p->ks, p->kxs, p->kos, x->shape[d], x->strides[d], out->strides[d]);
      p->n_out *= x->shape[d];
    }
  }
}

static inline float load1(const void *base, vox_dtype t, int64_t i) {
  if (t == VOX_F32) return ((const float *)base)[i];
  if (t == VOX_BF16) return vox_bf16_to_f32(((const uint16_t *)base)[i]);
  return (float)((const int32_t *)base)[i];
}

static inline void store1(void *base, vox_dtype t, int64_t i, double v) {
  if (t == VOX_F32) ((float *)base)[i] = (float)v;
  else if (t == VOX_BF16) ((uint16_t *)base)[i] = vox_f32_to_bf16((float)v);
  else ((int32_t *)base)[i] = (int32_t)llrint(v);
}

static inline double acc_init(vox_reduce_op op) {
  return op == VOX_RED_MAX ? -INFINITY : op == VOX_RED_MIN ? INFINITY : 0.0;
}

/* Combines two partial results (NaN propagates through max/min, as in torch). */
static inline double acc_merge(vox_reduce_op op, double a, double v) {
  if (op == VOX_RED_MAX) return (v > a || v != v) ? v : a;
  if (op == VOX_RED_MIN) return (v < a || v != v) ? v : a;
  return a + v;
}

/* Accumulates a contiguous f32 run into acc: 8 independent lanes so gcc vectorises without reassociating. */
static double acc_run(vox_reduce_op op, const float *v, int64_t n, double acc) {
  if (op == VOX_RED_MAX || op == VOX_RED_MIN) {
    for (int64_t i = 0; i < n; i++) acc = acc_merge(op, acc, v[i]);
    return acc;
  }
  double lane[8] = {0};
  int64_t i = 0;
  if (op == VOX_RED_SUMSQ) {
    for (; i + 8 <= n; i += 8)
      for (int j = 0; j < 8; j++) lane[j] += (double)v[i + j] * (double)v[i + j];
    for (; i < n; i++) lane[0] += (double)v[i] * (double)v[i];
  } else {
    for (; i + 8 <= n; i += 8)
      for (int j = 0; j < 8; j++) lane[j] += (double)v[i + j];
    for (; i < n; i++) lane[0] += (double)v[i];
  }
  return acc + (((lane[0] + lane[1]) + (lane[2] + lane[3])) + ((lane[4] + lane[5]) + (lane[6] + lane[7])));
}

/* Accumulates elements at base + i*s, i < n, of dtype t. */
static double acc_strided(vox_reduce_op op, const void *base, vox_dtype t, int64_t off, int64_t s, int64_t n,
                          double acc) {
  if (t == VOX_F32 && s == 1) return acc_run(op, (const float *)base + off, n, acc);
  float buf[RED_BUF];
  for (int64_t i0 = 0; i0 < n; i0 += RED_BUF) {
    int64_t len = n - i0 < RED_BUF ? n - i0 : RED_BUF;
    for (int64_t i = 0; i < len; i++) buf[i] = load1(base, t, off + (i0 + i) * s);
    acc = acc_run(op, buf, len, acc);
  }
  return acc;
}

/* Element offset of x for reduced "row" r (all reduced dims but the innermost, row-major). */
static inline int64_t red_row_offset(const red_plan *p, int64_t r) {
  int64_t off = 0;
  for (int d = p->nr - 2; d >= 0; d--) {
    off += (r % p->rs[d]) * p->rxs[d];
    r /= p->rs[d];
  }
  return off;
}

/* Offsets of kept index o in x and out (kept dims from `first` to `last`, row-major). */
static inline void kept_offsets(const red_plan *p, int last, int64_t o, int64_t *xo, int64_t *oo) {
  *xo = *oo = 0;
  for (int d = last; d >= 0; d--) {
    int64_t i = o % p->ks[d];
    o /= p->ks[d];
    *xo += i * p->kxs[d];
    *oo += i * p->kos[d];
  }
}

static void finish(vox_reduce_op op, double *v, int64_t n_red) {
  if (op == VOX_RED_MEAN) *v = n_red ? *v / (double)n_red : NAN;
}

/* Row mode: the reduced dims include the innermost one; each output reduces runs of the innermost reduced dim.
 * With few outputs, each output's rows are split into RED_CHUNKS partials merged in order. */
static vox_status reduce_rows(const red_plan *p, vox_reduce_op op, const vox_tensor *x, vox_tensor *out) {
  const void *px = vox_tensor_data(x);
  void *po = vox_tensor_data(out);
  int64_t inner = p->nr ? p->rs[p->nr - 1] : 1, sx = p->nr ? p->rxs[p->nr - 1] : 0;
  int64_t rows = p->nr ? p->n_red / (inner ? inner : 1) : 1;
  if (inner == 0) rows = 0;
  int64_t chunks = p->n_out >= 64 || rows < 2 * RED_CHUNKS ? 1 : RED_CHUNKS;
  int64_t tasks = p->n_out * chunks;
  double *part = malloc(sizeof(double) * (size_t)(tasks ? tasks : 1));
  if (!part) return vox_errorf(VOX_ERR_NOMEM, "reduce kernel: out of memory");
  vox_dtype tx = x->dtype;
  int64_t work = p->n_out * p->n_red;
#pragma omp parallel for if (work > VOX_CPU_PARALLEL_MIN) num_threads(vox_num_threads()) schedule(static)
  for (int64_t t = 0; t < tasks; t++) {
    int64_t o = t / chunks, c = t % chunks, xo, oo;
    kept_offsets(p, p->nk - 1, o, &xo, &oo);
    int64_t r0 = rows * c / chunks, r1 = rows * (c + 1) / chunks;
    double acc = acc_init(op);
    for (int64_t r = r0; r < r1; r++) acc = acc_strided(op, px, tx, xo + red_row_offset(p, r), sx, inner, acc);
    part[t] = acc;
  }
  for (int64_t o = 0; o < p->n_out; o++) {
    double acc = part[o * chunks];
    for (int64_t c = 1; c < chunks; c++) acc = acc_merge(op, acc, part[o * chunks + c]);
    finish(op, &acc, p->n_red);
    int64_t xo, oo;
    kept_offsets(p, p->nk - 1, o, &xo, &oo);
    store1(po, out->dtype, oo, acc);
  }
  free(part);
  return VOX_OK;
}

/* Column mode: the innermost dim is kept; a task owns RED_LANES consecutive outputs along it and walks all
 * reduced elements, so loads along the kept dim stay contiguous. */
static vox_status reduce_cols(const red_plan *p, vox_reduce_op op, const vox_tensor *x, vox_tensor *out) {
  const void *px = vox_tensor_data(x);
  void *po = vox_tensor_data(out);
  int64_t L = p->ks[p->nk - 1], sL = p->kxs[p->nk - 1], soL = p->kos[p->nk - 1];
  int64_t outer = p->n_out / L, blocks = (L + RED_LANES - 1) / RED_LANES, tasks = outer * blocks;
  vox_dtype tx = x->dtype;
  bool sum_like = op == VOX_RED_SUM || op == VOX_RED_MEAN;
  int64_t work = p->n_out * p->n_red;
#pragma omp parallel for if (work > VOX_CPU_PARALLEL_MIN) num_threads(vox_num_threads()) schedule(static)
  for (int64_t t = 0; t < tasks; t++) {
    int64_t ob = t / blocks, j0 = (t % blocks) * RED_LANES, xo, oo;
    int64_t nl = L - j0 < RED_LANES ? L - j0 : RED_LANES;
    kept_offsets(p, p->nk - 2, ob, &xo, &oo);
    xo += j0 * sL;
    oo += j0 * soL;
    double acc[RED_LANES];
    for (int j = 0; j < nl; j++) acc[j] = acc_init(op);
    for (int64_t r = 0; r < p->n_red; r++) {
      int64_t roff = 0, rem = r;
      for (int d = p->nr - 1; d >= 0; d--) {
        roff += (rem % p->rs[d]) * p->rxs[d];
        rem /= p->rs[d];
      }
      int64_t base = xo + roff;
      if (tx == VOX_F32 && sL == 1 && sum_like) {
        const float *v = (const float *)px + base;
        for (int j = 0; j < nl; j++) acc[j] += (double)v[j];
      } else {
        for (int j = 0; j < nl; j++) {
          double v = load1(px, tx, base + j * sL);
          acc[j] = op == VOX_RED_SUMSQ ? acc[j] + v * v : acc_merge(op, acc[j], v);
        }
      }
    }
    for (int j = 0; j < nl; j++) {
      finish(op, &acc[j], p->n_red);
      store1(po, out->dtype, oo + j * soL, acc[j]);
    }
  }
  return VOX_OK;
}

static vox_status check_reduced_shape(const char *k, const vox_tensor *x, const vox_tensor *out, uint32_t dims) {
  char b1[96], b2[96];
  bool ok = x->ndim == out->ndim;
  for (int d = 0; ok && d < x->ndim; d++) ok = out->shape[d] == ((dims & (1u << d)) ? 1 : x->shape[d]);
  if (!ok)
    return vox_errorf(VOX_ERR_SHAPE, "%s kernel: output %s is not %s reduced over dims 0x%x (keepdim)", k,
                      vox_tensor_describe(out, b1, sizeof b1), vox_tensor_describe(x, b2, sizeof b2), dims);
  return VOX_OK;
}

static vox_status cpu_reduce(const vox_kernel_args *args) {
  const vox_reduce_params *prm = args->params;
  const vox_tensor *x = args->in[0];
  vox_tensor *out = args->out[0];
  VOX_TRY(check_reduced_shape("reduce", x, out, prm->dims));
  red_plan p;
  plan_init(&p, x, out, prm->dims);
  if (p.n_out == 0) return VOX_OK;
  bool rows = p.nk == 0 || (p.nr > 0 && p.rxs[p.nr - 1] < p.kxs[p.nk - 1]);
  return rows ? reduce_rows(&p, prm->op, x, out) : reduce_cols(&p, prm->op, x, out);
}
VOX_REGISTER_KERNEL(VOX_CPU, REDUCE, cpu_reduce)

/* out (i32) has x's shape with `dim` of size 1; the first extreme index wins ties, NaN counts as extreme. */
static vox_status cpu_arg_reduce(const vox_kernel_args *args) {
  const vox_arg_reduce_params *prm = args->params;
  const vox_tensor *x = args->in[0];
  vox_tensor *out = args->out[0];
  if (out->dtype != VOX_I32) return vox_errorf(VOX_ERR_DTYPE, "arg_reduce kernel: output must be i32");
  if (prm->dim < 0 || prm->dim >= x->ndim)
    return vox_errorf(VOX_ERR_INDEX, "arg_reduce kernel: dim %d out of range", prm->dim);
  VOX_TRY(check_reduced_shape("arg_reduce", x, out, 1u << prm->dim));
  int64_t n = x->shape[prm->dim], s = x->strides[prm->dim];
  if (n == 0) return vox_errorf(VOX_ERR_SHAPE, "arg_reduce kernel: dim %d is empty", prm->dim);
  /* Outputs enumerated over `out`'s shape (dim has size 1 there). */
  const vox_tensor *ops[2] = {out, x};
  vox_cpu_iter it;
  vox_cpu_iter_init(&it, out->ndim, out->shape, 2, ops);
  int64_t so = vox_cpu_iter_inner_stride(&it, 0), sx = vox_cpu_iter_inner_stride(&it, 1),
          tiles = vox_cpu_iter_tiles(&it);
  const void *px = vox_tensor_data(x);
  int32_t *po = vox_tensor_data(out);
  vox_dtype tx = x->dtype;
  bool is_max = prm->is_max;
#pragma omp parallel for if (it.numel * n > VOX_CPU_PARALLEL_MIN) num_threads(vox_num_threads())
  for (int64_t tile = 0; tile < tiles; tile++) {
    int64_t off[2];
    int64_t len = vox_cpu_iter_tile(&it, tile, off);
    for (int64_t i = 0; i < len; i++) {
      int64_t base = off[1] + i * sx;
      float best = load1(px, tx, base);
      int32_t arg = 0;
      for (int64_t k = 1; k < n && best == best; k++) {
        float v = load1(px, tx, base + k * s);
        if (v != v || (is_max ? v > best : v < best)) {
          best = v;
          arg = (int32_t)k;
        }
      }
      po[off[0] + i * so] = arg;
    }
  }
  return VOX_OK;
}
VOX_REGISTER_KERNEL(VOX_CPU, ARG_REDUCE, cpu_arg_reduce)
