/* CPU MATMUL kernel: batched out = alpha * op(a) @ op(b) + beta * out through OpenBLAS cblas_sgemm.
 * Strided operands are passed as lda/ldb when one of their last two dims is unit-stride; others are copied. */
#include <cblas.h>
#include <stdlib.h>
#include <string.h>

#include "core/backend.h"
#include "core/kernel_params.h"
#include "core/tensor.h"

/* Batches whose GEMMs are at most this many multiply-adds run one per OpenMP thread (single-threaded BLAS);
 * bigger ones run in sequence with OpenBLAS threading inside each GEMM. */
#define CPU_MATMUL_SMALL_FLOPS (64 * 64 * 64)
/* ... provided the whole batch is worth waking the threads for (multiply-adds). */
#define CPU_MATMUL_PARALLEL_MIN (1 << 22)

/* One matrix operand as BLAS sees it: row-major with leading dimension ld, transposed or not. */
typedef struct blas_mat {
  const float *base; /* element [0,0] of batch 0 */
  int64_t ld;
  bool trans;
} blas_mat;

/* Describes a stored [rows, cols] matrix with strides (sr, sc) as a row-major BLAS operand. Returns false
 * when neither dim is unit-stride (the caller then makes a contiguous copy). */
static bool as_blas(int64_t rows, int64_t cols, int64_t sr, int64_t sc, bool trans, int64_t *ld, bool *out_trans) {
  int64_t rmin = rows > 1 ? rows : 1, cmin = cols > 1 ? cols : 1;
  /* Row-major: unit column stride (irrelevant for one column); the row stride is never used for one row. */
  int64_t ld_row = rows <= 1 ? cmin : sr;
  if ((sc == 1 || cols <= 1) && ld_row >= cmin) {
    *ld = ld_row;
    *out_trans = trans;
    return true;
  }
  /* Column-major storage is the transpose of a row-major [cols, rows] matrix. */
  int64_t ld_col = cols <= 1 ? rmin : sc;
  if ((sr == 1 || rows <= 1) && ld_col >= rmin) {
    *ld = ld_col;
    *out_trans = !trans;
    return true;
  }
  return false;
}

/* Batch offsets: element offsets of batch index `bi` for each operand, from the shared batch shape. */
static void batch_offsets(int nb, const int64_t *bshape, const int64_t *const *bstrides, int n_ops, int64_t bi,
                          int64_t *off) {
  for (int k = 0; k < n_ops; k++) off[k] = 0;
  for (int d = nb - 1; d >= 0; d--) {
    int64_t i = bi % bshape[d];
    bi /= bshape[d];
    for (int k = 0; k < n_ops; k++) off[k] += i * bstrides[k][d];
  }
}

/* Returns a tensor holding `t` as f32 with unit-stride rows (t itself, retained, when already usable). */
static vox_status usable_f32(const vox_tensor *t, int64_t rows, int64_t cols, vox_tensor **out) {
  int n = t->ndim;
  int64_t ld;
  bool tr;
  if (t->dtype == VOX_F32 && as_blas(rows, cols, t->strides[n - 2], t->strides[n - 1], false, &ld, &tr)) {
    *out = vox_tensor_retain((vox_tensor *)t);
    return VOX_OK;
  }
  /* Copy only the distinct matrices: broadcast batch dims (stride 0) stay stride 0 in the copy. */
  int64_t shape[VOX_MAX_DIMS], strides[VOX_MAX_DIMS];
  memcpy(shape, t->shape, sizeof shape);
  for (int d = 0; d < n - 2; d++)
    if (t->strides[d] == 0) shape[d] = 1;
  vox_tensor *dense = NULL, *src = NULL;
  VOX_TRY(vox_tensor_view(t, n, shape, t->strides, t->offset, &src));
  vox_status st = vox_tensor_empty(VOX_F32, VOX_CPU, n, shape, &dense);
  if (st == VOX_OK) st = vox_tensor_copy_(dense, src);
  vox_tensor_release(src);
  if (st != VOX_OK) {
    vox_tensor_release(dense);
    return st;
  }
  memcpy(strides, dense->strides, sizeof strides);
  for (int d = 0; d < n - 2; d++)
    if (t->strides[d] == 0) strides[d] = 0;
  st = vox_tensor_view(dense, n, t->shape, strides, dense->offset, out);
  vox_tensor_release(dense);
  return st;
}

