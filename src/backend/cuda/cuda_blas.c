/* CUDA MATMUL kernel through cuBLASLt: batched out = alpha * op(a) @ op(b) + beta * out for f32 and bf16
 * (f32 accumulate), with the heuristic's algorithm cached per problem shape and one shared workspace. */
#include <cublasLt.h>
#include <cuda_runtime.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cuda/cuda_stream.h"
#include "core/backend.h"
#include "core/kernel_params.h"
#include "core/tensor.h"

/* cuBLASLt picks split-K and stream-K algorithms only with a workspace; 32 MiB is what PyTorch gives
 * Hopper. Allocated once, on first use, and kept for the life of the process. */
#define BLAS_WORKSPACE (32u << 20)
#define BLAS_CACHE_SLOTS 1024

/* GEMMs run on vox's compute stream, in order with every other kernel and with the stream-ordered allocator. */
static cudaStream_t blas_stream(void) { return vox_cuda_compute_stream(); }

static pthread_once_t blas_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t blas_lock = PTHREAD_MUTEX_INITIALIZER;
static cublasLtHandle_t blas_handle;
static void *blas_workspace;
static vox_status blas_init_status = VOX_OK;
static char blas_init_msg[160];
static bool blas_tf32;

static void blas_init(void) {
  cublasStatus_t s = cublasLtCreate(&blas_handle);
  if (s != CUBLAS_STATUS_SUCCESS) {
    blas_init_status = VOX_ERR_DEVICE;
    snprintf(blas_init_msg, sizeof blas_init_msg, "cublasLtCreate: %s", cublasLtGetStatusString(s));
    return;
  }
  cudaError_t e = cudaMalloc(&blas_workspace, BLAS_WORKSPACE);
  if (e != cudaSuccess) {
    blas_init_status = VOX_ERR_NOMEM;
    snprintf(blas_init_msg, sizeof blas_init_msg, "workspace of %u bytes: %s", BLAS_WORKSPACE, cudaGetErrorString(e));
    return;
  }
  /* TF32 (10-bit mantissa products) is opt-in: f32 matmuls stay f32 unless the user asks for speed. */
  const char *env = getenv("VOX_CUDA_ALLOW_TF32");
  blas_tf32 = env && env[0] == '1';
}

static vox_status lt_check(cublasStatus_t s, const char *what) {
  if (s == CUBLAS_STATUS_SUCCESS) return VOX_OK;
  return vox_errorf(VOX_ERR_DEVICE, "matmul kernel (cuda): %s: %s", what, cublasLtGetStatusString(s));
}

/* ---- operand description -------------------------------------------------------------------------- */

/* A stored [rows, cols] matrix with strides (sr, sc), as cuBLAS sees op(X)^T in column-major order (the
 * row-major product C = op(A) op(B) is computed as C^T = op(B)^T op(A)^T). Returns false when neither
 * dim is unit-stride. */
typedef struct lt_mat {
  cublasOperation_t op;
  uint64_t rows, cols; /* the stored column-major layout */
  int64_t ld;
} lt_mat;

static bool describe(int64_t rows, int64_t cols, int64_t sr, int64_t sc, bool trans, lt_mat *m) {
  int64_t rmin = rows > 1 ? rows : 1, cmin = cols > 1 ? cols : 1;
  /* Row-major storage of X [rows, cols] is the column-major Z = X^T [cols, rows]; op(X)^T is X = Z^T when
   * trans, X^T = Z otherwise. */
  int64_t ld_row = rows <= 1 ? cmin : sr;
  if ((sc == 1 || cols <= 1) && ld_row >= cmin) {
    *m = (lt_mat){.op = trans ? CUBLAS_OP_T : CUBLAS_OP_N, .rows = (uint64_t)cols, .cols = (uint64_t)rows, .ld = ld_row};
    return true;
  }
  /* Column-major storage of X is Z = X itself: op(X)^T is Z when trans, Z^T otherwise. */
  int64_t ld_col = cols <= 1 ? rmin : sc;
  if ((sr == 1 || rows <= 1) && ld_col >= rmin) {
    *m = (lt_mat){.op = trans ? CUBLAS_OP_N : CUBLAS_OP_T, .rows = (uint64_t)rows, .cols = (uint64_t)cols, .ld = ld_col};
    return true;
  }
  return false;
}

