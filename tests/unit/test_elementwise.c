/* Forward values of the elementwise ops and reductions against hand-computed ones (f32, bf16, i32), dropout
 * determinism and scaling, error messages for bad input, and a leak check over a whole forward/backward. */
#include <criterion/logging.h>
#include <math.h>
#include <string.h>

#include "backend/cpu/cpu_vmath.h"
#include "core/backend.h"
#include "core/kernel_params.h"
#include "vox_test.h"

#define DROP(t) vox_tensor_drop(&(t))

Test(elementwise, broadcast_binary_values) {
  vox_tensor *a = vt_from_f32(VT_SHAPE(2, 1), (float[]){1, -2}), *b = vt_from_f32(VT_SHAPE(3), (float[]){4, 0.5f, -1});
  vox_tensor *o = NULL;
  VT_OK(vox_op_add(a, b, &o));
  cr_assert(o->ndim == 2 && o->shape[0] == 2 && o->shape[1] == 3);
  vt_assert_close_f32(o, (float[]){5, 1.5f, 0, 2, -1.5f, -3}, 0, 0, "add");
  DROP(o);
  VT_OK(vox_op_sub(b, a, &o));
  vt_assert_close_f32(o, (float[]){3, -0.5f, -2, 6, 2.5f, 1}, 0, 0, "sub");
  DROP(o);
  VT_OK(vox_op_mul(a, b, &o));
  vt_assert_close_f32(o, (float[]){4, 0.5f, -1, -8, -1, 2}, 0, 0, "mul");
  DROP(o);
  VT_OK(vox_op_div(a, b, &o));
  vt_assert_close_f32(o, (float[]){0.25f, 2, -1, -0.5f, -4, 2}, 0, 1e-7, "div");
  DROP(o);
  VT_OK(vox_op_maximum(a, b, &o));
  vt_assert_close_f32(o, (float[]){4, 1, 1, 4, 0.5f, -1}, 0, 0, "maximum");
  DROP(o);
  VT_OK(vox_op_minimum(a, b, &o));
  vt_assert_close_f32(o, (float[]){1, 0.5f, -1, -2, -2, -2}, 0, 0, "minimum");
  DROP(o);
  VT_OK(vox_op_compare(a, b, VOX_BIN_GT, &o));
  cr_assert(o->dtype == VOX_F32);
  vt_assert_close_f32(o, (float[]){0, 1, 1, 0, 0, 0}, 0, 0, "compare gt");
  DROP(o);
  VT_OK(vox_op_compare(a, b, VOX_BIN_LE, &o));
  vt_assert_close_f32(o, (float[]){1, 0, 0, 1, 1, 1}, 0, 0, "compare le");
  DROP(o);
  DROP(a);
  DROP(b);
}

/* The vectorisable erf and exp behind the CPU GELU, over dense grids, against libm in double. */
Test(elementwise, vector_erf_and_exp_accuracy) {
  double worst_erf = 0, worst_exp = 0;
  for (float x = 1e-30f; x < 12.0f; x *= 1.00003f)
    for (int sign = -1; sign <= 1; sign += 2) {
      float v = (float)sign * x;
      double want = erf((double)v), err = fabs((double)vox_cpu_erf(v) - want);
      if (err / fmax(fabs(want), 1e-30) > worst_erf) worst_erf = err / fmax(fabs(want), 1e-30);
    }
  cr_assert(vox_cpu_erf(0.0f) == 0.0f);
  for (float x = -87.3f; x <= 0.0f; x += 3.1e-5f) {
    double want = exp((double)x), err = fabs((double)vox_cpu_exp_nonpos(x) - want) / want;
    if (err > worst_exp) worst_exp = err;
  }
  cr_log_info("vector erf: worst relative error %.3g; exp: %.3g", worst_erf, worst_exp);
  cr_assert(worst_erf < 3.5e-7, "erf: relative error %.3g", worst_erf);
  cr_assert(worst_exp < 2.4e-7, "exp: relative error %.3g (2 ulp)", worst_exp);
  cr_assert(vox_cpu_exp_nonpos(0.0f) == 1.0f && vox_cpu_exp_nonpos(-1000.0f) > 0.0f);
  cr_assert(vox_cpu_exp_nonpos(-1000.0f) < 1.3e-38f, "below the float range it stays tiny");
  /* GELU (exact erf form) through the op, against double: erf's absolute error, times |x| / 2 */
  float xs[9] = {-6.0f, -3.0f, -1.5f, -0.3f, 0.0f, 1e-4f, 0.7f, 2.5f, 9.0f}, want[9];
  for (int i = 0; i < 9; i++) want[i] = (float)(0.5 * xs[i] * (1.0 + erf(xs[i] / sqrt(2.0))));
  vox_tensor *x = vt_from_f32(VT_SHAPE(9), xs), *y = NULL;
  VT_OK(vox_op_gelu(x, false, &y));
  vt_assert_close_f32(y, want, 1.5e-6, 1e-6, "gelu");
  vox_tensor_drop(&y), vox_tensor_drop(&x);
}

