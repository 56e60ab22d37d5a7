/* Shared by the CUDA op tests: skipping without a GPU, moving CPU tensors to the device in f32 or bf16, and the
 * graph comparison that runs one op graph on both devices, backpropagates the same upstream gradient and compares
 * the outputs and every input gradient. */
#ifndef VOX_TEST_CUDA_OPS_COMMON_H
#define VOX_TEST_CUDA_OPS_COMMON_H

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/backend.h"
#include "core/kernel_params.h"
#include "core/rng.h"
#include "vox_test.h"

/* The device under test. Building these files with -DCU_SELF_CHECK_ON_CPU runs every comparison CPU against CPU:
 * a check of the test harness itself on machines without a GPU (not registered with ctest). */
#ifdef CU_SELF_CHECK_ON_CPU
#define CU_DEV VOX_CPU
#define CU_REQUIRE_GPU() ((void)0)
#define CU_REQUIRE_REAL_GPU() cr_skip_test("harness self-check on the CPU")
#else
#define CU_DEV VOX_CUDA
/* Every test starts with this: without a device the test is reported skipped, never passed. */
#define CU_REQUIRE_GPU()                                                                                      \
  do {                                                                                                        \
    if (!vox_backend_get(VOX_CUDA)->available)                                                                \
      cr_skip_test("no usable CUDA device on this machine (or vox built without CUDA): CUDA kernels not run"); \
  } while (0)
#define CU_REQUIRE_REAL_GPU() CU_REQUIRE_GPU()
#endif

/* Tolerances: f32 kernels differ from the CPU's only in summation order and fast-math intrinsics; bf16 runs store
 * every intermediate tensor in bf16 (8 mantissa bits), so they are held to bf16 rounding. */
#define CU_F32_ATOL 1e-5
#define CU_F32_RTOL 1e-4
#define CU_BF16_ATOL 2e-2
#define CU_BF16_RTOL 2e-2

static inline vox_tensor *cu_to(const vox_tensor *t, vox_device dev, vox_dtype dt) {
  vox_tensor *o = NULL;
  VT_OK(vox_tensor_to(t, dev, dt, &o));
  return o;
}

/* A CPU f32 copy of t with every value rounded to bf16 (the reference input of a bf16 device run). */
static inline vox_tensor *cu_round_bf16(const vox_tensor *t) {
  vox_tensor *b = cu_to(t, VOX_CPU, VOX_BF16), *f = cu_to(b, VOX_CPU, VOX_F32);
  vox_tensor_release(b);
  return f;
}

static inline void cu_assert_close(const vox_tensor *dev, const vox_tensor *ref, double atol, double rtol,
                                   const char *what) {
  cr_assert(vox_tensor_same_shape(dev, ref), "%s: shapes differ", what);
  vt_assert_close(dev, ref, atol, rtol, what);
}

/* Random i32 tensor with values in [lo, hi). */
static inline vox_tensor *cu_rand_i32(int ndim, const int64_t *shape, uint64_t seed, int32_t lo, int32_t hi) {
  int64_t n = 1;
  for (int d = 0; d < ndim; d++) n *= shape[d];
  int32_t *v = malloc(sizeof *v * (size_t)(n ? n : 1));
  vox_rng r = vox_rng_make(seed);
  for (int64_t i = 0; i < n; i++) v[i] = lo + (int32_t)(vox_rng_next_u64(&r) % (uint64_t)(hi - lo));
  vox_tensor *t = vt_from_i32(ndim, shape, v);
  free(v);
  return t;
}

typedef vox_status (*cu_graph_fn)(void *ctx, vox_tensor *const *in, vox_tensor **out);

/* Runs fn on CPU f32 inputs (bf16-rounded when dt is bf16) and on their CUDA copies in dtype dt (i32 inputs stay
 * i32), compares the outputs, backpropagates one random upstream gradient through both and compares the gradient
 * of every input that requires grad. Inputs are CPU leaves; they are not modified. */
