/* CUDA kernels against the CPU kernels: copies and casts, fill, RNG and dropout (bit-identical), elementwise
 * ops with broadcast and strided operands, reductions, softmax, cross-entropy and indexing, forward and backward,
 * in f32 and bf16. Every test skips (visibly) without a GPU. */
#include <math.h>
#include <string.h>

#include "test_cuda_ops_common.h"

/* A view of `dev_base` laid out exactly as `view` lays out `cpu_base` (same shape, strides and offset). */
static vox_tensor *same_view(const vox_tensor *dev_base, const vox_tensor *view) {
  vox_tensor *v = NULL;
  VT_OK(vox_tensor_view(dev_base, view->ndim, view->shape, view->strides, view->offset, &v));
  return v;
}

static void run_kernel(vox_kernel_id id, int n_in, const vox_tensor *const *in, int n_out, vox_tensor *const *out,
                       const void *params) {
  vox_kernel_args a = {.n_in = n_in, .n_out = n_out, .params = params};
  for (int i = 0; i < n_in; i++) a.in[i] = in[i];
  for (int i = 0; i < n_out; i++) a.out[i] = out[i];
  VT_OK(vox_kernel_run("test", id, &a));
}

/* Bitwise equality of two tensors of one dtype (any devices). */
static void assert_bits_equal(const vox_tensor *a, const vox_tensor *b, const char *what) {
  vox_tensor *ha = cu_to(a, VOX_CPU, a->dtype), *hb = cu_to(b, VOX_CPU, b->dtype);
  cr_assert(ha->dtype == hb->dtype && vox_tensor_numel(ha) == vox_tensor_numel(hb), "%s: dtype/size differ", what);
  size_t es = vox_dtype_size(ha->dtype);
  const unsigned char *pa = vox_tensor_data(ha), *pb = vox_tensor_data(hb);
  for (int64_t i = 0; i < vox_tensor_numel(ha); i++)
    cr_assert(!memcmp(pa + i * es, pb + i * es, es), "%s: element %lld differs (%g vs %g)", what, (long long)i,
              ha->dtype == VOX_I32 ? (double)((int32_t *)pa)[i] : 0.0, hb->dtype == VOX_I32 ? (double)((int32_t *)pb)[i] : 0.0);
  vox_tensor_release(ha);
  vox_tensor_release(hb);
}

Test(cuda_ops, copy_casts_strided) {
  CU_REQUIRE_GPU();
  vox_tensor *x = vt_randn(VT_SHAPE(3, 5, 7), 1, 100.0f, false);
  vox_dtype dts[3] = {VOX_F32, VOX_BF16, VOX_I32};
  for (int s = 0; s < 3; s++)
    for (int d = 0; d < 3; d++) {
      vox_tensor *src_cpu = cu_to(x, VOX_CPU, dts[s]), *src_dev = cu_to(src_cpu, CU_DEV, dts[s]);
      vox_tensor *tc = NULL, *td = NULL; /* transposed views: every copy is strided */
      VT_OK(vox_tensor_view_permute(src_cpu, (int[]){2, 0, 1}, &tc));
      td = same_view(src_dev, tc);
      vox_tensor *oc = NULL, *od = NULL;
      VT_OK(vox_tensor_empty(dts[d], VOX_CPU, 3, tc->shape, &oc));
      VT_OK(vox_tensor_empty(dts[d], CU_DEV, 3, tc->shape, &od));
      VT_OK(vox_tensor_copy_(oc, tc));
      VT_OK(vox_tensor_copy_(od, td));
      char what[64];
      snprintf(what, sizeof what, "copy %s -> %s", vox_dtype_name(dts[s]), vox_dtype_name(dts[d]));
      assert_bits_equal(od, oc, what);
      /* and into a strided destination */
      vox_tensor *oc2 = NULL, *od2 = NULL, *vc = NULL, *vd = NULL;
      VT_OK(vox_tensor_zeros(dts[d], VOX_CPU, 3, (int64_t[]){5, 7, 3}, &oc2));
      VT_OK(vox_tensor_zeros(dts[d], CU_DEV, 3, (int64_t[]){5, 7, 3}, &od2));
      VT_OK(vox_tensor_view_permute(oc2, (int[]){2, 0, 1}, &vc));
      vd = same_view(od2, vc);
      VT_OK(vox_tensor_copy_(vc, src_cpu));
      VT_OK(vox_tensor_copy_(vd, src_dev));
      assert_bits_equal(od2, oc2, what);
      vox_tensor *rel[] = {src_cpu, src_dev, tc, td, oc, od, oc2, od2, vc, vd};
      for (size_t i = 0; i < sizeof rel / sizeof *rel; i++) vox_tensor_release(rel[i]);
    }
  vox_tensor_release(x);
}