Test(elementwise, int32_ops) {
  vox_tensor *a = vt_from_i32(VT_SHAPE(3), (int32_t[]){16777217, -5, 7});
  vox_tensor *b = vt_from_i32(VT_SHAPE(3), (int32_t[]){1, 3, 7});
  vox_tensor *o = NULL;
  int32_t got[3];
  VT_OK(vox_op_add(a, b, &o)); /* exact beyond f32's 24-bit integers */
  cr_assert(o->dtype == VOX_I32);
  VT_OK(vox_tensor_read_i32(o, got));
  cr_assert(got[0] == 16777218 && got[1] == -2 && got[2] == 14, "%d %d %d", got[0], got[1], got[2]);
  DROP(o);
  VT_OK(vox_op_mul(a, b, &o));
  VT_OK(vox_tensor_read_i32(o, got));
  cr_assert(got[0] == 16777217 && got[1] == -15 && got[2] == 49);
  DROP(o);
  VT_OK(vox_op_sub(a, b, &o));
  VT_OK(vox_tensor_read_i32(o, got));
  cr_assert(got[0] == 16777216 && got[1] == -8 && got[2] == 0);
  DROP(o);
  VT_OK(vox_op_compare(a, b, VOX_BIN_EQ, &o));
  vt_assert_close_f32(o, (float[]){0, 0, 1}, 0, 0, "i32 eq");
  DROP(o);
  vox_tensor *c = vt_from_i32(VT_SHAPE(3), (int32_t[]){0, 1, 0});
  VT_OK(vox_op_where(c, a, b, &o));
  VT_OK(vox_tensor_read_i32(o, got));
  cr_assert(got[0] == 1 && got[1] == -5 && got[2] == 7 && o->dtype == VOX_I32);
  DROP(o);
  DROP(c);
  DROP(a);
  DROP(b);
}

