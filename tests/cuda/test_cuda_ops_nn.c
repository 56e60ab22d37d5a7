/* CUDA kernels against the CPU kernels: RMSNorm/LayerNorm, RoPE and conv1d/conv_transpose1d graphs (forward and
 * backward, f32 and bf16), AdamW/SGD steps and the multi-tensor AdamW, the caching allocator's counters and the
 * streams/events API. Every test skips (visibly) without a GPU. */
#include <math.h>
#include <string.h>

#ifdef VOX_HAVE_CUDA /* a build without CUDA still builds (and skips) this program */
#include "backend/cuda/cuda_stream.h"
#endif
#include "optim/optim.h"
#include "test_cuda_ops_common.h"

typedef struct norm_ctx {
  bool affine, layer;
} norm_ctx;

static vox_status norm_fn(void *vctx, vox_tensor *const *in, vox_tensor **out) {
  norm_ctx *c = vctx;
  vox_tensor *xt = NULL;
  VT_OK(vox_op_transpose(in[0], 0, 1, &xt)); /* a strided input: the op makes it contiguous */
  vox_status st = c->layer ? vox_op_layer_norm(xt, c->affine ? in[1] : NULL, c->affine ? in[2] : NULL, 1e-5f, out)
                           : vox_op_rms_norm(xt, c->affine ? in[1] : NULL, 1e-6f, out);
  vox_tensor_release(xt);
  return st;
}

static void check_norms(int64_t rows, int64_t d, uint64_t seed) {
  vox_tensor *in[3] = {vt_randn(VT_SHAPE(rows, 2, d), seed, 2.0f, true),
                       vt_uniform(VT_SHAPE(d), seed + 1, 0.5f, 1.5f, true), vt_randn(VT_SHAPE(d), seed + 2, 1.0f, true)};
  /* the transposed input is [2, rows, d] */
  for (int layer = 0; layer < 2; layer++)
    for (int affine = 0; affine < 2; affine++) {
      norm_ctx c = {.affine = affine, .layer = layer};
      /* rms_norm has no bias: its third input would get no gradient */
      cu_check_graph_both(layer ? "layer_norm" : "rms_norm", norm_fn, &c, affine ? (layer ? 3 : 2) : 1, in, 4.0);
    }
  /* a frozen input (no gradient wanted, the backward's first output absent) with a trainable affine: the backward
   * must still run on the operands' device */
  in[0]->requires_grad = false;
  norm_ctx c = {.affine = true, .layer = true};
  cu_check_graph_both("layer_norm, input frozen", norm_fn, &c, 3, in, 4.0);
  c.layer = false;
  cu_check_graph_both("rms_norm, input frozen", norm_fn, &c, 2, in, 4.0);
  for (int i = 0; i < 3; i++) vox_tensor_release(in[i]);
}

Test(cuda_ops_nn, norms_small_rows) {
  CU_REQUIRE_GPU();
  check_norms(5, 24, 100);
}

Test(cuda_ops_nn, norms_wide_rows_many_row_chunks) {
  CU_REQUIRE_GPU();
  check_norms(300, 1536, 110); /* 600 rows: several dw/db partial chunks; 512-thread rows */
}

typedef struct rope_ctx {
  vox_tensor *pos;
  int rotary_dim;
} rope_ctx;

static vox_status rope_fn(void *vctx, vox_tensor *const *in, vox_tensor **out) {
  rope_ctx *c = vctx;
  vox_tensor *p = cu_to(c->pos, in[0]->device, VOX_I32);
  vox_status st = vox_op_rope(in[0], p, 10000.0f, c->rotary_dim, out);
  vox_tensor_release(p);
  return st;
}

