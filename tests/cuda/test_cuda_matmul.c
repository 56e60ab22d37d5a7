/* CUDA MATMUL (cuBLASLt) against the CPU kernel on random inputs: f32 and bf16, batched with broadcast batch
 * dims, transposes, strided and column-major operands, alpha/beta, odd sizes, and matmul/linear gradients. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/backend.h"
#include "core/kernel_params.h"
#include "vox_test.h"

static void need_gpu(void) {
  if (!vox_backend_get(VOX_CUDA)->available) cr_skip_test("no CUDA device: CUDA matmul tests skipped");
}

static vox_tensor *to_cuda(const vox_tensor *t, vox_dtype dtype) {
  vox_tensor *o = NULL;
  VT_OK(vox_tensor_to(t, VOX_CUDA, dtype, &o));
  return o;
}
static vox_tensor *to_cpu(const vox_tensor *t) {
  vox_tensor *o = NULL;
  VT_OK(vox_tensor_to(t, VOX_CPU, VOX_F32, &o));
  return o;
}
/* x rounded through bf16, as f32 on the CPU (the exact values a bf16 GEMM multiplies). */
static vox_tensor *bf16_rounded(const vox_tensor *x) {
  vox_tensor *b = NULL, *f = NULL;
  VT_OK(vox_tensor_to(x, VOX_CPU, VOX_BF16, &b));
  VT_OK(vox_tensor_to(b, VOX_CPU, VOX_F32, &f));
  vox_tensor_release(b);
  return f;
}

/* Largest |x| (for tolerances relative to a tensor's scale: bf16 sums of rounded partial products err in
 * proportion to the partials, not to a result that happens to cancel). */
static double max_abs(const vox_tensor *t) {
  int64_t n = vox_tensor_numel(t);
  float *v = malloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
  VT_OK(vox_tensor_read_f32(t, v));
  double m = 0;
  for (int64_t i = 0; i < n; i++) m = fmax(m, fabs(v[i]));
  free(v);
  return m;
}

/* Runs the MATMUL kernel directly on CPU and CUDA with the same operands (any views) and compares. */
static void check_kernel(const vox_tensor *a, const vox_tensor *b, vox_tensor *out_cpu, vox_tensor *out_gpu,
                         vox_matmul_params p, double atol, double rtol, const char *what) {
  vox_kernel_args ka = {.n_in = 2, .n_out = 1, .in = {a, b}, .out = {out_cpu}, .params = &p};
  VT_OK(vox_kernel_run("test", VOX_K_MATMUL, &ka));
  vox_tensor *ag = to_cuda(a, a->dtype), *bg = to_cuda(b, b->dtype); /* contiguous copies */
  vox_kernel_args kg = {.n_in = 2, .n_out = 1, .in = {ag, bg}, .out = {out_gpu}, .params = &p};
  VT_OK(vox_kernel_run("test", VOX_K_MATMUL, &kg));
  vox_tensor *back = to_cpu(out_gpu);
  vt_assert_close(back, out_cpu, atol, rtol, what);
  vox_tensor_release(back);
  vox_tensor_release(ag);
  vox_tensor_release(bg);
}