Test(elementwise, unary_values) {
  vox_tensor *x = vt_from_f32(VT_SHAPE(4), (float[]){0, 1, -1, 4}), *o = NULL;
  struct {
    vox_status (*fn)(vox_tensor *, vox_tensor **);
    const char *name;
    float want[4];
  } cases[] = {
      {vox_op_neg, "neg", {0, -1, 1, -4}},
      {vox_op_exp, "exp", {1, 2.7182818f, 0.36787944f, 54.59815f}},
      {vox_op_abs, "abs", {0, 1, 1, 4}},
      {vox_op_square, "square", {0, 1, 1, 16}},
      {vox_op_sin, "sin", {0, 0.84147098f, -0.84147098f, -0.7568025f}},
      {vox_op_cos, "cos", {1, 0.54030231f, 0.54030231f, -0.65364362f}},
      {vox_op_tanh, "tanh", {0, 0.76159416f, -0.76159416f, 0.99932930f}},
      {vox_op_sigmoid, "sigmoid", {0.5f, 0.73105858f, 0.26894142f, 0.98201379f}},
      {vox_op_relu, "relu", {0, 1, 0, 4}},
      {vox_op_silu, "silu", {0, 0.73105858f, -0.26894142f, 3.92805516f}},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    VT_OK(cases[i].fn(x, &o));
    vt_assert_close_f32(o, cases[i].want, 1e-6, 1e-6, cases[i].name);
    DROP(o);
  }
  VT_OK(vox_op_gelu(x, false, &o));
  vt_assert_close_f32(o, (float[]){0, 0.84134475f, -0.15865525f, 3.99987335f}, 1e-6, 1e-6, "gelu erf");
  DROP(o);
  VT_OK(vox_op_gelu(x, true, &o));
  vt_assert_close_f32(o, (float[]){0, 0.84119199f, -0.15880801f, 3.99992975f}, 1e-6, 1e-6, "gelu tanh");
  DROP(o);
  VT_OK(vox_op_affine(x, 2.0, -1.0, &o));
  vt_assert_close_f32(o, (float[]){-1, 1, -3, 7}, 0, 0, "affine");
  DROP(o);
  VT_OK(vox_op_clamp(x, -0.5, 2.0, &o));
  vt_assert_close_f32(o, (float[]){0, 1, -0.5f, 2}, 0, 0, "clamp");
  DROP(o);
  VT_OK(vox_op_pow_scalar(x, 3.0, &o));
  vt_assert_close_f32(o, (float[]){0, 1, -1, 64}, 0, 1e-6, "pow 3");
  DROP(o);
  DROP(x);
  vox_tensor *p = vt_from_f32(VT_SHAPE(3), (float[]){1, 4, 0.25f});
  VT_OK(vox_op_log(p, &o));
  vt_assert_close_f32(o, (float[]){0, 1.3862944f, -1.3862944f}, 1e-6, 1e-6, "log");
  DROP(o);
  VT_OK(vox_op_sqrt(p, &o));
  vt_assert_close_f32(o, (float[]){1, 2, 0.5f}, 0, 1e-6, "sqrt");
  DROP(o);
  VT_OK(vox_op_rsqrt(p, &o));
  vt_assert_close_f32(o, (float[]){1, 0.5f, 2}, 0, 1e-6, "rsqrt");
  DROP(o);
  VT_OK(vox_op_pow_scalar(p, 0.5, &o));
  vt_assert_close_f32(o, (float[]){1, 2, 0.5f}, 0, 1e-6, "pow 0.5");
  DROP(o);
  DROP(p);
}

Test(elementwise, swiglu_where_masked_fill_values) {
  vox_tensor *g = vt_from_f32(VT_SHAPE(2), (float[]){1, -1}), *u = vt_from_f32(VT_SHAPE(2), (float[]){2, 3}), *o = NULL;
  VT_OK(vox_op_swiglu(g, u, &o));
  vt_assert_close_f32(o, (float[]){2 * 0.73105858f, 3 * -0.26894142f}, 1e-6, 1e-6, "swiglu");
  DROP(o);
  vox_tensor *x = vt_from_f32(VT_SHAPE(2, 2), (float[]){1, 2, 3, 4});
  vox_tensor *m = vt_from_f32(VT_SHAPE(2), (float[]){0, 0.5f}); /* any nonzero is true */
  VT_OK(vox_op_masked_fill(x, m, -INFINITY, &o));
  const float *mf = vox_tensor_f32(o);
  cr_assert(mf[0] == 1 && mf[1] == -INFINITY && mf[2] == 3 && mf[3] == -INFINITY, "masked_fill");
  DROP(o);
  VT_OK(vox_op_where(m, g, x, &o)); /* [2] , [2], [2,2] -> [2,2] */
  vt_assert_close_f32(o, (float[]){1, -1, 3, -1}, 0, 0, "where");
  DROP(o);
  DROP(g);
  DROP(u);
  DROP(x);
  DROP(m);
}

