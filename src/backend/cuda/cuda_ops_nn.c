/* CUDA glue for normalisation, rotary embedding and convolution: RMSNORM(+BACKWARD), LAYERNORM(+BACKWARD), ROPE,
 * CONV1D(+BACKWARD_DATA/WEIGHT). Operands are contiguous (the ops make them so) f32 or bf16, statistics f32;
 * device code in kernels/norm.cu and kernels/conv.cu. */
#include <math.h>

#include "backend/cuda/cuda_internal.h"

/* x [..., D] float contiguous; every other float operand (may be NULL) contiguous of x's dtype. */
static vox_status check_norm(const char *k, const vox_tensor *x, int n, const vox_tensor *const *same,
                             int n_stats, const vox_tensor *const *stats) {
  char b1[96], b2[96];
  VOX_TRY(vox_cuda_require_dense(k, x, -1, "input"));
  if (x->ndim < 1 || x->shape[x->ndim - 1] < 1)
    return vox_errorf(VOX_ERR_SHAPE, "%s cuda kernel: input %s needs a non-empty last dim", k,
                      vox_tensor_describe(x, b1, sizeof b1));
  int64_t d = x->shape[x->ndim - 1], rows = vox_tensor_numel(x) / d;
  for (int i = 0; i < n; i++) {
    const vox_tensor *t = same[i];
    if (!t) continue;
    VOX_TRY(vox_cuda_require_dense(k, t, (int)x->dtype, "operand"));
    bool vec = t->ndim == 1 && t->shape[0] == d;
    if (!vec && !vox_tensor_same_shape(t, x))
      return vox_errorf(VOX_ERR_SHAPE, "%s cuda kernel: operand %s fits neither input %s nor [%lld]", k,
                        vox_tensor_describe(t, b1, sizeof b1), vox_tensor_describe(x, b2, sizeof b2), (long long)d);
  }
  for (int i = 0; i < n_stats; i++) {
    const vox_tensor *t = stats[i];
    if (!t) continue;
    VOX_TRY(vox_cuda_require_dense(k, t, VOX_F32, "row statistic"));
    if (vox_tensor_numel(t) != rows)
      return vox_errorf(VOX_ERR_SHAPE, "%s cuda kernel: row statistic %s needs %lld values", k,
                        vox_tensor_describe(t, b1, sizeof b1), (long long)rows);
  }
  return VOX_OK;
}

static inline void *data_or_null(const vox_tensor *t) { return t ? vox_tensor_data(t) : NULL; }

static vox_status cuda_rmsnorm(const vox_kernel_args *a) {
  const vox_tensor *x = a->in[0], *w = a->in[1];
  vox_tensor *y = a->out[0], *rstd = a->n_out > 1 ? a->out[1] : NULL;
  const vox_tensor *same[2] = {w, y}, *stats[1] = {rstd};
  VOX_TRY(check_norm("rmsnorm", x, 2, same, 1, stats));
  const vox_norm_params *p = a->params;
  int64_t d = x->shape[x->ndim - 1], rows = vox_tensor_numel(x) / d;
  return vox_cuda_status(vox_cu_rmsnorm(vox_cuda_compute_stream(), vox_tensor_data(x), NULL, (int)x->dtype,
                                        data_or_null(w), vox_tensor_data(y), NULL, data_or_null(rstd), rows, d,
                                        p->eps),
                         "rmsnorm");
}
VOX_REGISTER_KERNEL(VOX_CUDA, RMSNORM, cuda_rmsnorm)

static vox_status cuda_layernorm(const vox_kernel_args *a) {
  const vox_tensor *x = a->in[0], *w = a->in[1], *b = a->in[2];
  vox_tensor *y = a->out[0], *mean = a->out[1], *rstd = a->out[2];
  const vox_tensor *same[3] = {w, b, y}, *stats[2] = {mean, rstd};
  VOX_TRY(check_norm("layernorm", x, 3, same, 2, stats));
  const vox_norm_params *p = a->params;
  int64_t d = x->shape[x->ndim - 1], rows = vox_tensor_numel(x) / d;
  return vox_cuda_status(vox_cu_layernorm(vox_cuda_compute_stream(), vox_tensor_data(x), NULL, (int)x->dtype,
                                          data_or_null(w), data_or_null(b), vox_tensor_data(y), NULL,
                                          data_or_null(mean), data_or_null(rstd), rows, d, p->eps),
                         "layernorm");
}
VOX_REGISTER_KERNEL(VOX_CUDA, LAYERNORM, cuda_layernorm)