Test(cuda_ops, fill_strided_all_dtypes) {
  CU_REQUIRE_GPU();
  vox_dtype dts[3] = {VOX_F32, VOX_BF16, VOX_I32};
  for (int k = 0; k < 3; k++) {
    vox_tensor *c = NULL, *d = NULL, *vc = NULL, *vd = NULL;
    VT_OK(vox_tensor_zeros(dts[k], VOX_CPU, 2, (int64_t[]){6, 9}, &c));
    VT_OK(vox_tensor_zeros(dts[k], CU_DEV, 2, (int64_t[]){6, 9}, &d));
    VT_OK(vox_tensor_view_slice(c, 1, 1, 9, 3, &vc));
    vd = same_view(d, vc);
    VT_OK(vox_tensor_fill_(vc, -3.7));
    VT_OK(vox_tensor_fill_(vd, -3.7));
    assert_bits_equal(d, c, "fill");
    vox_tensor_release(c), vox_tensor_release(d), vox_tensor_release(vc), vox_tensor_release(vd);
  }
}

Test(cuda_ops, rng_matches_cpu) {
  CU_REQUIRE_GPU();
  for (int dist = 0; dist < 3; dist++)
    for (int k = 0; k < 2; k++) {
      vox_dtype dt = k ? VOX_BF16 : VOX_F32;
      vox_tensor *c = NULL, *d = NULL;
      VT_OK(vox_tensor_empty(dt, VOX_CPU, 2, (int64_t[]){257, 129}, &c));
      VT_OK(vox_tensor_empty(dt, CU_DEV, 2, (int64_t[]){257, 129}, &d));
      vox_rng_params p = {.seed = 0x1234567890abcdefULL, .offset = (1ULL << 33) + 5, .dist = (vox_rng_dist)dist,
                          .a = dist == 2 ? 0.3 : -0.7, .b = 1.9};
      run_kernel(VOX_K_RNG, 0, NULL, 1, &c, &p);
      run_kernel(VOX_K_RNG, 0, NULL, 1, &d, &p);
      if (dist != VOX_RNG_NORMAL) {
        assert_bits_equal(d, c, "uniform/bernoulli rng");
      } else {
        /* log/cos may differ from glibc's in the last bit where glibc is not correctly rounded. */
        cu_assert_close(d, c, 1e-6, dt == VOX_BF16 ? 8e-3 : 1e-6, "normal rng");
      }
      vox_tensor_release(c), vox_tensor_release(d);
    }
}

Test(cuda_ops, dropout_bit_identical) {
  CU_REQUIRE_GPU();
  vox_tensor *x = vt_randn(VT_SHAPE(4, 33, 65), 3, 1.0f, false);
  for (int k = 0; k < 2; k++) {
    vox_dtype dt = k ? VOX_BF16 : VOX_F32;
    vox_tensor *xc = cu_to(x, VOX_CPU, dt), *xd = cu_to(xc, CU_DEV, dt), *tc = NULL, *td = NULL;
    VT_OK(vox_tensor_view_permute(xc, (int[]){1, 0, 2}, &tc)); /* strided input, contiguous output */
    td = same_view(xd, tc);
    vox_tensor *oc = NULL, *od = NULL;
    VT_OK(vox_tensor_empty(dt, VOX_CPU, 3, tc->shape, &oc));
    VT_OK(vox_tensor_empty(dt, CU_DEV, 3, tc->shape, &od));
    vox_dropout_params p = {.seed = 99, .offset = 12345, .p = 0.3f};
    run_kernel(VOX_K_DROPOUT, 1, (const vox_tensor *[]){tc}, 1, &oc, &p);
    run_kernel(VOX_K_DROPOUT, 1, (const vox_tensor *[]){td}, 1, &od, &p);
    assert_bits_equal(od, oc, "dropout");
    vox_tensor *rel[] = {xc, xd, tc, td, oc, od};
    for (int i = 0; i < 6; i++) vox_tensor_release(rel[i]);
  }
  vox_tensor_release(x);
}

/* ---- elementwise ---------------------------------------------------------------------------------------- */