Test(elementwise, bf16_ops_round_like_f32_then_convert) {
  vox_tensor *a = vt_randn(VT_SHAPE(37, 53), 1, 1.0f, false), *b = vt_randn(VT_SHAPE(53), 2, 1.0f, false);
  vox_tensor *ah = NULL, *bh = NULL, *o = NULL, *ref = NULL, *aq = NULL, *bq = NULL, *refh = NULL;
  VT_OK(vox_op_cast(a, VOX_BF16, &ah));
  VT_OK(vox_op_cast(b, VOX_BF16, &bh));
  VT_OK(vox_op_mul(ah, bh, &o));
  cr_assert(o->dtype == VOX_BF16);
  /* reference: the bf16-rounded inputs multiplied in f32, then rounded once */
  VT_OK(vox_op_cast(ah, VOX_F32, &aq));
  VT_OK(vox_op_cast(bh, VOX_F32, &bq));
  VT_OK(vox_op_mul(aq, bq, &ref));
  VT_OK(vox_op_cast(ref, VOX_BF16, &refh));
  vt_assert_close(o, refh, 0, 0, "bf16 mul");
  DROP(o);
  VT_OK(vox_op_silu(ah, &o));
  cr_assert(o->dtype == VOX_BF16);
  DROP(ref);
  VT_OK(vox_op_silu(aq, &ref));
  vt_assert_close(o, ref, 1e-2, 1e-2, "bf16 silu");
  DROP(o);
  DROP(ref);
  int dims[1] = {0};
  VT_OK(vox_op_sum(ah, 1, dims, false, &o));
  VT_OK(vox_op_sum(aq, 1, dims, false, &ref));
  vt_assert_close(o, ref, 1e-2, 1e-2, "bf16 column sum");
  DROP(o);
  DROP(ref);
  vox_tensor *list[] = {a, b, ah, bh, aq, bq, refh};
  for (int i = 0; i < 7; i++) vox_tensor_release(list[i]);
}

Test(elementwise, reductions_values) {
  vox_tensor *x = vt_from_f32(VT_SHAPE(2, 3), (float[]){1, 5, 2, 7, -1, 7}), *o = NULL;
  VT_OK(vox_op_sum(x, 0, NULL, false, &o));
  cr_assert(o->ndim == 0);
  vt_assert_close_f32(o, (float[]){21}, 0, 0, "sum all");
  DROP(o);
  VT_OK(vox_op_sum(x, 1, (int[]){0}, true, &o));
  cr_assert(o->ndim == 2 && o->shape[0] == 1 && o->shape[1] == 3);
  vt_assert_close_f32(o, (float[]){8, 4, 9}, 0, 0, "sum dim 0 keepdim");
  DROP(o);
  VT_OK(vox_op_mean(x, 1, (int[]){-1}, false, &o));
  cr_assert(o->ndim == 1 && o->shape[0] == 2);
  vt_assert_close_f32(o, (float[]){8.0f / 3, 13.0f / 3}, 0, 1e-6, "mean dim -1");
  DROP(o);
  VT_OK(vox_op_max(x, 1, false, &o));
  vt_assert_close_f32(o, (float[]){5, 7}, 0, 0, "max dim 1");
  DROP(o);
  int32_t idx[3];
  VT_OK(vox_op_argmax(x, 1, &o));
  cr_assert(o->dtype == VOX_I32 && o->ndim == 1 && o->shape[0] == 2);
  VT_OK(vox_tensor_read_i32(o, idx));
  cr_assert(idx[0] == 1 && idx[1] == 0, "argmax takes the first maximum: %d %d", idx[0], idx[1]);
  DROP(o);
  VT_OK(vox_op_argmin(x, 0, &o));
  VT_OK(vox_tensor_read_i32(o, idx));
  cr_assert(idx[0] == 0 && idx[1] == 1 && idx[2] == 0, "%d %d %d", idx[0], idx[1], idx[2]);
  DROP(o);
  /* i32 sums stay i32 */
  vox_tensor *xi = vt_from_i32(VT_SHAPE(2, 2), (int32_t[]){1, 2, 3, 4});
  VT_OK(vox_op_sum(xi, 0, NULL, false, &o));
  cr_assert(o->dtype == VOX_I32);
  VT_OK(vox_tensor_read_i32(o, idx));
  cr_assert(idx[0] == 10);
  DROP(o);
  DROP(xi);
  /* max gradient flows to the first maximal element only */
  x->requires_grad = true;
  VT_OK(vox_op_max(x, 1, false, &o));
  vox_tensor *seed_grad = vt_from_f32(VT_SHAPE(2), (float[]){1, 10});
  VT_OK(vox_backward(o, seed_grad));
  vox_tensor_release(seed_grad);
  vt_assert_close_f32(x->grad, (float[]){0, 1, 0, 10, 0, 0}, 0, 0, "max grad to the first maximum");
  DROP(o);
  DROP(x);
}