static bool usable(const vox_tensor *t, bool trans) {
  int n = t->ndim;
  lt_mat m;
  return describe(t->shape[n - 2], t->shape[n - 1], t->strides[n - 2], t->strides[n - 1], trans, &m);
}

/* `t` itself (retained) when cuBLASLt can read it in `dtype`, else a copy in `dtype` with dense matrices
 * (broadcast batch dims, stride 0, stay stride 0 so each distinct matrix is copied once). */
static vox_status as_operand(const vox_tensor *t, vox_dtype dtype, vox_tensor **out) {
  int n = t->ndim;
  if (t->dtype == dtype && usable(t, false)) {
    *out = vox_tensor_retain((vox_tensor *)t);
    return VOX_OK;
  }
  int64_t shape[VOX_MAX_DIMS], strides[VOX_MAX_DIMS];
  memcpy(shape, t->shape, sizeof shape);
  for (int d = 0; d < n - 2; d++)
    if (t->strides[d] == 0) shape[d] = 1;
  vox_tensor *src = NULL, *dense = NULL;
  VOX_TRY(vox_tensor_view(t, n, shape, t->strides, t->offset, &src));
  vox_status st = vox_tensor_empty(dtype, VOX_CUDA, n, shape, &dense);
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

/* ---- algorithm cache ------------------------------------------------------------------------------- */

typedef struct lt_key {
  int32_t ab_type, c_type, compute, op_a, op_b, beta_zero;
  uint64_t m, n, k, rows_a, rows_b;
  int64_t lda, ldb, ldc, batch, stride_a, stride_b, stride_c;
  uint32_t align_a, align_b, align_c, pad; /* no implicit padding: keys are hashed and compared as bytes */
} lt_key;

/* A cached problem: the heuristic's algorithm and the descriptors it was chosen for (immutable once built, so
 * later calls skip both the heuristic and descriptor creation). */
typedef struct lt_plan {
  cublasLtMatmulDesc_t desc;
  cublasLtMatrixLayout_t la, lb, lc;
  cublasLtMatmulAlgo_t algo;
} lt_plan;

typedef struct lt_slot {
  bool used;
  lt_key key;
  lt_plan plan;
} lt_slot;

_Static_assert(sizeof(lt_key) == 24 + 5 * 8 + 7 * 8 + 4 * 4, "lt_key has no padding");
static lt_slot blas_cache[BLAS_CACHE_SLOTS];

static uint64_t key_hash(const lt_key *k) {
  const unsigned char *p = (const unsigned char *)k;
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < sizeof *k; i++) h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

/* Largest power of two (<= 256) dividing the address and every batch step, in bytes: the alignment the
 * heuristic may assume for every matrix of the call. */
static uint32_t alignment(const void *base, int64_t stride_bytes) {
  uint64_t v = (uint64_t)(uintptr_t)base | (uint64_t)(stride_bytes < 0 ? -stride_bytes : stride_bytes) | 256u;
  return (uint32_t)(v & (~v + 1));
}

typedef struct lt_call {
  lt_key key;
  const void *a, *b, *c_in;
  void *c;
  float alpha, beta;
} lt_call;

static vox_status set_layout(cublasLtMatrixLayout_t *l, cudaDataType_t t, uint64_t rows, uint64_t cols, int64_t ld,
                             int64_t batch, int64_t stride) {
  VOX_TRY(lt_check(cublasLtMatrixLayoutCreate(l, t, rows, cols, ld), "matrix layout"));
  if (batch > 1) {
    int32_t count = (int32_t)batch;
    VOX_TRY(lt_check(cublasLtMatrixLayoutSetAttribute(*l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &count, sizeof count),
                     "batch count"));
    VOX_TRY(lt_check(cublasLtMatrixLayoutSetAttribute(*l, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride,
                                                      sizeof stride),
                     "batch stride"));
  }
  return VOX_OK;
}

static void plan_destroy(lt_plan *p) {
  if (p->la) cublasLtMatrixLayoutDestroy(p->la);
  if (p->lb) cublasLtMatrixLayoutDestroy(p->lb);
  if (p->lc) cublasLtMatrixLayoutDestroy(p->lc);
  if (p->desc) cublasLtMatmulDescDestroy(p->desc);
  memset(p, 0, sizeof *p);
}

/* Descriptors for key k and the heuristic's first algorithm for them. */
static vox_status plan_build(const lt_key *k, lt_plan *p) {
  memset(p, 0, sizeof *p);
  cublasLtMatmulPreference_t pref = NULL;
  vox_status st = lt_check(cublasLtMatmulDescCreate(&p->desc, (cublasComputeType_t)k->compute, CUDA_R_32F), "matmul desc");
  int32_t opa = k->op_a, opb = k->op_b;
  if (st == VOX_OK)
    st = lt_check(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSA, &opa, sizeof opa), "transa");
  if (st == VOX_OK)
    st = lt_check(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSB, &opb, sizeof opb), "transb");
  /* Stored layouts: A' is [rows_a, ...] with op_a, B' likewise; C is [m, n]. */
  uint64_t cols_a = opa == CUBLAS_OP_N ? k->k : k->m, cols_b = opb == CUBLAS_OP_N ? k->n : k->k;
  if (st == VOX_OK)
    st = set_layout(&p->la, (cudaDataType_t)k->ab_type, k->rows_a, cols_a, k->lda, k->batch, k->stride_a);
  if (st == VOX_OK)
    st = set_layout(&p->lb, (cudaDataType_t)k->ab_type, k->rows_b, cols_b, k->ldb, k->batch, k->stride_b);
  if (st == VOX_OK) st = set_layout(&p->lc, (cudaDataType_t)k->c_type, k->m, k->n, k->ldc, k->batch, k->stride_c);
  if (st == VOX_OK) st = lt_check(cublasLtMatmulPreferenceCreate(&pref), "preference");
  uint64_t ws = BLAS_WORKSPACE;
  if (st == VOX_OK)
    st = lt_check(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws),
                  "workspace preference");
  const cublasLtMatmulPreferenceAttributes_t attrs[3] = {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES,
                                                         CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
                                                         CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES};
  const uint32_t aligns[3] = {k->align_a, k->align_b, k->align_c};
  for (int i = 0; i < 3 && st == VOX_OK; i++)
    st = lt_check(cublasLtMatmulPreferenceSetAttribute(pref, attrs[i], &aligns[i], sizeof aligns[i]), "alignment");
  cublasLtMatmulHeuristicResult_t res;
  int found = 0;
  if (st == VOX_OK)
    st = lt_check(cublasLtMatmulAlgoGetHeuristic(blas_handle, p->desc, p->la, p->lb, p->lc, p->lc, pref, 1, &res, &found),
                  "algorithm heuristic");
  if (st == VOX_OK && found < 1)
    st = vox_errorf(VOX_ERR_UNSUPPORTED, "matmul kernel (cuda): cuBLASLt has no algorithm for m=%llu n=%llu k=%llu",
                    (unsigned long long)k->m, (unsigned long long)k->n, (unsigned long long)k->k);
  if (pref) cublasLtMatmulPreferenceDestroy(pref);
  if (st == VOX_OK) p->algo = res.algo;
  else plan_destroy(p);
  return st;
}