Test(cuda_ops_nn, rope_graph) {
  CU_REQUIRE_GPU();
  vox_tensor *x = vt_randn(VT_SHAPE(2, 3, 7, 16), 120, 1.0f, true);
  rope_ctx c = {.pos = cu_rand_i32(VT_SHAPE(2, 7), 121, 0, 4000), .rotary_dim = 16};
  cu_check_graph_both("rope [B,T] positions", rope_fn, &c, 1, &x, 4.0);
  vox_tensor_release(c.pos);
  c.pos = cu_rand_i32(VT_SHAPE(7), 122, 0, 100);
  c.rotary_dim = 8; /* partial rotation: features 8..15 pass through */
  cu_check_graph_both("rope [T] positions, partial", rope_fn, &c, 1, &x, 4.0);
  vox_tensor_release(c.pos), vox_tensor_release(x);
}

typedef struct conv_ctx {
  int stride, padding, dilation, groups, output_padding;
  bool transpose;
} conv_ctx;

static vox_status conv_fn(void *vctx, vox_tensor *const *in, vox_tensor **out) {
  conv_ctx *c = vctx;
  if (c->transpose)
    return vox_op_conv_transpose1d(in[0], in[1], in[2], c->stride, c->padding, c->output_padding, c->dilation,
                                   c->groups, out);
  return vox_op_conv1d(in[0], in[1], in[2], c->stride, c->padding, c->dilation, c->groups, out);
}

Test(cuda_ops_nn, conv1d_graphs) {
  CU_REQUIRE_GPU();
  conv_ctx cases[] = {{1, 1, 1, 1, 0, false}, {2, 3, 2, 2, 0, false}, {3, 0, 1, 4, 0, false},
                      {2, 1, 1, 1, 1, true},  {3, 2, 2, 2, 0, true}};
  for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
    conv_ctx *c = &cases[k];
    int64_t cin = 8, cout = 12, K = 3;
    vox_tensor *in[3] = {vt_randn(VT_SHAPE(2, cin, 29), 130 + k, 1.0f, true),
                         c->transpose ? vt_randn(VT_SHAPE(cin, cout / c->groups, K), 140 + k, 0.3f, true)
                                      : vt_randn(VT_SHAPE(cout, cin / c->groups, K), 140 + k, 0.3f, true),
                         vt_randn(VT_SHAPE(cout), 150 + k, 1.0f, true)};
    cu_check_graph_both(c->transpose ? "conv_transpose1d" : "conv1d", conv_fn, c, 3, in, 4.0);
    for (int i = 0; i < 3; i++) vox_tensor_release(in[i]);
  }
}

/* ---- optimizers -------------------------------------------------------------------------------------------- */

static void run_kernel(vox_kernel_id id, int n_in, vox_tensor *const *in, int n_out, vox_tensor *const *out,
                       const void *params) {
  vox_kernel_args a = {.n_in = n_in, .n_out = n_out, .params = params};
  for (int i = 0; i < n_in; i++) a.in[i] = in[i];
  for (int i = 0; i < n_out; i++) a.out[i] = out[i];
  VT_OK(vox_kernel_run("test", id, &a));
}