/* Large reductions: accuracy, and the same bits whichever mode (rows / columns) or thread count computes them. */
Test(elementwise, reduction_accuracy_and_determinism) {
  int64_t n = 1 << 20;
  vox_tensor *x = NULL, *o = NULL, *o2 = NULL;
  VT_OK(vox_tensor_full(VOX_F32, VOX_CPU, 1, &n, 0.1, &x));
  VT_OK(vox_op_sum(x, 0, NULL, false, &o));
  double s;
  VT_OK(vox_tensor_item(o, &s));
  double want = (double)0.1f * (double)n;
  cr_assert(fabs(s - want) / want < 1e-6, "sum of 2^20 x 0.1 = %.9g, expected %.9g", s, want);
  DROP(o);
  DROP(x);
  vox_tensor *y = vt_randn(VT_SHAPE(300, 700), 3, 1.0f, false), *yt = NULL, *c1 = NULL, *c2 = NULL;
  int cols[1] = {0}, rows[1] = {1};
  VT_OK(vox_op_sum(y, 1, cols, false, &c1)); /* column mode */
  VT_OK(vox_op_transpose(y, 0, 1, &yt));
  VT_OK(vox_op_sum(yt, 1, rows, false, &c2)); /* the same sums, row mode over a strided view */
  vt_assert_close(c1, c2, 1e-5, 1e-5, "column vs row mode");
  vox_set_num_threads(1);
  VT_OK(vox_op_sum(y, 0, NULL, false, &o));
  vox_set_num_threads(2);
  VT_OK(vox_op_sum(y, 0, NULL, false, &o2));
  cr_assert(*vox_tensor_f32(o) == *vox_tensor_f32(o2), "sum differs between 1 and 2 threads");
  DROP(o);
  DROP(o2);
  vox_set_num_threads(0);
  DROP(c1);
  DROP(c2);
  DROP(yt);
  DROP(y);
}

Test(elementwise, dropout_determinism_and_scaling) {
  int64_t n = 200000;
  vox_tensor *x = NULL, *a = NULL, *b = NULL, *c = NULL;
  VT_OK(vox_tensor_full(VOX_F32, VOX_CPU, 1, &n, 1.0, &x));
  vox_rng r1 = vox_rng_make(42), r2 = vox_rng_make(42);
  vox_set_num_threads(1);
  VT_OK(vox_op_dropout(x, 0.3f, true, &r1, &a));
  vox_set_num_threads(2);
  VT_OK(vox_op_dropout(x, 0.3f, true, &r2, &b));
  vox_set_num_threads(0);
  cr_assert(memcmp(vox_tensor_f32(a), vox_tensor_f32(b), (size_t)n * 4) == 0, "same seed, 1 vs 2 threads");
  cr_assert(r1.offset == (uint64_t)n, "dropout advances the rng by numel");
  VT_OK(vox_op_dropout(x, 0.3f, true, &r1, &c)); /* the next draw differs */
  cr_assert(memcmp(vox_tensor_f32(a), vox_tensor_f32(c), (size_t)n * 4) != 0);
  const float *v = vox_tensor_f32(a);
  double sum = 0;
  int64_t kept = 0;
  for (int64_t i = 0; i < n; i++) {
    sum += v[i];
    if (v[i] != 0) {
      kept++;
      cr_assert(fabsf(v[i] - 1.0f / 0.7f) < 1e-6f, "kept values are scaled by 1/(1-p)");
    }
  }
  cr_assert(fabs((double)kept / (double)n - 0.7) < 0.005, "kept fraction %g", (double)kept / (double)n);
  cr_assert(fabs(sum / (double)n - 1.0) < 0.01, "mean %g should stay 1", sum / (double)n);
  DROP(a);
  DROP(b);
  DROP(c);
  /* backward regenerates the same mask: d(sum(dropout(x)))/dx equals the forward output for x = 1 */
  x->requires_grad = true;
  vox_rng r3 = vox_rng_make(7);
  VT_OK(vox_op_dropout(x, 0.5f, true, &r3, &a));
  vox_tensor *s = NULL;
  VT_OK(vox_op_sum(a, 0, NULL, false, &s));
  VT_OK(vox_backward(s, NULL));
  vt_assert_close(x->grad, a, 0, 0, "dropout backward mask");
  DROP(s);
  DROP(a);
  /* eval mode and p = 0 are the identity */
  VT_OK(vox_op_dropout(x, 0.5f, false, &r3, &a));
  cr_assert(a == x);
  DROP(a);
  cr_assert(vox_op_dropout(x, 1.5f, true, &r3, &a) == VOX_ERR_INVALID);
  cr_assert(strstr(vox_last_error(), "dropout") != NULL);
  DROP(x);
}

