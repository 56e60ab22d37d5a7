/* Helpers of the HF golden tests (test_qwen2_golden.c, test_whisper_golden.c): .npy fixtures under tests/fixtures/hf
 * as tensors, and a closeness check that logs the norm-relative error beside the elementwise one. */
#ifndef VOX_TEST_HF_GOLDEN_H
#define VOX_TEST_HF_GOLDEN_H

#include <criterion/logging.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "io/npy.h"
#include "vox_test.h"

/* tests/fixtures/hf/<dir>/<name>.npy as a CPU tensor (f32 or i32); fails the test when missing. */
static inline vox_tensor *golden_load(const char *dir, const char *name) {
  char rel[512];
  snprintf(rel, sizeof rel, "hf/%s/%s.npy", dir, name);
  vox_npy a;
  VT_OK(vox_npy_load(vt_fixture(rel), &a));
  vox_tensor *t = NULL;
  VT_OK(vox_tensor_from_host(a.dtype == VOX_NPY_I32 ? VOX_I32 : VOX_F32, VOX_CPU, a.ndim, a.shape, a.data, &t));
  vox_npy_free(&a);
  return t;
}

static inline const char *golden_dir(const char *dir) {
  static _Thread_local char path[1024];
  char rel[512];
  snprintf(rel, sizeof rel, "hf/%s", dir);
  snprintf(path, sizeof path, "%s", vt_fixture(rel));
  return path;
}

/* ||a - b|| / ||b|| over all elements. */
static inline double golden_rel_err(const vox_tensor *a, const vox_tensor *b) {
  int64_t n = vox_tensor_numel(b);
  float *x = malloc((size_t)n * sizeof *x), *y = malloc((size_t)n * sizeof *y);
  cr_assert(x && y);
  VT_OK(vox_tensor_read_f32(a, x));
  VT_OK(vox_tensor_read_f32(b, y));
  double num = 0, den = 0;
  for (int64_t i = 0; i < n; i++) {
    double d = (double)x[i] - y[i];
    num += d * d;
    den += (double)y[i] * y[i];
  }
  free(x);
  free(y);
  return den > 0 ? sqrt(num / den) : sqrt(num);
}

/* Same shape, elementwise |a-b| <= atol + rtol |b|, and the norm-relative error below rel; returns the latter. */
static inline double golden_check(const vox_tensor *a, const vox_tensor *b, double atol, double rtol, double rel,
                                  const char *what) {
  cr_assert(vox_tensor_same_shape(a, b), "%s: shapes differ", what);
  vt_assert_close(a, b, atol, rtol, what);
  double e = golden_rel_err(a, b);
  cr_log_info("%-48s rel err %.2e", what, e);
  cr_assert_lt(e, rel, "%s: relative error %.3e", what, e);
  return e;
}

#endif
