/* CUDA glue for the elementwise kernels: BINARY, UNARY, UNARY_BACKWARD, WHERE, DROPOUT, SWIGLU(+BACKWARD), with the
 * checks of backend/cpu/cpu_elementwise.c; the device code is kernels/elementwise.cu. */
#include "backend/cuda/cuda_internal.h"

static vox_status cuda_binary(const vox_kernel_args *a) {
  const vox_binary_params *p = a->params;
  vox_tensor *out = a->out[0];
  VOX_TRY(vox_cuda_require_same_shape("binary", out, a->in[0], "a"));
  VOX_TRY(vox_cuda_require_same_shape("binary", out, a->in[1], "b"));
  const vox_tensor *ops[3] = {out, a->in[0], a->in[1]};
  vox_cu_iter it;
  vox_cuda_iter_init(&it, out->ndim, out->shape, 3, ops);
  return vox_cuda_status(vox_cu_binary(vox_cuda_compute_stream(), &it, (int)p->op), "binary");
}
VOX_REGISTER_KERNEL(VOX_CUDA, BINARY, cuda_binary)

static vox_status cuda_unary(const vox_kernel_args *a) {
  const vox_unary_params *p = a->params;
  vox_tensor *out = a->out[0];
  VOX_TRY(vox_cuda_require_same_shape("unary", out, a->in[0], "x"));
  VOX_TRY(vox_cuda_require_float("unary", out, "output"));
  const vox_tensor *ops[2] = {out, a->in[0]};
  vox_cu_iter it;
  vox_cuda_iter_init(&it, out->ndim, out->shape, 2, ops);
  return vox_cuda_status(vox_cu_unary(vox_cuda_compute_stream(), &it, (int)p->op, (float)p->alpha, (float)p->beta,
                                      p->alpha == 2.0, p->alpha == 0.0),
                         "unary");
}
VOX_REGISTER_KERNEL(VOX_CUDA, UNARY, cuda_unary)

static vox_status cuda_unary_backward(const vox_kernel_args *a) {
  const vox_unary_params *p = a->params;
  vox_tensor *dx = a->out[0];
  VOX_TRY(vox_cuda_require_same_shape("unary_backward", dx, a->in[0], "x"));
  VOX_TRY(vox_cuda_require_same_shape("unary_backward", dx, a->in[1], "dy"));
  VOX_TRY(vox_cuda_require_float("unary_backward", dx, "dx"));
  const vox_tensor *ops[3] = {dx, a->in[0], a->in[1]};
  vox_cu_iter it;
  vox_cuda_iter_init(&it, dx->ndim, dx->shape, 3, ops);
  return vox_cuda_status(vox_cu_unary_backward(vox_cuda_compute_stream(), &it, (int)p->op, (float)p->alpha,
                                               (float)p->beta, p->alpha == 2.0, p->alpha == 0.0),
                         "unary_backward");
}
VOX_REGISTER_KERNEL(VOX_CUDA, UNARY_BACKWARD, cuda_unary_backward)

static vox_status cuda_where(const vox_kernel_args *a) {
  vox_tensor *out = a->out[0];
  VOX_TRY(vox_cuda_require_same_shape("where", out, a->in[0], "cond"));
  VOX_TRY(vox_cuda_require_same_shape("where", out, a->in[1], "a"));
  VOX_TRY(vox_cuda_require_same_shape("where", out, a->in[2], "b"));
  const vox_tensor *ops[4] = {out, a->in[0], a->in[1], a->in[2]};
  vox_cu_iter it;
  vox_cuda_iter_init(&it, out->ndim, out->shape, 4, ops);
  return vox_cuda_status(vox_cu_where(vox_cuda_compute_stream(), &it), "where");
}
VOX_REGISTER_KERNEL(VOX_CUDA, WHERE, cuda_where)

static vox_status cuda_dropout(const vox_kernel_args *a) {
  const vox_dropout_params *p = a->params;
  vox_tensor *out = a->out[0];
  VOX_TRY(vox_cuda_require_same_shape("dropout", out, a->in[0], "x"));
  VOX_TRY(vox_cuda_require_float("dropout", out, "output"));
  if (!vox_tensor_is_contiguous(out))
    return vox_errorf(VOX_ERR_INVALID, "dropout cuda kernel: the output must be contiguous (its index seeds the RNG)");
  const vox_tensor *ops[2] = {out, a->in[0]};
  vox_cu_iter it;
  vox_cuda_iter_init(&it, out->ndim, out->shape, 2, ops);
  float scale = p->p < 1.0f ? 1.0f / (1.0f - p->p) : 0.0f; /* the CPU kernel's expression, so the same float */
  return vox_cuda_status(vox_cu_dropout(vox_cuda_compute_stream(), &it, p->seed, p->offset, p->p, scale), "dropout");
}
VOX_REGISTER_KERNEL(VOX_CUDA, DROPOUT, cuda_dropout)

static vox_status cuda_swiglu(const vox_kernel_args *a) {
  vox_tensor *out = a->out[0];
  VOX_TRY(vox_cuda_require_same_shape("swiglu", out, a->in[0], "gate"));
  VOX_TRY(vox_cuda_require_same_shape("swiglu", out, a->in[1], "up"));
  VOX_TRY(vox_cuda_require_float("swiglu", out, "output"));
  const vox_tensor *ops[3] = {out, a->in[0], a->in[1]};
  vox_cu_iter it;
  vox_cuda_iter_init(&it, out->ndim, out->shape, 3, ops);
  return vox_cuda_status(vox_cu_swiglu(vox_cuda_compute_stream(), &it), "swiglu");
}
VOX_REGISTER_KERNEL(VOX_CUDA, SWIGLU, cuda_swiglu)

static vox_status cuda_swiglu_backward(const vox_kernel_args *a) {
  vox_tensor *dg = a->out[0], *du = a->out[1];
  const char *k = "swiglu_backward";
  VOX_TRY(vox_cuda_require_same_shape(k, dg, a->in[0], "gate"));
  VOX_TRY(vox_cuda_require_same_shape(k, dg, a->in[1], "up"));
  VOX_TRY(vox_cuda_require_same_shape(k, dg, a->in[2], "dy"));
  VOX_TRY(vox_cuda_require_same_shape(k, dg, du, "dup"));
  VOX_TRY(vox_cuda_require_dense(k, dg, -1, "dgate"));
  VOX_TRY(vox_cuda_require_dense(k, du, -1, "dup"));
  const vox_tensor *ops[4] = {dg, a->in[0], a->in[1], a->in[2]};
  vox_cu_iter it;
  vox_cuda_iter_init(&it, dg->ndim, dg->shape, 4, ops);
  return vox_cuda_status(vox_cu_swiglu_backward(vox_cuda_compute_stream(), &it, vox_tensor_data(du), (int)du->dtype),
                         k);
}
VOX_REGISTER_KERNEL(VOX_CUDA, SWIGLU_BACKWARD, cuda_swiglu_backward)
