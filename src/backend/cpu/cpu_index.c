/* CPU indexing kernels: EMBEDDING (+ backward), GATHER, SCATTER_ADD (torch semantics, any strides) and
 * PAIRWISE_SQDIST (|x|^2 - 2 x c^T + |c|^2 through one sgemm, clamped at 0). Indices are range-checked first. */
#include <cblas.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/cpu_iter.h"
#include "backend/cpu/cpu_rows.h"
#include "core/backend.h"
#include "core/kernel_params.h"

static vox_status check_ids(const vox_tensor *ids, int64_t limit, const char *what, int dim) {
  const int32_t *p = vox_tensor_i32(ids);
  int64_t n = vox_tensor_numel(ids);
  for (int64_t i = 0; i < n; i++) {
    int32_t v = p[vox_cpu_flat_offset(ids, i)];
    if (v < 0 || v >= limit) {
      if (dim < 0)
        return vox_errorf(VOX_ERR_INDEX, "%s %d at position %lld is outside [0, %lld) (V = %lld)", what, v,
                          (long long)i, (long long)limit, (long long)limit);
      return vox_errorf(VOX_ERR_INDEX, "%s %d at position %lld is outside [0, %lld) along dim %d", what, v,
                        (long long)i, (long long)limit, dim);
    }
  }
  return VOX_OK;
}

static vox_status cpu_embedding(const vox_kernel_args *args) {
  const vox_tensor *w = args->in[0], *ids = args->in[1];
  vox_tensor *out = args->out[0];
  if (w->ndim != 2 || ids->dtype != VOX_I32 || out->ndim != ids->ndim + 1 || out->shape[ids->ndim] != w->shape[1])
    return vox_errorf(VOX_ERR_SHAPE, "embedding kernel: weight [V, D], i32 ids [...], out [..., D] expected");
  int64_t V = w->shape[0], D = w->shape[1], n = vox_tensor_numel(ids);
  VOX_TRY(check_ids(ids, V, "id", -1));
  const int32_t *ib = vox_tensor_i32(ids);
  const char *wb = vox_tensor_data(w);
  char *ob = vox_tensor_data(out);
  int64_t ws = w->strides[1], os = out->strides[out->ndim - 1];
  size_t es = vox_dtype_size(w->dtype);
  bool same = w->dtype == out->dtype && ws == 1 && os == 1;
#pragma omp parallel for num_threads(vox_num_threads()) if (n * D > VOX_CPU_PARALLEL_MIN && n > 1) schedule(static)
  for (int64_t i = 0; i < n; i++) {
    int64_t row = ib[vox_cpu_flat_offset(ids, i)];
    int64_t wo = row * w->strides[0], oo = vox_cpu_row_offset(out, i);
    if (same) {
      memcpy(ob + oo * es, wb + wo * es, (size_t)D * es);
    } else {
      for (int64_t d = 0; d < D; d++)
        vox_cpu_store(ob, out->dtype, oo + d * os, vox_cpu_load(wb, w->dtype, wo + d * ws));
    }
  }
  return VOX_OK;
}
VOX_REGISTER_KERNEL(VOX_CPU, EMBEDDING, cpu_embedding)

/* dweight[ids[i], :] += dy[i, :]. Threads own disjoint column ranges, so repeated ids never race. */
static vox_status cpu_embedding_backward(const vox_kernel_args *args) {
  const vox_tensor *dy = args->in[0], *ids = args->in[1];
  vox_tensor *dw = args->out[0];
  if (dw->ndim != 2 || ids->dtype != VOX_I32 || dy->ndim != ids->ndim + 1 || dy->shape[ids->ndim] != dw->shape[1])
    return vox_errorf(VOX_ERR_SHAPE, "embedding backward kernel: dy [..., D], i32 ids [...], dweight [V, D] expected");
  int64_t V = dw->shape[0], D = dw->shape[1], n = vox_tensor_numel(ids);
  VOX_TRY(check_ids(ids, V, "id", -1));
  const int32_t *ib = vox_tensor_i32(ids);
  const void *gb = vox_tensor_data(dy);
  void *wb = vox_tensor_data(dw);
  int64_t gs = dy->strides[dy->ndim - 1], ws = dw->strides[1];
  int threads = vox_num_threads();
  int64_t chunks = n * D > VOX_CPU_PARALLEL_MIN ? (D < threads ? D : threads) : 1;
#pragma omp parallel for num_threads(threads) if (chunks > 1) schedule(static)
  for (int64_t ch = 0; ch < chunks; ch++) {
    int64_t d0 = D * ch / chunks, d1 = D * (ch + 1) / chunks;
    for (int64_t i = 0; i < n; i++) {
      int64_t wo = ib[vox_cpu_flat_offset(ids, i)] * dw->strides[0], go = vox_cpu_row_offset(dy, i);
      if (dw->dtype == VOX_F32 && dy->dtype == VOX_F32) {
        float *wr = (float *)wb + wo;
        const float *gr = (const float *)gb + go;
        for (int64_t d = d0; d < d1; d++) wr[d * ws] += gr[d * gs];
      } else {
        for (int64_t d = d0; d < d1; d++)
          vox_cpu_store(wb, dw->dtype, wo + d * ws,
                        vox_cpu_load(wb, dw->dtype, wo + d * ws) + vox_cpu_load(gb, dy->dtype, go + d * gs));
      }
    }
  }
  return VOX_OK;
}
VOX_REGISTER_KERNEL(VOX_CPU, EMBEDDING_BACKWARD, cpu_embedding_backward)

