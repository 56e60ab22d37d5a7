/* Host emulation of the CUDA runtime calls src/backend/cuda/cuda_blas.c makes (workspace allocation, errors), for
 * tests/integration/cuda_matmul_emulated.sh. */
#pragma once
#include <stdlib.h>
typedef int cudaError_t;
typedef void *cudaStream_t;
#define cudaSuccess 0
static inline cudaError_t cudaMalloc(void **p, size_t n) { *p = malloc(n); return *p ? 0 : 2; }
static inline cudaError_t cudaGetLastError(void) { return 0; }
static inline const char *cudaGetErrorString(cudaError_t e) { return "emulated"; }