/* One cublasLtMatmul: D = C = alpha * op(A') op(B') + beta * C with A' the "b" operand and B' the "a" one. */
static vox_status lt_run(const lt_call *call) {
  const lt_key *k = &call->key;
  lt_plan plan, *use = NULL;
  pthread_mutex_lock(&blas_lock);
  uint64_t h = key_hash(k);
  lt_slot *slot = NULL;
  for (int i = 0; i < BLAS_CACHE_SLOTS; i++) {
    lt_slot *s = &blas_cache[(h + (uint64_t)i) % BLAS_CACHE_SLOTS];
    if (!s->used || memcmp(&s->key, k, sizeof *k) == 0) {
      slot = s;
      break;
    }
  }
  if (slot && slot->used) use = &slot->plan;
  pthread_mutex_unlock(&blas_lock);

  bool owned = false;
  if (!use) {
    VOX_TRY(plan_build(k, &plan));
    use = &plan;
    owned = true;
    pthread_mutex_lock(&blas_lock);
    if (slot && !slot->used) { /* first come keeps the slot; a full cache just rebuilds each call */
      slot->key = *k;
      slot->plan = plan;
      slot->used = true;
      use = &slot->plan;
      owned = false;
    }
    pthread_mutex_unlock(&blas_lock);
  }
  vox_status st = lt_check(cublasLtMatmul(blas_handle, use->desc, &call->alpha, call->a, use->la, call->b, use->lb,
                                          &call->beta, call->c_in, use->lc, call->c, use->lc, &use->algo,
                                          blas_workspace, BLAS_WORKSPACE, blas_stream()),
                           "cublasLtMatmul");
  if (owned) plan_destroy(&plan);
  return st;
}