/* Offsets of index element i in `index` and in `other` (a tensor of the same ndim whose coordinates equal the
 * index's except along `dim`, which the caller adds). */
static inline void index_offsets(const vox_tensor *index, const vox_tensor *other, int dim, int64_t i,
                                 int64_t *io, int64_t *oo) {
  *io = 0;
  *oo = 0;
  for (int d = index->ndim - 1; d >= 0; d--) {
    int64_t c = i % index->shape[d];
    i /= index->shape[d];
    *io += c * index->strides[d];
    if (d != dim) *oo += c * other->strides[d];
  }
}

static vox_status check_index_shapes(const char *op, const vox_tensor *x, const vox_tensor *index, int dim) {
  if (index->dtype != VOX_I32 || index->ndim != x->ndim || dim < 0 || dim >= x->ndim)
    return vox_errorf(VOX_ERR_SHAPE, "%s kernel: i32 index with the input's %d dims and a valid dim expected", op,
                      x->ndim);
  for (int d = 0; d < x->ndim; d++)
    if (d != dim && index->shape[d] > x->shape[d])
      return vox_errorf(VOX_ERR_SHAPE, "%s kernel: index dim %d (%lld) exceeds the input's (%lld)", op, d,
                        (long long)index->shape[d], (long long)x->shape[d]);
  return VOX_OK;
}

/* out[i] = x[i with coordinate dim replaced by index[i]]. */
static vox_status cpu_gather(const vox_kernel_args *args) {
  const vox_index_params *p = args->params;
  const vox_tensor *x = args->in[0], *index = args->in[1];
  vox_tensor *out = args->out[0];
  int dim = p->dim;
  VOX_TRY(check_index_shapes("gather", x, index, dim));
  if (!vox_tensor_same_shape(out, index)) return vox_errorf(VOX_ERR_SHAPE, "gather kernel: out must match index");
  VOX_TRY(check_ids(index, x->shape[dim], "index", dim));
  int64_t n = vox_tensor_numel(index);
  const int32_t *ib = vox_tensor_i32(index);
  const void *xb = vox_tensor_data(x);
  void *ob = vox_tensor_data(out);
#pragma omp parallel for num_threads(vox_num_threads()) if (n > VOX_CPU_PARALLEL_MIN) schedule(static)
  for (int64_t i = 0; i < n; i++) {
    int64_t io, xo;
    index_offsets(index, x, dim, i, &io, &xo);
    xo += ib[io] * x->strides[dim];
    vox_cpu_store(ob, out->dtype, vox_cpu_flat_offset(out, i), vox_cpu_load(xb, x->dtype, xo));
  }
  return VOX_OK;
}
VOX_REGISTER_KERNEL(VOX_CPU, GATHER, cpu_gather)

/* out[i with coordinate dim replaced by index[i]] += src[i] for every i of index. Work is split by the lines
 * along `dim`: two elements on different lines never write the same output element. */