/* Shared backward: dx, dw, db (each may be NULL); mean NULL for RMSNorm; dsum an extra gradient added to dx. */
static vox_status norm_backward(const char *k, const vox_tensor *x, const vox_tensor *w, const vox_tensor *mean,
                                const vox_tensor *rstd, const vox_tensor *dy, const vox_tensor *dsum, vox_tensor *dx,
                                vox_tensor *dw, vox_tensor *db) {
  const vox_tensor *same[6] = {w, dy, dsum, dx, dw, db}, *stats[2] = {mean, rstd};
  VOX_TRY(check_norm(k, x, 6, same, 2, stats));
  if (!rstd || !dy) return vox_errorf(VOX_ERR_INVALID, "%s cuda kernel: rstd and dy are required", k);
  int64_t d = x->shape[x->ndim - 1], rows = vox_tensor_numel(x) / d;
  int64_t chunks = vox_cu_norm_backward_chunks(rows, d);
  size_t nbytes = (dw || db) ? sizeof(double) * 2 * (size_t)d * (size_t)chunks : 0;
  double *part = NULL;
  if (nbytes) VOX_TRY(vox_cuda_scratch_alloc(nbytes, (void **)&part));
  cudaError_t e = vox_cu_norm_backward(vox_cuda_compute_stream(), (int)x->dtype, vox_tensor_data(x), data_or_null(w),
                                       data_or_null(mean), vox_tensor_data(rstd), vox_tensor_data(dy),
                                       data_or_null(dsum), data_or_null(dx), data_or_null(dw), data_or_null(db), rows, d,
                                       part, chunks);
  if (part) vox_cuda_scratch_free(part, nbytes);
  return vox_cuda_status(e, k);
}

static vox_status cuda_rmsnorm_backward(const vox_kernel_args *a) {
  return norm_backward("rmsnorm backward", a->in[0], a->in[1], NULL, a->in[2], a->in[3], NULL, a->out[0],
                       a->n_out > 1 ? a->out[1] : NULL, NULL);
}
VOX_REGISTER_KERNEL(VOX_CUDA, RMSNORM_BACKWARD, cuda_rmsnorm_backward)

static vox_status cuda_layernorm_backward(const vox_kernel_args *a) {
  return norm_backward("layernorm backward", a->in[0], a->in[1], a->in[2], a->in[3], a->in[4], NULL, a->out[0],
                       a->n_out > 1 ? a->out[1] : NULL, a->n_out > 2 ? a->out[2] : NULL);
}
VOX_REGISTER_KERNEL(VOX_CUDA, LAYERNORM_BACKWARD, cuda_layernorm_backward)

/* in = {x [B,H,T,D] contiguous float, positions i32 [B,T] or [T]} -> out = {y}. */
static vox_status cuda_rope(const vox_kernel_args *a) {
  const vox_tensor *x = a->in[0], *pos = a->in[1];
  vox_tensor *y = a->out[0];
  const vox_rope_params *p = a->params;
  char b1[96];
  VOX_TRY(vox_cuda_require_dense("rope", x, -1, "input"));
  VOX_TRY(vox_cuda_require_dense("rope", y, (int)x->dtype, "output"));
  VOX_TRY(vox_cuda_require_dense("rope", pos, VOX_I32, "positions"));
  if (x->ndim != 4 || !vox_tensor_same_shape(x, y))
    return vox_errorf(VOX_ERR_SHAPE, "rope cuda kernel: x [B, H, T, D] and a matching output expected, got %s",
                      vox_tensor_describe(x, b1, sizeof b1));
  vox_cu_rope_args r = {.B = x->shape[0], .H = x->shape[1], .T = x->shape[2], .D = x->shape[3],
                        .half = p->rotary_dim / 2, .pos_batched = pos->ndim == 2, .sign = p->inverse ? -1.0f : 1.0f};
  if (r.half > VOX_CU_ROPE_MAX_HALF || 2 * r.half > r.D)
    return vox_errorf(VOX_ERR_UNSUPPORTED, "rope cuda kernel: rotary_dim %d must be <= min(D = %lld, %d)",
                      p->rotary_dim, (long long)r.D, 2 * VOX_CU_ROPE_MAX_HALF);
  if (vox_tensor_numel(pos) != (r.pos_batched ? r.B * r.T : r.T))
    return vox_errorf(VOX_ERR_SHAPE, "rope cuda kernel: positions %s must be [B, T] or [T]",
                      vox_tensor_describe(pos, b1, sizeof b1));
  for (int64_t j = 0; j < r.half; j++) { /* the CPU kernel's table, bit for bit */
    float e = (float)(2 * j) / (float)p->rotary_dim;
    r.inv_freq[j] = (float)(1.0 / pow((double)p->theta, (double)e));
  }
  return vox_cuda_status(vox_cu_rope(vox_cuda_compute_stream(), &r, vox_tensor_data(x), vox_tensor_data(pos),
                                     vox_tensor_data(y), (int)x->dtype),
                         "rope");
}
VOX_REGISTER_KERNEL(VOX_CUDA, ROPE, cuda_rope)