/* Kernel-level BINARY on broadcast (expanded) and transposed operands, every op, f32/bf16/i32 operands. */
Test(cuda_ops, binary_broadcast_strided_all_ops) {
  CU_REQUIRE_GPU();
  vox_tensor *a0 = vt_uniform(VT_SHAPE(4, 1, 6), 5, 0.5f, 2.0f, false);
  vox_tensor *b0 = vt_uniform(VT_SHAPE(6, 5), 6, 0.5f, 2.0f, false); /* transposed to [5, 6], then expanded */
  vox_dtype dts[3] = {VOX_F32, VOX_BF16, VOX_I32};
  for (int k = 0; k < 3; k++) {
    vox_tensor *ac = cu_to(a0, VOX_CPU, dts[k]), *bc = cu_to(b0, VOX_CPU, dts[k]);
    vox_tensor *ad = cu_to(ac, CU_DEV, dts[k]), *bd = cu_to(bc, CU_DEV, dts[k]);
    vox_tensor *bt = NULL, *aev = NULL, *bev = NULL;
    VT_OK(vox_tensor_view_permute(bc, (int[]){1, 0}, &bt));
    VT_OK(vox_tensor_view_expand(ac, 3, (int64_t[]){4, 5, 6}, &aev));
    VT_OK(vox_tensor_view_expand(bt, 3, (int64_t[]){4, 5, 6}, &bev));
    vox_tensor *aevd = same_view(ad, aev), *bevd = same_view(bd, bev);
    for (int op = VOX_BIN_ADD; op <= VOX_BIN_GE; op++) {
      vox_tensor *oc = NULL, *od = NULL;
      VT_OK(vox_tensor_empty(dts[k], VOX_CPU, 3, (int64_t[]){4, 5, 6}, &oc));
      VT_OK(vox_tensor_empty(dts[k], CU_DEV, 3, (int64_t[]){4, 5, 6}, &od));
      vox_binary_params p = {.op = (vox_binary_op)op};
      run_kernel(VOX_K_BINARY, 2, (const vox_tensor *[]){aev, bev}, 1, &oc, &p);
      run_kernel(VOX_K_BINARY, 2, (const vox_tensor *[]){aevd, bevd}, 1, &od, &p);
      char what[64];
      snprintf(what, sizeof what, "binary op %d on %s", op, vox_dtype_name(dts[k]));
      if (dts[k] == VOX_I32) assert_bits_equal(od, oc, what);
      else cu_assert_close(od, oc, 1e-6, dts[k] == VOX_BF16 ? 8e-3 : 1e-6, what);
      vox_tensor_release(oc), vox_tensor_release(od);
    }
    vox_tensor *rel[] = {ac, bc, ad, bd, bt, aev, bev, aevd, bevd};
    for (int i = 0; i < 9; i++) vox_tensor_release(rel[i]);
  }
  vox_tensor_release(a0), vox_tensor_release(b0);
}