/* ---- batch folding --------------------------------------------------------------------------------- */

/* The batch dims of the three operands folded jointly: dims of size 1 dropped, neighbours merged when every
 * operand steps through them as one dim. The last folded dim becomes cuBLASLt's strided batch (unless the
 * output overlaps itself there); the others are looped on the host. */
typedef struct folded {
  int nb;
  int64_t shape[VOX_MAX_DIMS];
  int64_t strides[3][VOX_MAX_DIMS];
} folded;

static void fold_batch(int nb, const int64_t *shape, const int64_t *const *strides, folded *f) {
  f->nb = 0;
  for (int d = 0; d < nb; d++) {
    if (shape[d] == 1) continue;
    int j = f->nb;
    bool merge = j > 0;
    for (int o = 0; o < 3 && merge; o++) merge = strides[o][d] * shape[d] == f->strides[o][j - 1];
    if (merge) {
      f->shape[j - 1] *= shape[d];
      for (int o = 0; o < 3; o++) f->strides[o][j - 1] = strides[o][d];
    } else {
      f->shape[j] = shape[d];
      for (int o = 0; o < 3; o++) f->strides[o][j] = strides[o][d];
      f->nb++;
    }
  }
}

static cudaDataType_t lt_type(vox_dtype t) { return t == VOX_BF16 ? CUDA_R_16BF : CUDA_R_32F; }