/* x [B, Cin, L], w [Cout, Cin/groups, K], y [B, Cout, Lout]: contiguous, one float dtype. */
static vox_status conv_setup(const char *k, const vox_tensor *x, const vox_tensor *w, const vox_tensor *y,
                             const vox_conv1d_params *p, vox_cu_conv *c) {
  const vox_tensor *ops[3] = {x, w, y};
  for (int i = 0; i < 3; i++)
    if (ops[i]->dtype != x->dtype || !vox_dtype_is_float(x->dtype) || !vox_tensor_is_contiguous(ops[i]) ||
        ops[i]->ndim != 3)
      return vox_errorf(VOX_ERR_UNSUPPORTED, "%s cuda kernel: contiguous 3-D operands of one float dtype expected", k);
  if (p->groups < 1 || p->stride < 1 || p->dilation < 1 || p->padding < 0)
    return vox_errorf(VOX_ERR_INVALID, "%s cuda kernel: stride %d, padding %d, dilation %d, groups %d", k, p->stride,
                      p->padding, p->dilation, p->groups);
  *c = (vox_cu_conv){.B = x->shape[0], .Cin = x->shape[1], .L = x->shape[2], .Cout = w->shape[0],
                     .Lout = y->shape[2], .K = w->shape[2], .groups = p->groups, .stride = p->stride,
                     .padding = p->padding, .dilation = p->dilation, .dtype = (int)x->dtype};
  c->cig = c->Cin / c->groups;
  c->cog = c->Cout / c->groups;
  if (c->Cin % c->groups || c->Cout % c->groups || w->shape[1] != c->cig || y->shape[1] != c->Cout ||
      y->shape[0] != c->B)
    return vox_errorf(VOX_ERR_SHAPE, "%s cuda kernel: operand shapes disagree with groups %d", k, p->groups);
  return VOX_OK;
}

static vox_status cuda_conv1d(const vox_kernel_args *a) {
  vox_cu_conv c;
  VOX_TRY(conv_setup("conv1d", a->in[0], a->in[1], a->out[0], a->params, &c));
  return vox_cuda_status(vox_cu_conv1d(vox_cuda_compute_stream(), &c, vox_tensor_data(a->in[0]),
                                       vox_tensor_data(a->in[1]), vox_tensor_data(a->out[0])),
                         "conv1d");
}
VOX_REGISTER_KERNEL(VOX_CUDA, CONV1D, cuda_conv1d)

static vox_status cuda_conv1d_backward_data(const vox_kernel_args *a) {
  vox_cu_conv c;
  VOX_TRY(conv_setup("conv1d backward data", a->out[0], a->in[1], a->in[0], a->params, &c));
  return vox_cuda_status(vox_cu_conv1d_backward_data(vox_cuda_compute_stream(), &c, vox_tensor_data(a->in[0]),
                                                     vox_tensor_data(a->in[1]), vox_tensor_data(a->out[0])),
                         "conv1d backward data");
}
VOX_REGISTER_KERNEL(VOX_CUDA, CONV1D_BACKWARD_DATA, cuda_conv1d_backward_data)

static vox_status cuda_conv1d_backward_weight(const vox_kernel_args *a) {
  vox_cu_conv c;
  VOX_TRY(conv_setup("conv1d backward weight", a->in[0], a->out[0], a->in[1], a->params, &c));
  return vox_cuda_status(vox_cu_conv1d_backward_weight(vox_cuda_compute_stream(), &c, vox_tensor_data(a->in[0]),
                                                       vox_tensor_data(a->in[1]), vox_tensor_data(a->out[0])),
                         "conv1d backward weight");
}
VOX_REGISTER_KERNEL(VOX_CUDA, CONV1D_BACKWARD_WEIGHT, cuda_conv1d_backward_weight)