/* Kernel-level UNARY and UNARY_BACKWARD for every op on a transposed input, inputs in each op's domain. */
Test(cuda_ops, unary_and_backward_all_ops) {
  CU_REQUIRE_GPU();
  vox_tensor *xs = vt_randn(VT_SHAPE(7, 9), 7, 1.5f, false), *xp = vt_uniform(VT_SHAPE(7, 9), 8, 0.2f, 3.0f, false);
  vox_tensor *dy = vt_randn(VT_SHAPE(9, 7), 9, 1.0f, false);
  for (int op = VOX_UN_NEG; op <= VOX_UN_CLAMP; op++) {
    bool positive = op == VOX_UN_LOG || op == VOX_UN_SQRT || op == VOX_UN_RSQRT || op == VOX_UN_POW_SCALAR ||
                    op == VOX_UN_RECIP;
    for (int k = 0; k < 2; k++) {
      vox_dtype dt = k ? VOX_BF16 : VOX_F32;
      vox_tensor *xc = cu_to(positive ? xp : xs, VOX_CPU, dt), *xd = cu_to(xc, CU_DEV, dt), *tc = NULL;
      VT_OK(vox_tensor_view_permute(xc, (int[]){1, 0}, &tc));
      vox_tensor *td = same_view(xd, tc), *gc = cu_to(dy, VOX_CPU, dt), *gd = cu_to(gc, CU_DEV, dt);
      vox_unary_params p = {.op = (vox_unary_op)op, .alpha = op == VOX_UN_CLAMP ? -0.5 : 1.7, .beta = 0.8};
      vox_tensor *oc = NULL, *od = NULL, *bc = NULL, *bd = NULL;
      VT_OK(vox_tensor_empty(dt, VOX_CPU, 2, tc->shape, &oc));
      VT_OK(vox_tensor_empty(dt, CU_DEV, 2, tc->shape, &od));
      VT_OK(vox_tensor_empty(dt, VOX_CPU, 2, tc->shape, &bc));
      VT_OK(vox_tensor_empty(dt, CU_DEV, 2, tc->shape, &bd));
      run_kernel(VOX_K_UNARY, 1, (const vox_tensor *[]){tc}, 1, &oc, &p);
      run_kernel(VOX_K_UNARY, 1, (const vox_tensor *[]){td}, 1, &od, &p);
      run_kernel(VOX_K_UNARY_BACKWARD, 2, (const vox_tensor *[]){tc, gc}, 1, &bc, &p);
      run_kernel(VOX_K_UNARY_BACKWARD, 2, (const vox_tensor *[]){td, gd}, 1, &bd, &p);
      double rtol = dt == VOX_BF16 ? 8e-3 : 2e-5; /* fast-math transcendental intrinsics */
      char what[64];
      snprintf(what, sizeof what, "unary op %d (%s)", op, vox_dtype_name(dt));
      cu_assert_close(od, oc, 1e-5, rtol, what);
      snprintf(what, sizeof what, "unary backward op %d (%s)", op, vox_dtype_name(dt));
      cu_assert_close(bd, bc, 1e-5, rtol, what);
      vox_tensor *rel[] = {xc, xd, tc, td, gc, gd, oc, od, bc, bd};
      for (int i = 0; i < 10; i++) vox_tensor_release(rel[i]);
    }
  }
  vox_tensor_release(xs), vox_tensor_release(xp), vox_tensor_release(dy);
}

static vox_status arith_fn(void *ctx, vox_tensor *const *in, vox_tensor **out) {
  /* (a * b^T) / (1 + |b^T|) - max(a, b^T) + min(a, 0.5) with a [3, 1, 4] broadcast against b^T [5, 4] */
  vox_tensor *bt = NULL, *p = NULL, *ab = NULL, *den = NULL, *q = NULL, *mx = NULL, *s = NULL, *mn = NULL;
  vox_tensor *half = NULL;
  VT_OK(vox_op_transpose(in[1], 0, 1, &bt));
  VT_OK(vox_op_mul(in[0], bt, &p));
  VT_OK(vox_op_abs(bt, &ab));
  VT_OK(vox_op_affine(ab, 1.0, 1.0, &den));
  VT_OK(vox_op_div(p, den, &q));
  VT_OK(vox_op_maximum(in[0], bt, &mx));
  VT_OK(vox_op_sub(q, mx, &s));
  VT_OK(vox_tensor_full(in[0]->dtype, in[0]->device, 3, (int64_t[]){3, 1, 4}, 0.5, &half));
  VT_OK(vox_op_minimum(in[0], half, &mn));
  vox_status st = vox_op_add(s, mn, out);
  vox_tensor *rel[] = {bt, p, ab, den, q, mx, s, mn, half};
  for (int i = 0; i < 9; i++) vox_tensor_release(rel[i]);
  return st;
}

Test(cuda_ops, arithmetic_graph_forward_backward) {
  CU_REQUIRE_GPU();
  vox_tensor *in[2] = {vt_randn(VT_SHAPE(3, 1, 4), 11, 1.0f, true), vt_randn(VT_SHAPE(4, 5), 12, 1.0f, true)};
  cu_check_graph_both("arith", arith_fn, NULL, 2, in, 1.0);
  vox_tensor_release(in[0]), vox_tensor_release(in[1]);
}