/* out = op(a) @ op(b) through vox_op_matmul on both devices, values and gradients. */
static void check_op(int na, const int64_t *sa, int nb, const int64_t *sb, bool ta, bool tb, vox_dtype dt,
                     uint64_t seed, double atol, double rtol, const char *what) {
  vox_tensor *a = vt_randn(na, sa, seed, 1.0f, true), *b = vt_randn(nb, sb, seed + 1, 1.0f, true);
  vox_tensor *ar = dt == VOX_BF16 ? bf16_rounded(a) : vox_tensor_retain(a);
  vox_tensor *br = dt == VOX_BF16 ? bf16_rounded(b) : vox_tensor_retain(b);
  ar->requires_grad = br->requires_grad = true;
  vox_tensor *c = NULL;
  VT_OK(vox_op_matmul(ar, br, ta, tb, &c));
  /* The loss weights are bf16-exact too, so both devices back-propagate the same upstream gradient. */
  vox_tensor *w0 = vt_randn(c->ndim, c->shape, seed + 2, 1.0f, false), *cw = NULL, *loss = NULL;
  vox_tensor *w = dt == VOX_BF16 ? bf16_rounded(w0) : vox_tensor_retain(w0);
  vox_tensor_release(w0);
  VT_OK(vox_op_mul(c, w, &cw));
  VT_OK(vox_op_sum(cw, 0, NULL, false, &loss));
  VT_OK(vox_backward(loss, NULL));

  vox_tensor *ag = to_cuda(ar, dt), *bg = to_cuda(br, dt), *wg = to_cuda(w, dt);
  ag->requires_grad = bg->requires_grad = true;
  vox_tensor *cg = NULL, *cwg = NULL, *lg = NULL, *lgf = NULL;
  VT_OK(vox_op_matmul(ag, bg, ta, tb, &cg));
  cr_assert(cg->dtype == dt, "%s: output dtype %s", what, vox_dtype_name(cg->dtype));
  VT_OK(vox_op_mul(cg, wg, &cwg));
  VT_OK(vox_op_cast(cwg, VOX_F32, &lgf));
  VT_OK(vox_op_sum(lgf, 0, NULL, false, &lg));
  VT_OK(vox_backward(lg, NULL));
  vox_tensor *c_back = to_cpu(cg), *ga = to_cpu(ag->grad), *gb = to_cpu(bg->grad);
  char msg[160];
  /* bf16: atol is relative to the largest element of each reference. */
  snprintf(msg, sizeof msg, "%s: forward", what);
  vt_assert_close(c_back, c, dt == VOX_BF16 ? atol * max_abs(c) : atol, rtol, msg);
  snprintf(msg, sizeof msg, "%s: grad a", what);
  vt_assert_close(ga, ar->grad, dt == VOX_BF16 ? atol * max_abs(ar->grad) : atol, rtol, msg);
  snprintf(msg, sizeof msg, "%s: grad b", what);
  vt_assert_close(gb, br->grad, dt == VOX_BF16 ? atol * max_abs(br->grad) : atol, rtol, msg);
  vox_tensor *all[] = {a, b, ar, br, c, w, cw, loss, ag, bg, wg, cg, cwg, lg, lgf, c_back, ga, gb};
  for (size_t i = 0; i < sizeof all / sizeof *all; i++) vox_tensor_release(all[i]);
}

Test(cuda_matmul, f32_shapes_and_transposes) {
  need_gpu();
  /* Odd sizes on purpose: no dim a multiple of a tile. */
  const int64_t M = 37, K = 53, N = 29;
  for (int t = 0; t < 4; t++) {
    bool ta = t & 1, tb = t & 2;
    int64_t sa[2] = {ta ? K : M, ta ? M : K}, sb[2] = {tb ? N : K, tb ? K : N};
    char what[64];
    snprintf(what, sizeof what, "f32 2-D ta=%d tb=%d", ta, tb);
    check_op(2, sa, 2, sb, ta, tb, VOX_F32, 10 + t, 1e-4, 1e-4, what);
  }
}

Test(cuda_matmul, f32_batched_broadcast) {
  need_gpu();
  /* [2,3,M,K] @ [K,N] (weight shared over the batch), [2,1,K,M]^T @ [3,N,K]^T (broadcast both ways). */
  check_op(4, (int64_t[]){2, 3, 17, 40}, 2, (int64_t[]){40, 33}, false, false, VOX_F32, 20, 1e-4, 1e-4,
           "batched @ shared");
  check_op(4, (int64_t[]){2, 1, 40, 17}, 3, (int64_t[]){3, 33, 40}, true, true, VOX_F32, 21, 1e-4, 1e-4,
           "broadcast both, transposed");
  check_op(3, (int64_t[]){5, 1, 64}, 3, (int64_t[]){5, 64, 1}, false, false, VOX_F32, 22, 1e-4, 1e-4, "vectors");
}

Test(cuda_matmul, bf16_batched) {
  need_gpu();
  /* bf16 x bf16 products are exact in f32; outputs are rounded to bf16 (8 bits), and the gradient of the
   * shared operand sums bf16 per-batch products: atol 1e-2 of the largest element, rtol 1e-2. */
  check_op(3, (int64_t[]){4, 33, 72}, 3, (int64_t[]){4, 72, 45}, false, false, VOX_BF16, 30, 1e-2, 1e-2, "bf16 batched");
  check_op(3, (int64_t[]){4, 72, 33}, 2, (int64_t[]){45, 72}, true, true, VOX_BF16, 31, 1e-2, 1e-2,
           "bf16 transposed, shared b");
}

