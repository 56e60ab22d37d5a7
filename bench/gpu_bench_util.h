/* Shared by the GPU benchmark programs (bench/bench_gpu_*.c): wall-clock timing around device synchronisation,
 * result lines in the one format bench/run_gpu.sh tabulates, and the CUDA availability check. */
#ifndef VOX_BENCH_GPU_UTIL_H
#define VOX_BENCH_GPU_UTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "core/backend.h"
#include "core/status.h"

static inline double gb_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

#define GB_CHECK(expr)                                                       \
  do {                                                                       \
    if ((expr) != VOX_OK) {                                                  \
      fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #expr, vox_last_error()); \
      exit(1);                                                               \
    }                                                                        \
  } while (0)

static inline void gb_sync(void) { GB_CHECK(vox_backend_get(VOX_CUDA)->synchronize()); }

static inline void gb_need_gpu(const char *prog) {
  if (!vox_backend_get(VOX_CUDA)->available) {
    fprintf(stderr, "%s: no CUDA device available\n", prog);
    exit(3);
  }
}

/* "RESULT <benchmark> <case> <implementation> <value> <unit>": one line per measurement. */
static inline void gb_result(const char *bench, const char *kase, const char *impl, double value, const char *unit) {
  printf("RESULT %s %s %s %.4g %s\n", bench, kase, impl, value, unit);
  fflush(stdout);
}

#endif