static vox_status activ_fn(void *ctx, vox_tensor *const *in, vox_tensor **out) {
  vox_tensor *a = NULL, *b = NULL, *c = NULL, *d = NULL, *e = NULL, *f = NULL, *g = NULL, *x = NULL;
  VT_OK(vox_op_transpose(in[0], 0, 1, &x)); /* strided */
  VT_OK(vox_op_gelu(x, false, &a));
  VT_OK(vox_op_gelu(x, true, &b));
  VT_OK(vox_op_silu(x, &c));
  VT_OK(vox_op_tanh(x, &d));
  VT_OK(vox_op_sigmoid(x, &e));
  VT_OK(vox_op_add(a, b, &f));
  VT_OK(vox_op_mul(c, d, &g));
  vox_tensor *h = NULL, *k = NULL;
  VT_OK(vox_op_add(f, g, &h));
  VT_OK(vox_op_relu(h, &k));
  vox_status st = vox_op_add(k, e, out);
  vox_tensor *rel[] = {a, b, c, d, e, f, g, x, h, k};
  for (int i = 0; i < 10; i++) vox_tensor_release(rel[i]);
  return st;
}

Test(cuda_ops, activations_graph) {
  CU_REQUIRE_GPU();
  vox_tensor *x = vt_randn(VT_SHAPE(6, 10), 13, 2.0f, true);
  cu_check_graph_both("activations", activ_fn, NULL, 1, &x, 2.0);
  vox_tensor_release(x);
}

static vox_status swiglu_where_fn(void *ctx, vox_tensor *const *in, vox_tensor **out) {
  vox_tensor *gt = NULL, *s = NULL, *cond = NULL, *zero = NULL;
  VT_OK(vox_op_transpose(in[0], 0, 1, &gt));
  VT_OK(vox_op_swiglu(gt, in[1], &s));
  VT_OK(vox_tensor_zeros(in[1]->dtype, in[1]->device, 2, in[1]->shape, &zero));
  VT_OK(vox_op_compare(in[1], zero, VOX_BIN_GT, &cond));
  vox_status st = vox_op_where(cond, s, in[1], out);
  vox_tensor_release(gt), vox_tensor_release(s), vox_tensor_release(cond), vox_tensor_release(zero);
  return st;
}

Test(cuda_ops, swiglu_where_graph) {
  CU_REQUIRE_GPU();
  vox_tensor *in[2] = {vt_randn(VT_SHAPE(8, 5), 14, 1.5f, true), vt_randn(VT_SHAPE(5, 8), 15, 1.0f, true)};
  cu_check_graph_both("swiglu+where", swiglu_where_fn, NULL, 2, in, 1.0);
  vox_tensor_release(in[0]), vox_tensor_release(in[1]);
}

static vox_status dropout_fn(void *ctx, vox_tensor *const *in, vox_tensor **out) {
  vox_rng rng = vox_rng_make(2024);
  return vox_op_dropout(in[0], 0.25f, true, &rng, out);
}

Test(cuda_ops, dropout_graph) {
  CU_REQUIRE_GPU();
  vox_tensor *x = vt_randn(VT_SHAPE(16, 33), 16, 1.0f, true);
  cu_check_graph("dropout", dropout_fn, NULL, 1, &x, VOX_F32, 0.0, 0.0); /* f32: exactly equal */
  cu_check_graph("dropout", dropout_fn, NULL, 1, &x, VOX_BF16, CU_BF16_ATOL, CU_BF16_RTOL); /* vs f32 reference */
  vox_tensor_release(x);
}

/* ---- reductions ------------------------------------------------------------------------------------------ */

Test(cuda_ops, reduce_all_ops_dims_strides) {
  CU_REQUIRE_GPU();
  vox_tensor *x0 = vt_randn(VT_SHAPE(6, 70, 5, 40), 17, 1.0f, false);
  uint32_t dim_sets[] = {0x1, 0x2, 0x8, 0x5, 0xA, 0xF, 0x6, 0x0};
  for (int k = 0; k < 2; k++) {
    vox_dtype dt = k ? VOX_BF16 : VOX_F32;
    vox_tensor *xc0 = cu_to(x0, VOX_CPU, dt), *xd0 = cu_to(xc0, CU_DEV, dt), *xc = NULL;
    VT_OK(vox_tensor_view_permute(xc0, (int[]){0, 3, 2, 1}, &xc)); /* [6, 40, 5, 70], strided */
    vox_tensor *xd = same_view(xd0, xc);
    for (size_t s = 0; s < sizeof dim_sets / sizeof *dim_sets; s++)
      for (int op = VOX_RED_SUM; op <= VOX_RED_SUMSQ; op++) {
        int64_t shape[4];
        for (int d = 0; d < 4; d++) shape[d] = (dim_sets[s] & (1u << d)) ? 1 : xc->shape[d];
        vox_tensor *oc = NULL, *od = NULL;
        VT_OK(vox_tensor_empty(VOX_F32, VOX_CPU, 4, shape, &oc));
        VT_OK(vox_tensor_empty(VOX_F32, CU_DEV, 4, shape, &od));
        vox_reduce_params p = {.op = (vox_reduce_op)op, .dims = dim_sets[s]};
        run_kernel(VOX_K_REDUCE, 1, (const vox_tensor *[]){xc}, 1, &oc, &p);
        run_kernel(VOX_K_REDUCE, 1, (const vox_tensor *[]){xd}, 1, &od, &p);
        char what[64];
        snprintf(what, sizeof what, "reduce op %d dims 0x%x (%s)", op, dim_sets[s], vox_dtype_name(dt));
        cu_assert_close(od, oc, 1e-5, 1e-5, what); /* both accumulate in double */
        vox_tensor_release(oc), vox_tensor_release(od);
      }
    vox_tensor_release(xc0), vox_tensor_release(xd0), vox_tensor_release(xc), vox_tensor_release(xd);
  }
  vox_tensor_release(x0);
}