Test(cuda_matmul, kernel_strides_alpha_beta) {
  need_gpu();
  /* a: a permuted view (neither last dim unit-stride after the permute -> the copy path); b column-major;
   * out: a slice of a wider matrix with beta = 0.5 reading its old values. */
  vox_tensor *base = vt_randn(3, (int64_t[]){19, 3, 23}, 40, 1.0f, false); /* [M, batch, K] */
  vox_tensor *a = NULL, *bt = vt_randn(3, (int64_t[]){3, 31, 23}, 41, 1.0f, false), *b = NULL;
  VT_OK(vox_tensor_view_permute(base, (const int[]){1, 0, 2}, &a));          /* [3, 19, 23], rows stride 69 */
  VT_OK(vox_tensor_view_permute(bt, (const int[]){0, 2, 1}, &b));              /* [3, 23, 31] column-major */
  vox_tensor *wide = vt_randn(3, (int64_t[]){3, 19, 40}, 42, 1.0f, false), *wide_g = to_cuda(wide, VOX_F32);
  vox_tensor *oc = NULL, *og = NULL;
  VT_OK(vox_tensor_view_slice(wide, 2, 5, 36, 1, &oc));
  VT_OK(vox_tensor_view_slice(wide_g, 2, 5, 36, 1, &og));
  vox_matmul_params p = {.trans_a = false, .trans_b = false, .alpha = 1.5f, .beta = 0.5f};
  /* check_kernel uploads contiguous copies of a and b; the strided forms are exercised through the views below. */
  vox_tensor *ag = to_cuda(base, VOX_F32), *btg = to_cuda(bt, VOX_F32), *av = NULL, *bv = NULL;
  VT_OK(vox_tensor_view_permute(ag, (const int[]){1, 0, 2}, &av));
  VT_OK(vox_tensor_view_permute(btg, (const int[]){0, 2, 1}, &bv));
  vox_kernel_args kc = {.n_in = 2, .n_out = 1, .in = {a, b}, .out = {oc}, .params = &p};
  VT_OK(vox_kernel_run("test", VOX_K_MATMUL, &kc));
  vox_kernel_args kg = {.n_in = 2, .n_out = 1, .in = {av, bv}, .out = {og}, .params = &p};
  VT_OK(vox_kernel_run("test", VOX_K_MATMUL, &kg));
  vox_tensor *back = to_cpu(wide_g);
  vt_assert_close(back, wide, 1e-4, 1e-4, "strided operands, alpha/beta, untouched columns");
  vox_tensor *all[] = {base, a, bt, b, wide, wide_g, oc, og, ag, btg, av, bv, back};
  for (size_t i = 0; i < sizeof all / sizeof *all; i++) vox_tensor_release(all[i]);
}

Test(cuda_matmul, kernel_output_broadcast_accumulates) {
  need_gpu();
  /* An output batch dim of stride 0 (several products summing into one matrix), beta = 1. */
  vox_tensor *a = vt_randn(3, (int64_t[]){4, 9, 11}, 50, 1.0f, false), *b = vt_randn(3, (int64_t[]){4, 11, 7}, 51, 1.0f, false);
  vox_tensor *o1 = vt_randn(2, (int64_t[]){9, 7}, 52, 1.0f, false), *o1g = to_cuda(o1, VOX_F32), *ov = NULL, *ovg = NULL;
  int64_t shape[3] = {4, 9, 7}, strides[3] = {0, 7, 1};
  VT_OK(vox_tensor_view(o1, 3, shape, strides, 0, &ov));
  VT_OK(vox_tensor_view(o1g, 3, shape, strides, 0, &ovg));
  vox_matmul_params p = {.alpha = 1.0f, .beta = 1.0f};
  check_kernel(a, b, ov, ovg, p, 1e-4, 1e-4, "stride-0 output batch");
  vox_tensor *all[] = {a, b, o1, o1g, ov, ovg};
  for (size_t i = 0; i < sizeof all / sizeof *all; i++) vox_tensor_release(all[i]);
}

