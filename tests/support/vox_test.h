/* Helpers shared by vox's Criterion tests: random tensors, closeness checks, and the finite-difference
 * gradient checker every op's test uses. */
#ifndef VOX_TEST_H
#define VOX_TEST_H

#include <criterion/criterion.h>
#include <stdbool.h>

#include "core/autograd.h"
#include "core/ops.h"
#include "core/tensor.h"
#include "models/qwen2.h"

/* Fails the test with the library's error message when a vox call does not return VOX_OK. */
#define VT_OK(expr)                                                                                \
  do {                                                                                             \
    vox_status vt_st_ = (expr);                                                                    \
    cr_assert(vt_st_ == VOX_OK, "%s failed: %s (%s)", #expr, vox_status_name(vt_st_), vox_last_error()); \
  } while (0)

/* A CPU f32 tensor with values N(0, scale^2) (or U(lo, hi) for vt_uniform), seeded. */
vox_tensor *vt_randn(int ndim, const int64_t *shape, uint64_t seed, float scale, bool requires_grad);
vox_tensor *vt_uniform(int ndim, const int64_t *shape, uint64_t seed, float lo, float hi, bool requires_grad);
vox_tensor *vt_from_f32(int ndim, const int64_t *shape, const float *data);
vox_tensor *vt_from_i32(int ndim, const int64_t *shape, const int32_t *data);
#define VT_SHAPE(...) (sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), ((const int64_t[]){__VA_ARGS__})

/* Largest |a-b| / (atol + rtol*|b|) over all elements; <= 1 means close. Reports where, via cr_log. */
double vt_close_ratio(const vox_tensor *a, const vox_tensor *b, double atol, double rtol);
void vt_assert_close(const vox_tensor *a, const vox_tensor *b, double atol, double rtol, const char *what);
void vt_assert_close_f32(const vox_tensor *a, const float *expected, double atol, double rtol, const char *what);

/* The function under check: builds an output from inputs with vox ops (recording autograd). */
typedef vox_status (*vt_fn)(void *ctx, vox_tensor *const *inputs, vox_tensor **out);

typedef struct vt_gradcheck_opts {
  double eps;  /* finite-difference step (default 1e-2; f32 central differences) */
  double atol; /* default 2e-3 */
  double rtol; /* default 2e-2 */
} vt_gradcheck_opts;

/* Compares the autograd gradient of L = sum(fn(inputs) * W) (W fixed random) with central differences for
 * every element of every input that requires grad. Inputs must be contiguous CPU f32 leaves. */
void vt_gradcheck(const char *name, vt_fn fn, void *ctx, int n_inputs, vox_tensor *const *inputs,
                  const vt_gradcheck_opts *opts);

/* Live CPU bytes and autograd nodes, to assert a test frees what it made. */
typedef struct vt_mem_mark {
  size_t bytes;
  long nodes;
} vt_mem_mark;
vt_mem_mark vt_mem_now(void);
void vt_assert_mem_back_to(vt_mem_mark m, const char *what);

/* Path of a file under tests/fixtures. */
const char *vt_fixture(const char *name);
/* Path of Qwen3's tokenizer.json, fetched by data_tools/fetch_qwen_tokenizer.sh (cached); NULL when it cannot be
 * fetched, so callers skip visibly. */
const char *vt_qwen_tokenizer_path(void);

/* A Qwen2-layout LM with a registry of its own, parameter names without a prefix (models register into a shared
 * registry given to them; tests often want one model alone). */
typedef struct vt_lm {
  vox_params *params;
  vox_qwen2 m;
} vt_lm;
vox_status vt_lm_new(const vox_qwen2_config *cfg, uint64_t seed, vt_lm **out);
void vt_lm_free(vt_lm *l); /* NULL is fine */

#endif