Test(cuda_ops, reduce_large_sum_many_chunks) {
  CU_REQUIRE_GPU();
  vox_tensor *x = vt_randn(VT_SHAPE(3, 400000), 18, 1.0f, false), *xd = cu_to(x, CU_DEV, VOX_F32);
  for (int dims = 1; dims <= 3; dims++) {
    int64_t shape[2] = {(dims & 1) ? 1 : 3, (dims & 2) ? 1 : 400000};
    vox_tensor *oc = NULL, *od = NULL;
    VT_OK(vox_tensor_empty(VOX_F32, VOX_CPU, 2, shape, &oc));
    VT_OK(vox_tensor_empty(VOX_F32, CU_DEV, 2, shape, &od));
    vox_reduce_params p = {.op = VOX_RED_SUMSQ, .dims = (uint32_t)dims};
    run_kernel(VOX_K_REDUCE, 1, (const vox_tensor *[]){x}, 1, &oc, &p);
    run_kernel(VOX_K_REDUCE, 1, (const vox_tensor *[]){xd}, 1, &od, &p);
    cu_assert_close(od, oc, 1e-5, 1e-6, "large sumsq");
    vox_tensor_release(oc), vox_tensor_release(od);
  }
  vox_tensor_release(x), vox_tensor_release(xd);
}

Test(cuda_ops, arg_reduce_ties_nan) {
  CU_REQUIRE_GPU();
  float v[4 * 50];
  for (int i = 0; i < 200; i++) v[i] = (float)((i * 37) % 11);
  v[1 * 50 + 30] = NAN; /* row 1 column 30: NaN wins */
  v[2 * 50 + 7] = NAN;
  v[2 * 50 + 40] = NAN; /* first NaN wins */
  vox_tensor *x = vt_from_f32(VT_SHAPE(4, 50), v), *xd = cu_to(x, CU_DEV, VOX_F32), *xt = NULL;
  VT_OK(vox_tensor_view_permute(x, (int[]){1, 0}, &xt));
  vox_tensor *xtd = same_view(xd, xt);
  for (int dim = 0; dim < 2; dim++)
    for (int is_max = 0; is_max < 2; is_max++) {
      int64_t shape[2] = {dim == 0 ? 1 : 50, dim == 1 ? 1 : 4};
      vox_tensor *oc = NULL, *od = NULL;
      VT_OK(vox_tensor_empty(VOX_I32, VOX_CPU, 2, shape, &oc));
      VT_OK(vox_tensor_empty(VOX_I32, CU_DEV, 2, shape, &od));
      vox_arg_reduce_params p = {.is_max = is_max, .dim = dim};
      run_kernel(VOX_K_ARG_REDUCE, 1, (const vox_tensor *[]){xt}, 1, &oc, &p);
      run_kernel(VOX_K_ARG_REDUCE, 1, (const vox_tensor *[]){xtd}, 1, &od, &p);
      assert_bits_equal(od, oc, "arg_reduce");
      vox_tensor_release(oc), vox_tensor_release(od);
    }
  vox_tensor_release(x), vox_tensor_release(xd), vox_tensor_release(xt), vox_tensor_release(xtd);
}

