/* Host emulation of the cuBLASLt subset cuda_blas.c uses: descriptors as documented, and cublasLtMatmul as a naive
 * column-major strided-batched GEMM (f32 accumulation, f32/bf16 storage) that rejects inconsistent layouts. */
#pragma once
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cuda_runtime.h>
#include "core/dtype.h"
typedef enum { CUBLAS_STATUS_SUCCESS = 0, CUBLAS_STATUS_INVALID_VALUE = 7 } cublasStatus_t;
typedef enum { CUBLAS_OP_N = 0, CUBLAS_OP_T = 1 } cublasOperation_t;
typedef enum { CUDA_R_32F = 0, CUDA_R_16BF = 14 } cudaDataType_t;
typedef enum { CUBLAS_COMPUTE_32F = 68, CUBLAS_COMPUTE_32F_FAST_TF32 = 77 } cublasComputeType_t;
typedef enum { CUBLASLT_MATMUL_DESC_TRANSA = 3, CUBLASLT_MATMUL_DESC_TRANSB = 4 } cublasLtMatmulDescAttributes_t;
typedef enum { CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT = 5, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET = 6 } cublasLtMatrixLayoutAttribute_t;
typedef enum { CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES = 1, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES = 5,
  CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES = 6, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES = 7 } cublasLtMatmulPreferenceAttributes_t;
typedef struct { int dummy; } *cublasLtHandle_t;
typedef struct { int opa, opb; int compute; } *cublasLtMatmulDesc_t;
typedef struct { int type; uint64_t rows, cols; int64_t ld; int32_t batch; int64_t stride; } *cublasLtMatrixLayout_t;
typedef struct { int dummy; } *cublasLtMatmulPreference_t;
typedef struct { uint64_t data[8]; } cublasLtMatmulAlgo_t;
typedef struct { cublasLtMatmulAlgo_t algo; size_t workspaceSize; cublasStatus_t state; float wavesCount; int reserved[4]; } cublasLtMatmulHeuristicResult_t;
static inline const char *cublasLtGetStatusString(cublasStatus_t s) { return s ? "invalid value" : "success"; }
static inline cublasStatus_t cublasLtCreate(cublasLtHandle_t *h) { *h = calloc(1, 8); return 0; }
static inline cublasStatus_t cublasLtMatmulDescCreate(cublasLtMatmulDesc_t *d, cublasComputeType_t c, cudaDataType_t s) { *d = calloc(1, sizeof **d); (*d)->compute = c; return s == CUDA_R_32F ? 0 : 7; }
static inline cublasStatus_t cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t d) { free(d); return 0; }
static inline cublasStatus_t cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t d, cublasLtMatmulDescAttributes_t a, const void *v, size_t n) {
  int32_t x; memcpy(&x, v, 4); if (a == CUBLASLT_MATMUL_DESC_TRANSA) d->opa = x; else d->opb = x; return n == 4 ? 0 : 7; }
static inline cublasStatus_t cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t *l, cudaDataType_t t, uint64_t r, uint64_t c, int64_t ld) {
  if (ld < (int64_t)r) return 7; *l = calloc(1, sizeof **l); (*l)->type = t; (*l)->rows = r; (*l)->cols = c; (*l)->ld = ld; (*l)->batch = 1; return 0; }
static inline cublasStatus_t cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t l) { free(l); return 0; }
static inline cublasStatus_t cublasLtMatrixLayoutSetAttribute(cublasLtMatrixLayout_t l, cublasLtMatrixLayoutAttribute_t a, const void *v, size_t n) {
  if (a == CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT) memcpy(&l->batch, v, 4); else memcpy(&l->stride, v, 8); return 0; }
static inline cublasStatus_t cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t *p) { *p = calloc(1, 8); return 0; }
static inline cublasStatus_t cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t p) { free(p); return 0; }
static inline cublasStatus_t cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t p, cublasLtMatmulPreferenceAttributes_t a, const void *v, size_t n) { return 0; }
static inline cublasStatus_t cublasLtMatmulAlgoGetHeuristic(cublasLtHandle_t h, cublasLtMatmulDesc_t d, cublasLtMatrixLayout_t a, cublasLtMatrixLayout_t b,
  cublasLtMatrixLayout_t c, cublasLtMatrixLayout_t dd, cublasLtMatmulPreference_t p, int req, cublasLtMatmulHeuristicResult_t *res, int *found) {
  memset(res, 0, sizeof *res); *found = 1; return 0; }
static inline float emu_get(const void *base, int type, int64_t i) { return type == CUDA_R_16BF ? vox_bf16_to_f32(((const uint16_t *)base)[i]) : ((const float *)base)[i]; }
static inline void emu_set(void *base, int type, int64_t i, float v) { if (type == CUDA_R_16BF) ((uint16_t *)base)[i] = vox_f32_to_bf16(v); else ((float *)base)[i] = v; }
static inline cublasStatus_t cublasLtMatmul(cublasLtHandle_t h, cublasLtMatmulDesc_t d, const void *alpha, const void *A, cublasLtMatrixLayout_t la,
  const void *B, cublasLtMatrixLayout_t lb, const void *beta, const void *C, cublasLtMatrixLayout_t lc, void *D, cublasLtMatrixLayout_t ld,
  const cublasLtMatmulAlgo_t *algo, void *ws, size_t wss, cudaStream_t s) {
  float al = *(const float *)alpha, be = *(const float *)beta;
  uint64_t m = lc->rows, n = lc->cols, k = d->opa == CUBLAS_OP_N ? la->cols : la->rows;
  if ((d->opa == CUBLAS_OP_N ? la->rows : la->cols) != m) return 7;
  if ((d->opb == CUBLAS_OP_N ? lb->rows : lb->cols) != k || (d->opb == CUBLAS_OP_N ? lb->cols : lb->rows) != n) return 7;
  if (la->type != lb->type || la->batch != lc->batch || lb->batch != lc->batch || C != D) return 7;
  if (la->type == CUDA_R_32F && lc->type != CUDA_R_32F) return 7;
  for (int32_t bi = 0; bi < lc->batch; bi++)
    for (uint64_t i = 0; i < m; i++)
      for (uint64_t j = 0; j < n; j++) {
        double acc = 0;
        for (uint64_t p = 0; p < k; p++) {
          int64_t ia = d->opa == CUBLAS_OP_N ? (int64_t)(i + p * la->ld) : (int64_t)(p + i * la->ld);
          int64_t ib = d->opb == CUBLAS_OP_N ? (int64_t)(p + j * lb->ld) : (int64_t)(j + p * lb->ld);
          acc += (double)emu_get(A, la->type, bi * la->stride + ia) * emu_get(B, lb->type, bi * lb->stride + ib);
        }
        int64_t ic = bi * lc->stride + (int64_t)(i + j * lc->ld);
        float old = be != 0.0f ? emu_get(C, lc->type, ic) : 0.0f;
        emu_set(D, lc->type, ic, (float)(al * acc + be * old));
      }
  return 0;
}
