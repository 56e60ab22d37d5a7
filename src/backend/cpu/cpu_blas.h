/* OpenBLAS thread control for CPU kernels that call GEMM from inside their own OpenMP loops: the pthread
 * OpenBLAS would otherwise start its own threads per call and oversubscribe the cores. */
#ifndef VOX_BACKEND_CPU_BLAS_H
#define VOX_BACKEND_CPU_BLAS_H

#include <cblas.h>

/* Makes GEMM single-threaded until vox_cpu_blas_restore(saved). Call outside parallel regions. */
static inline int vox_cpu_blas_single(void) {
  int n = openblas_get_num_threads();
  if (n != 1) openblas_set_num_threads(1);
  return n;
}
static inline void vox_cpu_blas_restore(int saved) {
  if (saved != 1) openblas_set_num_threads(saved);
}

#endif