Test(elementwise, straight_through_passes_gradient) {
  vox_tensor *x = vt_from_f32(VT_SHAPE(3), (float[]){0.2f, 1.7f, -2.4f}), *q = NULL, *o = NULL;
  x->requires_grad = true;
  vox_no_grad_begin();
  VT_OK(vox_op_clamp(x, -1, 1, &q));
  vox_no_grad_end();
  VT_OK(vox_op_straight_through(x, q, &o));
  vt_assert_close_f32(o, (float[]){0.2f, 1, -1}, 0, 0, "forward is q");
  vox_tensor *seed_grad = vt_from_f32(VT_SHAPE(3), (float[]){1, 2, 3});
  VT_OK(vox_backward(o, seed_grad));
  vox_tensor_release(seed_grad);
  vt_assert_close_f32(x->grad, (float[]){1, 2, 3}, 0, 0, "gradient passes to x unchanged");
  DROP(o);
  DROP(q);
  DROP(x);
}

#define ASSERT_ERR(call, code, ...)                                                                          \
  do {                                                                                                       \
    vox_tensor *o_ = (vox_tensor *)0x1;                                                                      \
    vox_status st_ = (call);                                                                                 \
    cr_assert(st_ == (code), "%s returned %s: %s", #call, vox_status_name(st_), vox_last_error());           \
    const char *want_[] = {__VA_ARGS__};                                                                     \
    for (size_t k_ = 0; k_ < sizeof want_ / sizeof want_[0]; k_++)                                           \
      cr_assert(strstr(vox_last_error(), want_[k_]) != NULL, "%s: message \"%s\" lacks \"%s\"", #call,       \
                vox_last_error(), want_[k_]);                                                                \
    (void)o_;                                                                                                \
  } while (0)

Test(elementwise, bad_input_errors) {
  vox_tensor *a = vt_randn(VT_SHAPE(2, 3), 1, 1.0f, false), *b = vt_randn(VT_SHAPE(4), 2, 1.0f, false);
  vox_tensor *i = vt_from_i32(VT_SHAPE(2, 3), (int32_t[]){1, 2, 3, 4, 5, 6});
  vox_tensor *o = NULL;
  ASSERT_ERR(vox_op_add(a, b, &o), VOX_ERR_SHAPE, "add", "f32[2,3]", "f32[4]");
  cr_assert(o == NULL);
  ASSERT_ERR(vox_op_mul(b, a, &o), VOX_ERR_SHAPE, "mul", "f32[4]", "f32[2,3]");
  ASSERT_ERR(vox_op_div(a, i, &o), VOX_ERR_DTYPE, "div", "f32[2,3]", "i32[2,3]");
  ASSERT_ERR(vox_op_maximum(a, b, &o), VOX_ERR_SHAPE, "maximum", "f32[2,3]", "f32[4]");
  ASSERT_ERR(vox_op_compare(a, b, VOX_BIN_LT, &o), VOX_ERR_SHAPE, "compare", "f32[2,3]", "f32[4]");
  ASSERT_ERR(vox_op_where(i, a, b, &o), VOX_ERR_SHAPE, "where", "f32[2,3]", "f32[4]");
  ASSERT_ERR(vox_op_masked_fill(b, a, 0.0, &o), VOX_ERR_SHAPE, "masked_fill", "f32[2,3]", "f32[4]");
  ASSERT_ERR(vox_op_swiglu(a, b, &o), VOX_ERR_SHAPE, "swiglu", "f32[2,3]", "f32[4]");
  ASSERT_ERR(vox_op_exp(i, &o), VOX_ERR_DTYPE, "exp", "i32[2,3]");
  ASSERT_ERR(vox_op_sum(a, 1, (int[]){2}, false, &o), VOX_ERR_INDEX, "sum", "dim 2", "f32[2,3]");
  ASSERT_ERR(vox_op_mean(a, 2, (int[]){1, -1}, false, &o), VOX_ERR_INVALID, "mean", "twice", "f32[2,3]");
  ASSERT_ERR(vox_op_max(a, -3, false, &o), VOX_ERR_INDEX, "max", "f32[2,3]");
  ASSERT_ERR(vox_op_argmax(a, 5, &o), VOX_ERR_INDEX, "argmax", "f32[2,3]");
  ASSERT_ERR(vox_op_reshape(a, 2, (int64_t[]){4, 2}, &o), VOX_ERR_SHAPE, "reshape", "f32[2,3]", "[4,2]");
  ASSERT_ERR(vox_op_expand(a, 2, (int64_t[]){4, 3}, &o), VOX_ERR_SHAPE, "expand", "f32[2,3]", "[4,3]");
  ASSERT_ERR(vox_op_permute(a, (int[]){1, 1}, &o), VOX_ERR_INVALID, "permute", "f32[2,3]");
  ASSERT_ERR(vox_op_transpose(a, 0, 2, &o), VOX_ERR_INDEX, "transpose", "f32[2,3]");
  ASSERT_ERR(vox_op_slice(a, 2, 0, 1, 1, &o), VOX_ERR_INDEX, "slice", "f32[2,3]");
  ASSERT_ERR(vox_op_slice(a, 1, 0, 1, -1, &o), VOX_ERR_INVALID, "slice", "f32[2,3]");
  vox_tensor *pair[2] = {a, b};
  ASSERT_ERR(vox_op_concat(2, pair, 0, &o), VOX_ERR_SHAPE, "concat", "f32[2,3]", "f32[4]");
  vox_tensor *mixed[2] = {a, i};
  ASSERT_ERR(vox_op_concat(2, mixed, 0, &o), VOX_ERR_DTYPE, "concat", "f32[2,3]", "i32[2,3]");
  vox_tensor *parts[2];
  ASSERT_ERR(vox_op_split(a, 1, 2, (int64_t[]){1, 1}, parts), VOX_ERR_SHAPE, "split", "f32[2,3]");
  ASSERT_ERR(vox_op_sum_to(a, 2, (int64_t[]){2, 2}, &o), VOX_ERR_SHAPE, "sum_to", "f32[2,3]", "[2,2]");
  ASSERT_ERR(vox_op_clamp(a, 1, -1, &o), VOX_ERR_INVALID, "clamp", "f32[2,3]");
  ASSERT_ERR(vox_op_straight_through(a, b, &o), VOX_ERR_SHAPE, "straight_through", "f32[2,3]", "f32[4]");
  cr_assert(o == NULL, "failed ops leave *out NULL");
  DROP(a);
  DROP(b);
  DROP(i);
}

/* Intermediates are dropped before backward (the graph alone keeps them); afterwards every byte and every
 * node is gone again. */
Test(elementwise, graph_memory_returns_to_baseline) {
  vt_mem_mark m = vt_mem_now();
  vox_tensor *x = vt_randn(VT_SHAPE(4, 6), 1, 1.0f, true), *w = vt_randn(VT_SHAPE(6), 2, 1.0f, true);
  vox_tensor *b = vt_randn(VT_SHAPE(4, 1), 3, 1.0f, true);
  for (int step = 0; step < 3; step++) {
    vox_tensor *t1 = NULL, *t2 = NULL, *t3 = NULL, *t4 = NULL, *parts[2] = {0}, *t5 = NULL, *loss = NULL, *xt = NULL;
    VT_OK(vox_op_mul(x, w, &t1));
    VT_OK(vox_op_add(t1, b, &t2));
    DROP(t1);
    VT_OK(vox_op_gelu(t2, false, &t3));
    DROP(t2);
    VT_OK(vox_op_split(t3, 1, 2, (int64_t[]){3, 3}, parts));
    DROP(t3);
    VT_OK(vox_op_swiglu(parts[0], parts[1], &t4));
    DROP(parts[0]);
    DROP(parts[1]);
    VT_OK(vox_op_transpose(x, 0, 1, &xt));
    VT_OK(vox_op_max(xt, 0, false, &t5));
    DROP(xt);
    vox_tensor *cat[2] = {t4, t5};
    vox_tensor *t6 = NULL, *t7 = NULL;
    VT_OK(vox_op_reshape(t4, 1, (int64_t[]){-1}, &t6));
    cat[0] = t6;
    VT_OK(vox_op_concat(2, cat, 0, &t7));
    DROP(t4);
    DROP(t5);
    DROP(t6);
    VT_OK(vox_op_mean(t7, 0, NULL, false, &loss));
    DROP(t7);
    cr_assert(vox_autograd_live_nodes() > m.nodes);
    VT_OK(vox_backward(loss, NULL));
    DROP(loss);
    cr_assert(x->grad && w->grad && b->grad);
    cr_assert(vox_tensor_is_contiguous(x->grad) && x->grad->shape[0] == 4 && x->grad->shape[1] == 6);
    cr_assert(vox_tensor_is_contiguous(b->grad) && b->grad->shape[1] == 1);
  }
  DROP(x);
  DROP(w);
  DROP(b);
  vt_assert_mem_back_to(m, "graph of mul/add/gelu/split/swiglu/max/concat/mean");
  /* a graph that is never backpropagated is freed with its output */
  vox_tensor *y = vt_randn(VT_SHAPE(8), 4, 1.0f, true), *z = NULL, *s = NULL;
  VT_OK(vox_op_exp(y, &z));
  VT_OK(vox_op_sum(z, 0, NULL, false, &s));
  DROP(z);
  DROP(y);
  DROP(s);
  vt_assert_mem_back_to(m, "graph freed without backward");
}

/* Leaves receive exclusive contiguous gradients even when backward hands out views or one tensor twice. */
Test(elementwise, leaf_gradients_are_exclusive) {
  vox_tensor *x = vt_randn(VT_SHAPE(3, 4), 1, 1.0f, true), *y = vt_randn(VT_SHAPE(3, 4), 2, 1.0f, true);
  vox_tensor *s = NULL, *p = NULL;
  VT_OK(vox_op_add(x, y, &s)); /* backward gives the same tensor to both inputs */
  VT_OK(vox_op_transpose(s, 0, 1, &p));
  vox_tensor *g = vt_randn(VT_SHAPE(4, 3), 3, 1.0f, false);
  VT_OK(vox_backward(p, g));
  cr_assert(x->grad != y->grad && x->grad->storage != y->grad->storage);
  cr_assert(vox_tensor_is_contiguous(x->grad) && x->grad->storage != g->storage);
  vt_assert_close(x->grad, y->grad, 0, 0, "both get g^T");
  DROP(s);
  DROP(p);
  DROP(g);
  DROP(x);
  DROP(y);
}