static inline void cu_check_graph(const char *name, cu_graph_fn fn, void *ctx, int n, vox_tensor *const *inputs,
                                  vox_dtype dt, double atol, double rtol) {
  vox_tensor *ref_in[8] = {0}, *dev_in[8] = {0}, *ref_out = NULL, *dev_out = NULL;
  cr_assert(n <= 8);
  for (int i = 0; i < n; i++) {
    const vox_tensor *t = inputs[i];
    bool is_float = vox_dtype_is_float(t->dtype);
    ref_in[i] = is_float && dt == VOX_BF16 ? cu_round_bf16(t) : cu_to(t, VOX_CPU, t->dtype);
    dev_in[i] = cu_to(ref_in[i], CU_DEV, is_float ? dt : t->dtype);
    ref_in[i]->requires_grad = dev_in[i]->requires_grad = t->requires_grad;
  }
  VT_OK(fn(ctx, ref_in, &ref_out));
  VT_OK(fn(ctx, dev_in, &dev_out));
  char what[160];
  snprintf(what, sizeof what, "%s (%s) forward", name, vox_dtype_name(dt));
  cu_assert_close(dev_out, ref_out, atol, rtol, what);
  if (ref_out->requires_grad) {
    vox_tensor *g = vt_randn(ref_out->ndim, ref_out->shape, 977, 1.0f, false);
    vox_tensor *g_ref = dt == VOX_BF16 ? cu_round_bf16(g) : cu_to(g, VOX_CPU, VOX_F32);
    vox_tensor *g_ref_typed = cu_to(g_ref, VOX_CPU, ref_out->dtype);
    vox_tensor *g_dev = cu_to(g_ref, CU_DEV, dev_out->dtype);
    VT_OK(vox_backward(ref_out, g_ref_typed));
    VT_OK(vox_backward(dev_out, g_dev));
    for (int i = 0; i < n; i++) {
      if (!ref_in[i]->requires_grad) continue;
      snprintf(what, sizeof what, "%s (%s) gradient of input %d", name, vox_dtype_name(dt), i);
      cr_assert(ref_in[i]->grad && dev_in[i]->grad, "%s: missing", what);
      cu_assert_close(dev_in[i]->grad, ref_in[i]->grad, atol, rtol, what);
    }
    vox_tensor_release(g);
    vox_tensor_release(g_ref);
    vox_tensor_release(g_ref_typed);
    vox_tensor_release(g_dev);
  }
  vox_tensor_release(ref_out);
  vox_tensor_release(dev_out);
  for (int i = 0; i < n; i++) {
    vox_tensor_release(ref_in[i]);
    vox_tensor_release(dev_in[i]);
  }
}

/* Both precisions with the default tolerances (scaled by `slack` for ops that accumulate long sums). */
static inline void cu_check_graph_both(const char *name, cu_graph_fn fn, void *ctx, int n, vox_tensor *const *inputs,
                                       double slack) {
  cu_check_graph(name, fn, ctx, n, inputs, VOX_F32, CU_F32_ATOL * slack, CU_F32_RTOL * slack);
  cu_check_graph(name, fn, ctx, n, inputs, VOX_BF16, CU_BF16_ATOL * slack, CU_BF16_RTOL * slack);
}

/* Criterion's own main, plus: exit 77 (ctest SKIP_RETURN_CODE) when every test skipped for want of a device, so
 * `ctest -L cuda` reports these programs as skipped rather than passed. The device is probed only after the
 * forked test workers have finished (a CUDA context must not be created before fork). */
int main(int argc, char *argv[]) {
  struct criterion_test_set *tests = criterion_initialize();
  int result = 0;
  if (criterion_handle_args(argc, argv, true)) result = !criterion_run_all_tests(tests);
  criterion_finalize(tests);
  if (result == 0 && CU_DEV == VOX_CUDA && !vox_backend_get(VOX_CUDA)->available) return 77;
  return result;
}

#endif