static vox_status sum_mean_max_fn(void *ctx, vox_tensor *const *in, vox_tensor **out) {
  vox_tensor *a = NULL, *b = NULL, *c = NULL, *ab = NULL;
  VT_OK(vox_op_sum(in[0], 1, (int[]){1}, true, &a));
  VT_OK(vox_op_mean(in[0], 2, (int[]){0, 2}, true, &b));
  VT_OK(vox_op_max(in[0], 2, true, &c));
  VT_OK(vox_op_add(a, b, &ab));
  vox_status st = vox_op_mul(ab, c, out);
  vox_tensor_release(a), vox_tensor_release(b), vox_tensor_release(c), vox_tensor_release(ab);
  return st;
}

Test(cuda_ops, reduction_graph) {
  CU_REQUIRE_GPU();
  vox_tensor *x = vt_randn(VT_SHAPE(3, 9, 11), 19, 1.0f, true);
  cu_check_graph_both("sum/mean/max", sum_mean_max_fn, NULL, 1, &x, 2.0);
  vox_tensor_release(x);
}

/* ---- softmax and cross-entropy ------------------------------------------------------------------------------ */

static vox_status softmax_fn(void *ctx, vox_tensor *const *in, vox_tensor **out) {
  vox_tensor *xt = NULL, *a = NULL, *b = NULL;
  VT_OK(vox_op_transpose(in[0], 0, 1, &xt)); /* rows along a strided dim */
  VT_OK(vox_op_softmax(xt, -1, &a));
  VT_OK(vox_op_log_softmax(xt, -1, &b));
  vox_status st = vox_op_add(a, b, out);
  vox_tensor_release(xt), vox_tensor_release(a), vox_tensor_release(b);
  return st;
}

Test(cuda_ops, softmax_short_and_long_rows) {
  CU_REQUIRE_GPU();
  vox_tensor *s = vt_randn(VT_SHAPE(40, 7), 20, 3.0f, true);   /* rows of 7: one warp per row */
  vox_tensor *l = vt_randn(VT_SHAPE(3000, 5), 21, 3.0f, true); /* rows of 3000: one block per row */
  cu_check_graph_both("softmax short rows", softmax_fn, NULL, 1, &s, 1.0);
  cu_check_graph_both("softmax long rows", softmax_fn, NULL, 1, &l, 1.0);
  vox_tensor_release(s), vox_tensor_release(l);
}

typedef struct ce_ctx {
  vox_tensor *targets; /* CPU; moved to the logits' device */
  float smoothing;
} ce_ctx;

static vox_status ce_fn(void *vctx, vox_tensor *const *in, vox_tensor **out) {
  ce_ctx *c = vctx;
  vox_tensor *t = cu_to(c->targets, in[0]->device, VOX_I32);
  vox_status st = vox_op_cross_entropy(in[0], t, -100, c->smoothing, out);
  vox_tensor_release(t);
  return st;
}

static void check_ce(int64_t N, int64_t V, float smoothing, uint64_t seed) {
  vox_tensor *logits = vt_randn(VT_SHAPE(N, V), seed, 4.0f, true);
  ce_ctx c = {.targets = cu_rand_i32(VT_SHAPE(N), seed + 1, 0, (int32_t)V), .smoothing = smoothing};
  int32_t *tp = vox_tensor_i32(c.targets);
  tp[1] = -100; /* ignored rows */
  tp[N - 1] = -100;
  cu_check_graph_both("cross_entropy", ce_fn, &c, 1, &logits, 2.0);
  vox_tensor_release(logits), vox_tensor_release(c.targets);
}

Test(cuda_ops, cross_entropy_small_and_large_vocab) {
  CU_REQUIRE_GPU();
  check_ce(13, 50, 0.0f, 30);
  check_ce(13, 50, 0.1f, 31);
  check_ce(6, 40000, 0.0f, 32); /* one block per row, online log-sum-exp */
  check_ce(6, 40000, 0.2f, 33);
}

Test(cuda_ops, cross_entropy_bad_target_is_an_error) {
  CU_REQUIRE_GPU();
  vox_tensor *x = vt_randn(VT_SHAPE(4, 10), 34, 1.0f, false), *xd = cu_to(x, CU_DEV, VOX_F32);
  vox_tensor *t = vt_from_i32(VT_SHAPE(4), (int32_t[]){1, 2, 10, 3}), *td = cu_to(t, CU_DEV, VOX_I32);
  vox_tensor *loss = NULL;
  vox_status st = vox_op_cross_entropy(xd, td, -100, 0.0f, &loss);
  cr_assert(st == VOX_ERR_INDEX, "expected an index error, got %s", vox_status_name(st));
  cr_assert(strstr(vox_last_error(), "10"), "message should name the bad target: %s", vox_last_error());
  vox_tensor_release(x), vox_tensor_release(xd), vox_tensor_release(t), vox_tensor_release(td);
}