static vox_status cpu_matmul(const vox_kernel_args *args) {
  const vox_matmul_params *p = args->params;
  const vox_tensor *a0 = args->in[0], *b0 = args->in[1];
  vox_tensor *out = args->out[0];
  int n = out->ndim, nb = n - 2;
  if (n < 2 || a0->ndim != n || b0->ndim != n)
    return vox_errorf(VOX_ERR_SHAPE, "matmul kernel: operands need the output's %d dims (batch broadcast by strides)", n);
  int64_t M = out->shape[n - 2], N = out->shape[n - 1];
  int64_t K = p->trans_a ? a0->shape[n - 2] : a0->shape[n - 1];
  int64_t am = p->trans_a ? a0->shape[n - 1] : a0->shape[n - 2];
  int64_t bk = p->trans_b ? b0->shape[n - 1] : b0->shape[n - 2];
  int64_t bn = p->trans_b ? b0->shape[n - 2] : b0->shape[n - 1];
  if (am != M || bk != K || bn != N)
    return vox_errorf(VOX_ERR_SHAPE, "matmul kernel: op(a) is [%lld,%lld], op(b) [%lld,%lld], out [%lld,%lld]",
                      (long long)am, (long long)K, (long long)bk, (long long)bn, (long long)M, (long long)N);
  for (int d = 0; d < nb; d++)
    if (a0->shape[d] != out->shape[d] || b0->shape[d] != out->shape[d])
      return vox_errorf(VOX_ERR_SHAPE, "matmul kernel: batch dim %d of an operand differs from the output's", d);
  if (!vox_dtype_is_float(a0->dtype) || !vox_dtype_is_float(b0->dtype) || !vox_dtype_is_float(out->dtype))
    return vox_errorf(VOX_ERR_DTYPE, "matmul kernel: f32 or bf16 operands expected, got %s @ %s -> %s",
                      vox_dtype_name(a0->dtype), vox_dtype_name(b0->dtype), vox_dtype_name(out->dtype));
  int64_t batch = 1;
  for (int d = 0; d < nb; d++) batch *= out->shape[d];
  if (batch == 0 || M == 0 || N == 0) return VOX_OK;

  vox_tensor *a = NULL, *b = NULL, *c = NULL, *dense = NULL, *out_distinct = NULL;
  vox_status st = usable_f32(a0, a0->shape[n - 2], a0->shape[n - 1], &a);
  if (st == VOX_OK) st = usable_f32(b0, b0->shape[n - 2], b0->shape[n - 1], &b);
  int64_t ldc;
  bool ctr;
  bool c_direct = out->dtype == VOX_F32 && as_blas(M, N, out->strides[n - 2], out->strides[n - 1], false, &ldc, &ctr) && !ctr;
  /* An output batch dim of stride 0 (several batches summing into one matrix) makes the batches write the same
   * memory: they then run in order, and only the first visit of each output matrix applies beta. */
  bool c_overlap = false;
  for (int d = 0; d < nb; d++) c_overlap |= out->strides[d] == 0 && out->shape[d] > 1;
  if (st == VOX_OK && !c_direct) {
    /* Compute into a dense f32 buffer holding the current output (beta reads it), then copy back. */
    int64_t shape[VOX_MAX_DIMS];
    memcpy(shape, out->shape, sizeof shape);
    for (int d = 0; d < nb; d++)
      if (out->strides[d] == 0) shape[d] = 1;
    st = vox_tensor_view(out, n, shape, out->strides, out->offset, &out_distinct);
    if (st == VOX_OK) st = vox_tensor_empty(VOX_F32, VOX_CPU, n, shape, &dense);
    if (st == VOX_OK && p->beta != 0.0f) st = vox_tensor_copy_(dense, out_distinct);
    if (st == VOX_OK) {
      int64_t strides[VOX_MAX_DIMS];
      memcpy(strides, dense->strides, sizeof strides);
      for (int d = 0; d < nb; d++)
        if (out->strides[d] == 0) strides[d] = 0;
      st = vox_tensor_view(dense, n, out->shape, strides, 0, &c);
    }
    if (st == VOX_OK) as_blas(M, N, c->strides[n - 2], c->strides[n - 1], false, &ldc, &ctr);
  } else if (st == VOX_OK) {
    c = vox_tensor_retain(out);
  }
  if (st != VOX_OK) goto done;

  blas_mat ma, mbm;
  as_blas(a->shape[n - 2], a->shape[n - 1], a->strides[n - 2], a->strides[n - 1], p->trans_a, &ma.ld, &ma.trans);
  as_blas(b->shape[n - 2], b->shape[n - 1], b->strides[n - 2], b->strides[n - 1], p->trans_b, &mbm.ld, &mbm.trans);
  ma.base = vox_tensor_f32(a);
  mbm.base = vox_tensor_f32(b);
  float *cbase = vox_tensor_f32(c);
  const int64_t *bstrides[3] = {a->strides, b->strides, c->strides};
  int threads = vox_num_threads();
  bool small = (double)M * (double)N * (double)K <= CPU_MATMUL_SMALL_FLOPS;
  bool parallel_batches = small && batch > 1 && !c_overlap && threads > 1 &&
                          (double)batch * (double)M * (double)N * (double)K >= CPU_MATMUL_PARALLEL_MIN;
  openblas_set_num_threads(parallel_batches ? 1 : threads);
  CBLAS_TRANSPOSE ta = ma.trans ? CblasTrans : CblasNoTrans, tb = mbm.trans ? CblasTrans : CblasNoTrans;

#pragma omp parallel for if (parallel_batches) num_threads(threads) schedule(static)
  for (int64_t bi = 0; bi < batch; bi++) {
    int64_t off[3];
    batch_offsets(nb, out->shape, bstrides, 3, bi, off);
    float beta = p->beta;
    if (c_overlap) { /* a later visit of an output matrix accumulates onto the earlier ones */
      int64_t rem = bi;
      for (int d = nb - 1; d >= 0; d--) {
        if (out->strides[d] == 0 && rem % out->shape[d] != 0) beta = 1.0f;
        rem /= out->shape[d];
      }
    }
    cblas_sgemm(CblasRowMajor, ta, tb, (blasint)M, (blasint)N, (blasint)K, p->alpha, ma.base + off[0],
                (blasint)ma.ld, mbm.base + off[1], (blasint)mbm.ld, beta, cbase + off[2], (blasint)ldc);
  }
  if (dense) st = vox_tensor_copy_(out_distinct, dense); /* each distinct output matrix once */

done:
  vox_tensor_release(a);
  vox_tensor_release(b);
  vox_tensor_release(c);
  vox_tensor_release(dense);
  vox_tensor_release(out_distinct);
  return st;
}
VOX_REGISTER_KERNEL(VOX_CPU, MATMUL, cpu_matmul)