Test(cuda_matmul, bf16_in_f32_out_and_f32_in_bf16_out) {
  need_gpu();
  vox_tensor *a = vt_randn(2, (int64_t[]){65, 130}, 60, 1.0f, false), *b = vt_randn(2, (int64_t[]){130, 47}, 61, 1.0f, false);
  vox_tensor *ar = bf16_rounded(a), *br = bf16_rounded(b);
  vox_tensor *ref = NULL;
  VT_OK(vox_tensor_empty(VOX_F32, VOX_CPU, 2, (int64_t[]){65, 47}, &ref));
  vox_matmul_params p = {.alpha = 1.0f, .beta = 0.0f};
  vox_kernel_args kc = {.n_in = 2, .n_out = 1, .in = {ar, br}, .out = {ref}, .params = &p};
  VT_OK(vox_kernel_run("test", VOX_K_MATMUL, &kc));
  /* bf16 operands, f32 output: f32 accumulation of exact products. */
  vox_tensor *ag = to_cuda(ar, VOX_BF16), *bg = to_cuda(br, VOX_BF16), *o32 = NULL, *o16 = NULL;
  VT_OK(vox_tensor_empty(VOX_F32, VOX_CUDA, 2, (int64_t[]){65, 47}, &o32));
  VT_OK(vox_tensor_empty(VOX_BF16, VOX_CUDA, 2, (int64_t[]){65, 47}, &o16));
  vox_kernel_args k1 = {.n_in = 2, .n_out = 1, .in = {ag, bg}, .out = {o32}, .params = &p};
  VT_OK(vox_kernel_run("test", VOX_K_MATMUL, &k1));
  vox_tensor *h32 = to_cpu(o32);
  vt_assert_close(h32, ref, 1e-4, 1e-4, "bf16 in, f32 out");
  /* f32 operands, bf16 output (through an f32 buffer). */
  vox_tensor *af = to_cuda(ar, VOX_F32), *bf = to_cuda(br, VOX_F32);
  vox_kernel_args k2 = {.n_in = 2, .n_out = 1, .in = {af, bf}, .out = {o16}, .params = &p};
  VT_OK(vox_kernel_run("test", VOX_K_MATMUL, &k2));
  vox_tensor *h16 = to_cpu(o16);
  vt_assert_close(h16, ref, 2e-2, 8e-3, "f32 in, bf16 out");
  vox_tensor *all[] = {a, b, ar, br, ref, ag, bg, o32, o16, h32, af, bf, h16};
  for (size_t i = 0; i < sizeof all / sizeof *all; i++) vox_tensor_release(all[i]);
}

Test(cuda_matmul, linear_forward_backward) {
  need_gpu();
  vox_tensor *x = vt_randn(3, (int64_t[]){3, 21, 48}, 70, 1.0f, true), *w = vt_randn(2, (int64_t[]){35, 48}, 71, 0.2f, true),
             *b = vt_randn(1, (int64_t[]){35}, 72, 1.0f, true);
  vox_tensor *y = NULL, *l = NULL;
  VT_OK(vox_op_linear(x, w, b, &y));
  VT_OK(vox_op_sum(y, 0, NULL, false, &l));
  VT_OK(vox_backward(l, NULL));
  vox_tensor *xg = to_cuda(x, VOX_F32), *wg = to_cuda(w, VOX_F32), *bg = to_cuda(b, VOX_F32);
  xg->requires_grad = wg->requires_grad = bg->requires_grad = true;
  vox_tensor *yg = NULL, *lg = NULL;
  VT_OK(vox_op_linear(xg, wg, bg, &yg));
  VT_OK(vox_op_sum(yg, 0, NULL, false, &lg));
  VT_OK(vox_backward(lg, NULL));
  vox_tensor *h[4] = {to_cpu(yg), to_cpu(xg->grad), to_cpu(wg->grad), to_cpu(bg->grad)};
  vt_assert_close(h[0], y, 1e-4, 1e-4, "linear forward");
  vt_assert_close(h[1], x->grad, 1e-4, 1e-4, "linear dx");
  vt_assert_close(h[2], w->grad, 1e-4, 1e-4, "linear dw");
  vt_assert_close(h[3], b->grad, 1e-4, 1e-4, "linear db");
  vox_tensor *all[] = {x, w, b, y, l, xg, wg, bg, yg, lg, h[0], h[1], h[2], h[3]};
  for (size_t i = 0; i < sizeof all / sizeof *all; i++) vox_tensor_release(all[i]);
}

#include "cuda_skip_main.h"