/* ---- indexing ---------------------------------------------------------------------------------------------- */

typedef struct idx_ctx {
  vox_tensor *ids;
} idx_ctx;

static vox_status embedding_fn(void *vctx, vox_tensor *const *in, vox_tensor **out) {
  idx_ctx *c = vctx;
  vox_tensor *ids = cu_to(c->ids, in[0]->device, VOX_I32), *e = NULL;
  VT_OK(vox_op_embedding(in[0], ids, &e));
  vox_status st = vox_op_transpose(e, 0, 2, out); /* strided upstream gradient */
  vox_tensor_release(ids), vox_tensor_release(e);
  return st;
}

Test(cuda_ops, embedding_graph_repeated_ids) {
  CU_REQUIRE_GPU();
  vox_tensor *w = vt_randn(VT_SHAPE(17, 12), 40, 1.0f, true);
  idx_ctx c = {.ids = cu_rand_i32(VT_SHAPE(5, 9), 41, 0, 17)}; /* 45 ids over 17 rows: repeats */
  cu_check_graph_both("embedding", embedding_fn, &c, 1, &w, 2.0);
  vox_tensor_release(w), vox_tensor_release(c.ids);
}

Test(cuda_ops, embedding_bad_id_is_an_error) {
  CU_REQUIRE_GPU();
  vox_tensor *w = vt_randn(VT_SHAPE(5, 3), 42, 1.0f, false), *wd = cu_to(w, CU_DEV, VOX_F32);
  vox_tensor *ids = vt_from_i32(VT_SHAPE(3), (int32_t[]){0, 5, -1}), *idd = cu_to(ids, CU_DEV, VOX_I32);
  vox_tensor *out = NULL;
  vox_status st = vox_op_embedding(wd, idd, &out);
  cr_assert(st == VOX_ERR_INDEX, "expected an index error, got %s", vox_status_name(st));
  cr_assert(strstr(vox_last_error(), "position 1"), "message should name the first bad position: %s",
            vox_last_error());
  vox_tensor_release(w), vox_tensor_release(wd), vox_tensor_release(ids), vox_tensor_release(idd);
}

static vox_status gather_scatter_fn(void *vctx, vox_tensor *const *in, vox_tensor **out) {
  idx_ctx *c = vctx;
  vox_tensor *idx = cu_to(c->ids, in[0]->device, VOX_I32), *g = NULL, *xt = NULL;
  VT_OK(vox_op_transpose(in[0], 0, 1, &xt)); /* [6, 4] strided */
  VT_OK(vox_op_gather(xt, 1, idx, &g));      /* [6, 3] */
  vox_status st = vox_op_scatter_add(xt, 1, idx, g, out);
  vox_tensor_release(idx), vox_tensor_release(g), vox_tensor_release(xt);
  return st;
}

Test(cuda_ops, gather_scatter_add_graph) {
  CU_REQUIRE_GPU();
  vox_tensor *x = vt_randn(VT_SHAPE(4, 6), 43, 1.0f, true);
  idx_ctx c = {.ids = cu_rand_i32(VT_SHAPE(6, 3), 44, 0, 4)};
  cu_check_graph_both("gather+scatter_add", gather_scatter_fn, &c, 1, &x, 1.0);
  vox_tensor_release(x), vox_tensor_release(c.ids);
}

static vox_status sqdist_fn(void *ctx, vox_tensor *const *in, vox_tensor **out) {
  return vox_op_pairwise_sqdist(in[0], in[1], out);
}

Test(cuda_ops, pairwise_sqdist_graph) {
  CU_REQUIRE_GPU();
  /* Forward only: the backward is a MATMUL (the GEMM kernels' test covers it). The CPU expands
   * |x|^2 - 2xc + |c|^2 (cancellation), the GPU sums exact squared differences. */
  vox_tensor *in[2] = {vt_randn(VT_SHAPE(37, 21), 45, 1.0f, false), vt_randn(VT_SHAPE(19, 21), 46, 1.0f, false)};
  cu_check_graph_both("pairwise_sqdist", sqdist_fn, NULL, 2, in, 10.0);
  vox_tensor_release(in[0]), vox_tensor_release(in[1]);
}