static vox_status cpu_scatter_add(const vox_kernel_args *args) {
  const vox_index_params *p = args->params;
  const vox_tensor *index = args->in[0], *src = args->in[1];
  vox_tensor *out = args->out[0];
  int dim = p->dim;
  VOX_TRY(check_index_shapes("scatter_add", out, index, dim));
  if (src->ndim != index->ndim) return vox_errorf(VOX_ERR_SHAPE, "scatter_add kernel: src must have the index's dims");
  for (int d = 0; d < src->ndim; d++)
    if (index->shape[d] > src->shape[d])
      return vox_errorf(VOX_ERR_SHAPE, "scatter_add kernel: index dim %d (%lld) exceeds src's (%lld)", d,
                        (long long)index->shape[d], (long long)src->shape[d]);
  VOX_TRY(check_ids(index, out->shape[dim], "index", dim));
  int64_t len = index->shape[dim], n = vox_tensor_numel(index), lines = len ? n / len : 0;
  const int32_t *ib = vox_tensor_i32(index);
  const void *sb = vox_tensor_data(src);
  void *ob = vox_tensor_data(out);
#pragma omp parallel for num_threads(vox_num_threads()) if (n > VOX_CPU_PARALLEL_MIN) schedule(static)
  for (int64_t line = 0; line < lines; line++) {
    /* Coordinates of this line over the dims other than `dim`. */
    int64_t io = 0, so = 0, oo = 0, rem = line;
    for (int d = index->ndim - 1; d >= 0; d--) {
      if (d == dim) continue;
      int64_t c = rem % index->shape[d];
      rem /= index->shape[d];
      io += c * index->strides[d];
      so += c * src->strides[d];
      oo += c * out->strides[d];
    }
    for (int64_t j = 0; j < len; j++) {
      int64_t t = oo + ib[io + j * index->strides[dim]] * out->strides[dim];
      vox_cpu_store(ob, out->dtype, t,
                    vox_cpu_load(ob, out->dtype, t) + vox_cpu_load(sb, src->dtype, so + j * src->strides[dim]));
    }
  }
  return VOX_OK;
}
VOX_REGISTER_KERNEL(VOX_CPU, SCATTER_ADD, cpu_scatter_add)

/* out[n, k] = max(0, |x_n|^2 - 2 x_n . c_k + |c_k|^2); the clamp removes rounding below zero. */
static vox_status cpu_pairwise_sqdist(const vox_kernel_args *args) {
  const vox_tensor *x0 = args->in[0], *c0 = args->in[1];
  vox_tensor *out = args->out[0];
  if (x0->ndim != 2 || c0->ndim != 2 || x0->shape[1] != c0->shape[1] || out->ndim != 2 ||
      out->shape[0] != x0->shape[0] || out->shape[1] != c0->shape[0])
    return vox_errorf(VOX_ERR_SHAPE, "pairwise_sqdist kernel: x [N, D], c [K, D], out [N, K] expected");
  int64_t N = x0->shape[0], K = c0->shape[0], D = x0->shape[1];
  vox_tensor *x = NULL, *c = NULL, *o = NULL;
  vox_status st = vox_tensor_to(x0, VOX_CPU, VOX_F32, &x); /* dense f32 copies: BLAS needs unit strides */
  if (st == VOX_OK) st = vox_tensor_to(c0, VOX_CPU, VOX_F32, &c);
  if (st == VOX_OK) {
    if (out->dtype == VOX_F32 && vox_tensor_is_contiguous(out)) o = vox_tensor_retain(out);
    else st = vox_tensor_empty(VOX_F32, VOX_CPU, 2, out->shape, &o);
  }
  if (st != VOX_OK) goto done;
  if (N && K) {
    float *xp = vox_tensor_f32(x), *cp = vox_tensor_f32(c), *op = vox_tensor_f32(o);
    openblas_set_num_threads(vox_num_threads());
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (blasint)N, (blasint)K, (blasint)D, -2.0f, xp,
                (blasint)(D ? D : 1), cp, (blasint)(D ? D : 1), 0.0f, op, (blasint)K);
    float *cn = malloc(sizeof(float) * (size_t)K);
    if (!cn) {
      st = vox_errorf(VOX_ERR_NOMEM, "pairwise_sqdist kernel: out of memory");
      goto done;
    }
    for (int64_t k = 0; k < K; k++) {
      float s = 0;
      for (int64_t d = 0; d < D; d++) s += cp[k * D + d] * cp[k * D + d];
      cn[k] = s;
    }
#pragma omp parallel for num_threads(vox_num_threads()) if (N * K > VOX_CPU_PARALLEL_MIN) schedule(static)
    for (int64_t i = 0; i < N; i++) {
      float xn = 0;
      for (int64_t d = 0; d < D; d++) xn += xp[i * D + d] * xp[i * D + d];
      for (int64_t k = 0; k < K; k++) {
        float v = op[i * K + k] + xn + cn[k];
        op[i * K + k] = v > 0.0f ? v : 0.0f;
      }
    }
    free(cn);
  }
  if (o != out) st = vox_tensor_copy_(out, o);
done:
  vox_tensor_release(x);
  vox_tensor_release(c);
  vox_tensor_release(o);
  return st;
}
VOX_REGISTER_KERNEL(VOX_CPU, PAIRWISE_SQDIST, cpu_pairwise_sqdist)