Test(cuda_ops_nn, adamw_and_sgd_steps) {
  CU_REQUIRE_GPU();
  int64_t n = 100003;
  vox_tensor *w[2], *m[2], *v[2], *b[2];
  vox_tensor *w0 = vt_randn(VT_SHAPE(n), 160, 1.0f, false);
  for (int d = 0; d < 2; d++) {
    vox_device dev = d ? CU_DEV : VOX_CPU;
    w[d] = cu_to(w0, dev, VOX_F32);
    VT_OK(vox_tensor_zeros(VOX_F32, dev, 1, &n, &m[d]));
    VT_OK(vox_tensor_zeros(VOX_F32, dev, 1, &n, &v[d]));
    VT_OK(vox_tensor_zeros(VOX_F32, dev, 1, &n, &b[d]));
  }
  for (int step = 1; step <= 5; step++) {
    vox_tensor *g = vt_randn(VT_SHAPE(n), 170 + step, 0.1f, false), *gd = cu_to(g, CU_DEV, VOX_F32);
    vox_tensor *gs[2] = {g, gd};
    vox_adamw_params p = {.lr = 1e-3f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = 0.1f,
                          .bias_correction1 = 1.0f - powf(0.9f, (float)step),
                          .bias_correction2 = 1.0f - powf(0.999f, (float)step), .grad_scale = 0.5f};
    vox_sgd_params sp = {.lr = 0.01f, .momentum = 0.9f, .weight_decay = 0.01f, .grad_scale = 1.0f,
                         .nesterov = step % 2};
    for (int d = 0; d < 2; d++) {
      run_kernel(VOX_K_ADAMW_STEP, 1, &gs[d], 3, (vox_tensor *[]){w[d], m[d], v[d]}, &p);
      run_kernel(VOX_K_SGD_STEP, 1, &gs[d], 2, (vox_tensor *[]){w[d], b[d]}, &sp);
    }
    vox_tensor_release(g), vox_tensor_release(gd);
  }
  cu_assert_close(w[1], w[0], 1e-6, 1e-5, "adamw+sgd weights");
  cu_assert_close(m[1], m[0], 1e-7, 1e-5, "adamw exp_avg");
  cu_assert_close(v[1], v[0], 1e-9, 1e-5, "adamw exp_avg_sq");
  cu_assert_close(b[1], b[0], 1e-7, 1e-5, "sgd momentum");
  for (int d = 0; d < 2; d++) vox_tensor_release(w[d]), vox_tensor_release(m[d]), vox_tensor_release(v[d]),
                              vox_tensor_release(b[d]);
  vox_tensor_release(w0);
}

/* The optimizer on CUDA (one ADAMW_MULTI_STEP launch) against the optimizer on the CPU, several tensors of odd
 * sizes (block boundaries), two groups, decay on and off. */
Test(cuda_ops_nn, optimizer_multi_tensor_adamw_matches_cpu) {
  CU_REQUIRE_GPU();
  int64_t sizes[4] = {1, 16385, 7, 40000};
  const char *names[4] = {"a.weight", "b.weight", "c.bias", "norm.weight"};
  vox_optim *opt[2];
  vox_tensor *p[2][4];
  for (int d = 0; d < 2; d++) {
    vox_optim_config cfg = vox_optim_adamw_config(2e-3f, 0.05f);
    VT_OK(vox_optim_new(&cfg, &opt[d]));
    int g0, g1;
    VT_OK(vox_optim_add_group(opt[d], "main", -1, -1, &g0));
    VT_OK(vox_optim_add_group(opt[d], "slow", 1e-4f, 0.2f, &g1));
    for (int i = 0; i < 4; i++) {
      vox_tensor *t = vt_randn(i == 1 ? 2 : 1, i == 1 ? (int64_t[]){1, sizes[i]} : &sizes[i], 200 + i, 1.0f, false);
      p[d][i] = cu_to(t, d ? CU_DEV : VOX_CPU, VOX_F32);
      p[d][i]->requires_grad = true;
      vox_tensor_release(t);
      VT_OK(vox_optim_add_param(opt[d], i % 2 ? g1 : g0, names[i], p[d][i]));
    }
  }
  cr_assert(vox_backend_get(CU_DEV)->kernels[VOX_K_ADAMW_MULTI_STEP], "the device must register ADAMW_MULTI_STEP");
  for (int step = 0; step < 4; step++)
    for (int d = 0; d < 2; d++) {
      for (int i = 0; i < 4; i++) {
        if (step == 2 && i == 0) continue; /* a parameter without a gradient is skipped */
        vox_tensor *g = vt_randn(p[d][i]->ndim, p[d][i]->shape, 300 + 10 * step + i, 0.5f, false);
        p[d][i]->grad = cu_to(g, d ? CU_DEV : VOX_CPU, VOX_F32);
        vox_tensor_release(g);
      }
      VT_OK(vox_optim_step(opt[d]));
      vox_optim_zero_grad(opt[d]);
    }
  for (int i = 0; i < 4; i++) cu_assert_close(p[1][i], p[0][i], 1e-6, 1e-5, names[i]);
  for (int d = 0; d < 2; d++) {
    vox_optim_free(opt[d]);
    for (int i = 0; i < 4; i++) vox_tensor_release(p[d][i]);
  }
}