static vox_status cuda_matmul(const vox_kernel_args *args) {
  const vox_matmul_params *p = args->params;
  const vox_tensor *a0 = args->in[0], *b0 = args->in[1];
  vox_tensor *out = args->out[0];
  int n = out->ndim, nb = n - 2;
  if (n < 2 || a0->ndim != n || b0->ndim != n)
    return vox_errorf(VOX_ERR_SHAPE, "matmul kernel (cuda): operands need the output's %d dims (batch broadcast by strides)", n);
  int64_t M = out->shape[n - 2], N = out->shape[n - 1];
  int64_t K = p->trans_a ? a0->shape[n - 2] : a0->shape[n - 1];
  int64_t am = p->trans_a ? a0->shape[n - 1] : a0->shape[n - 2];
  int64_t bk = p->trans_b ? b0->shape[n - 1] : b0->shape[n - 2];
  int64_t bn = p->trans_b ? b0->shape[n - 2] : b0->shape[n - 1];
  if (am != M || bk != K || bn != N)
    return vox_errorf(VOX_ERR_SHAPE, "matmul kernel (cuda): op(a) is [%lld,%lld], op(b) [%lld,%lld], out [%lld,%lld]",
                      (long long)am, (long long)K, (long long)bk, (long long)bn, (long long)M, (long long)N);
  for (int d = 0; d < nb; d++)
    if (a0->shape[d] != out->shape[d] || b0->shape[d] != out->shape[d])
      return vox_errorf(VOX_ERR_SHAPE, "matmul kernel (cuda): batch dim %d of an operand differs from the output's", d);
  if (!vox_dtype_is_float(a0->dtype) || !vox_dtype_is_float(b0->dtype) || !vox_dtype_is_float(out->dtype))
    return vox_errorf(VOX_ERR_DTYPE, "matmul kernel (cuda): f32 or bf16 operands expected, got %s @ %s -> %s",
                      vox_dtype_name(a0->dtype), vox_dtype_name(b0->dtype), vox_dtype_name(out->dtype));
  int64_t batch = 1;
  for (int d = 0; d < nb; d++) batch *= out->shape[d];
  if (batch == 0 || M == 0 || N == 0) return VOX_OK;
  if (K == 0) { /* an empty sum: out = beta * out */
    if (p->beta == 0.0f) return vox_tensor_fill_(out, 0.0);
    if (p->beta == 1.0f) return VOX_OK;
    return vox_errorf(VOX_ERR_UNSUPPORTED, "matmul kernel (cuda): K = 0 with beta %g", (double)p->beta);
  }
  pthread_once(&blas_once, blas_init);
  if (blas_init_status != VOX_OK) return vox_errorf(blas_init_status, "matmul kernel (cuda): %s", blas_init_msg);

  /* bf16 x bf16 runs on bf16 tensor cores; anything involving f32 runs in f32 (bf16 -> f32 is exact). */
  vox_dtype ab = a0->dtype == VOX_BF16 && b0->dtype == VOX_BF16 ? VOX_BF16 : VOX_F32;
  /* cuBLASLt writes bf16 only from bf16 inputs; f32 inputs with a bf16 output go through an f32 buffer. */
  vox_dtype cd = ab == VOX_BF16 ? out->dtype : VOX_F32;
  vox_tensor *a = NULL, *b = NULL, *c = NULL, *dense = NULL, *out_distinct = NULL;
  vox_status st = as_operand(a0, ab, &a);
  if (st == VOX_OK) st = as_operand(b0, ab, &b);
  lt_mat mc;
  bool c_direct = out->dtype == cd && describe(M, N, out->strides[n - 2], out->strides[n - 1], false, &mc) &&
                  mc.op == CUBLAS_OP_N;
  if (st == VOX_OK && !c_direct) {
    int64_t shape[VOX_MAX_DIMS];
    memcpy(shape, out->shape, sizeof shape);
    for (int d = 0; d < nb; d++)
      if (out->strides[d] == 0) shape[d] = 1;
    st = vox_tensor_view(out, n, shape, out->strides, out->offset, &out_distinct);
    if (st == VOX_OK) st = vox_tensor_empty(cd, VOX_CUDA, n, shape, &dense);
    if (st == VOX_OK && p->beta != 0.0f) st = vox_tensor_copy_(dense, out_distinct);
    if (st == VOX_OK) {
      int64_t strides[VOX_MAX_DIMS];
      memcpy(strides, dense->strides, sizeof strides);
      for (int d = 0; d < nb; d++)
        if (out->strides[d] == 0) strides[d] = 0;
      st = vox_tensor_view(dense, n, out->shape, strides, 0, &c);
    }
    if (st == VOX_OK) describe(M, N, c->strides[n - 2], c->strides[n - 1], false, &mc);
  } else if (st == VOX_OK) {
    c = vox_tensor_retain(out);
  }
  if (st != VOX_OK) goto done;

  /* C^T [N, M] = op(B)^T [N, K] op(A)^T [K, M] in column-major terms. */
  lt_mat ma, mb;
  describe(a->shape[n - 2], a->shape[n - 1], a->strides[n - 2], a->strides[n - 1], p->trans_a, &ma);
  describe(b->shape[n - 2], b->shape[n - 1], b->strides[n - 2], b->strides[n - 1], p->trans_b, &mb);
  size_t esz = vox_dtype_size(ab), csz = vox_dtype_size(cd);
  const char *abase = (const char *)vox_tensor_data(a), *bbase = (const char *)vox_tensor_data(b);
  char *cbase = (char *)vox_tensor_data(c);

  const int64_t *bstr[3] = {b->strides, a->strides, c->strides};
  folded f;
  fold_batch(nb, out->shape, bstr, &f);
  /* The innermost folded dim goes to cuBLASLt unless the output steps by 0 there (batches summing into one
   * matrix must run in order, each later one accumulating with beta = 1). */
  int64_t inner = 1, s_in[3] = {0, 0, 0};
  int outer_nb = f.nb;
  if (f.nb > 0 && f.strides[2][f.nb - 1] != 0 && f.shape[f.nb - 1] <= INT32_MAX) {
    inner = f.shape[f.nb - 1];
    for (int o = 0; o < 3; o++) s_in[o] = f.strides[o][f.nb - 1];
    outer_nb = f.nb - 1;
  }
  int64_t outer = 1;
  for (int d = 0; d < outer_nb; d++) outer *= f.shape[d];
  /* Alignment over every matrix any call touches. */
  int64_t step[3] = {s_in[0], s_in[1], s_in[2]};
  for (int d = 0; d < outer_nb; d++)
    for (int o = 0; o < 3; o++) step[o] |= f.strides[o][d];

  lt_call call = {.alpha = p->alpha};
  call.key = (lt_key){
      .ab_type = lt_type(ab),
      .c_type = lt_type(cd),
      .compute = ab == VOX_F32 && blas_tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F,
      .op_a = mb.op,
      .op_b = ma.op,
      .m = (uint64_t)N,
      .n = (uint64_t)M,
      .k = (uint64_t)K,
      .rows_a = mb.rows,
      .rows_b = ma.rows,
      .lda = mb.ld,
      .ldb = ma.ld,
      .ldc = mc.ld,
      .batch = inner,
      .stride_a = s_in[0],
      .stride_b = s_in[1],
      .stride_c = s_in[2],
      .align_a = alignment(bbase, step[0] * (int64_t)esz),
      .align_b = alignment(abase, step[1] * (int64_t)esz),
      .align_c = alignment(cbase, step[2] * (int64_t)csz),
  };
  for (int64_t bi = 0; bi < outer && st == VOX_OK; bi++) {
    int64_t off[3] = {0, 0, 0}, rem = bi;
    bool later_visit = false; /* an output matrix already written by an earlier iteration */
    for (int d = outer_nb - 1; d >= 0; d--) {
      int64_t i = rem % f.shape[d];
      rem /= f.shape[d];
      for (int o = 0; o < 3; o++) off[o] += i * f.strides[o][d];
      if (f.strides[2][d] == 0 && i != 0) later_visit = true;
    }
    call.beta = later_visit ? 1.0f : p->beta;
    call.key.beta_zero = call.beta == 0.0f;
    call.a = bbase + off[0] * (int64_t)esz;
    call.b = abase + off[1] * (int64_t)esz;
    call.c = cbase + off[2] * (int64_t)csz;
    call.c_in = call.c;
    st = lt_run(&call);
  }
  if (st == VOX_OK && dense) st = vox_tensor_copy_(out_distinct, dense); /* each distinct output matrix once */
  if (st == VOX_OK) {
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) st = vox_errorf(VOX_ERR_DEVICE, "matmul kernel (cuda): %s", cudaGetErrorString(e));
  }

done:
  vox_tensor_release(a);
  vox_tensor_release(b);
  vox_tensor_release(c);
  vox_tensor_release(dense);
  vox_tensor_release(out_distinct);
  return st;
}
VOX_REGISTER_KERNEL(VOX_CUDA, MATMUL, cuda_matmul)