/* ---- allocator and streams ------------------------------------------------------------------------------ */

#ifdef VOX_HAVE_CUDA
Test(cuda_ops_nn, allocator_counters_back_to_baseline) {
  CU_REQUIRE_REAL_GPU();
  size_t base = vox_memory_live_bytes(VOX_CUDA);
  vox_memory_reset_peak(VOX_CUDA);
  for (int it = 0; it < 50; it++) {
    vox_tensor *a = NULL, *b = NULL, *c = NULL;
    VT_OK(vox_tensor_zeros(VOX_F32, VOX_CUDA, 2, (int64_t[]){1000 + it, 257}, &a));
    VT_OK(vox_tensor_full(VOX_BF16, VOX_CUDA, 1, (int64_t[]){77 + it}, 1.0, &b));
    VT_OK(vox_op_add(a, a, &c));
    cr_assert(vox_memory_live_bytes(VOX_CUDA) >= base + vox_tensor_nbytes(a) + vox_tensor_nbytes(b));
    vox_tensor_release(a), vox_tensor_release(b), vox_tensor_release(c);
  }
  cr_assert_eq(vox_memory_live_bytes(VOX_CUDA), base, "live CUDA bytes %zu, baseline %zu",
               vox_memory_live_bytes(VOX_CUDA), base);
  cr_assert(vox_memory_peak_bytes(VOX_CUDA) >= base + (size_t)1049 * 257 * 4 * 2, "peak counts the largest step");
  cr_assert(vox_cuda_memory_reserved_bytes() > 0, "the pool caches freed blocks");
  VT_OK(vox_cuda_memory_empty_cache());
  cr_assert_eq(vox_memory_live_bytes(VOX_CUDA), base);
}

Test(cuda_ops_nn, side_stream_and_events_order_work) {
  CU_REQUIRE_REAL_GPU();
  cudaStream_t side = NULL;
  cudaEvent_t produced = NULL, consumed = NULL;
  VT_OK(vox_cuda_stream_create(true, &side));
  VT_OK(vox_cuda_event_create(&produced));
  VT_OK(vox_cuda_event_create(&consumed));
  int64_t n = 1 << 20;
  vox_tensor *a = NULL, *host = NULL;
  VT_OK(vox_tensor_full(VOX_F32, VOX_CUDA, 1, &n, 3.0, &a)); /* queued on the compute stream */
  float *back = malloc(sizeof(float) * (size_t)n);
  VT_OK(vox_cuda_event_record(produced, vox_cuda_compute_stream()));
  VT_OK(vox_cuda_stream_wait(side, produced));
  cr_assert(cudaMemcpyAsync(back, vox_tensor_data(a), sizeof(float) * (size_t)n, cudaMemcpyDeviceToHost, side) ==
            cudaSuccess);
  VT_OK(vox_cuda_event_record(consumed, side));
  VT_OK(vox_cuda_stream_wait(vox_cuda_compute_stream(), consumed)); /* before `a` may be freed */
  VT_OK(vox_cuda_event_sync(consumed));
  bool done = false;
  VT_OK(vox_cuda_event_query(consumed, &done));
  cr_assert(done);
  for (int64_t i = 0; i < n; i += 4099) cr_assert_eq(back[i], 3.0f);
  vox_tensor_release(a);
  VT_OK(vox_cuda_stream_sync(side));
  free(back);
  vox_tensor_release(host);
  vox_cuda_event_destroy(produced), vox_cuda_event_destroy(consumed), vox_cuda_stream_destroy(side);
}
#endif
