/* CUDA glue for reductions, softmax and cross-entropy: REDUCE, ARG_REDUCE, SOFTMAX(+BACKWARD),
 * CROSS_ENTROPY(+BACKWARD). Checks mirror the CPU kernels; device code in kernels/reduce.cu and softmax.cu. */
#include "backend/cuda/cuda_internal.h"

static vox_status check_reduced_shape(const char *k, const vox_tensor *x, const vox_tensor *out, uint32_t dims) {
  char b1[96], b2[96];
  bool ok = x->ndim == out->ndim;
  for (int d = 0; ok && d < x->ndim; d++) ok = out->shape[d] == ((dims & (1u << d)) ? 1 : x->shape[d]);
  if (!ok)
    return vox_errorf(VOX_ERR_SHAPE, "%s cuda kernel: output %s is not %s reduced over dims 0x%x (keepdim)", k,
                      vox_tensor_describe(out, b1, sizeof b1), vox_tensor_describe(x, b2, sizeof b2), dims);
  return VOX_OK;
}

/* Appends a dim to a plan list, merging it into the previous one when both strides allow. */
static void plan_push(int *n, int64_t *sizes, int64_t *s1, int64_t *s2, int64_t size, int64_t a, int64_t b) {
  if (size == 1) return;
  int k = *n;
  if (k > 0 && s1[k - 1] == a * size && (!s2 || s2[k - 1] == b * size)) {
    sizes[k - 1] *= size;
    s1[k - 1] = a;
    if (s2) s2[k - 1] = b;
    return;
  }
  sizes[k] = size;
  s1[k] = a;
  if (s2) s2[k] = b;
  *n = k + 1;
}

static vox_status cuda_reduce(const vox_kernel_args *a) {
  const vox_reduce_params *prm = a->params;
  const vox_tensor *x = a->in[0];
  vox_tensor *out = a->out[0];
  VOX_TRY(check_reduced_shape("reduce", x, out, prm->dims));
  vox_cu_reduce_plan p = {.n_out = 1, .n_red = 1, .x = vox_tensor_data(x), .out = vox_tensor_data(out),
                          .x_dtype = (int)x->dtype, .out_dtype = (int)out->dtype};
  for (int d = 0; d < x->ndim; d++) {
    if (prm->dims & (1u << d)) {
      plan_push(&p.nr, p.rs, p.rxs, NULL, x->shape[d], x->strides[d], 0);
      p.n_red *= x->shape[d];
    } else {
      plan_push(&p.nk, p.ks, p.kxs, p.kos, x->shape[d], x->strides[d], out->strides[d]);
      p.n_out *= x->shape[d];
    }
  }
  if (p.n_out == 0) return VOX_OK;
  int64_t chunks = vox_cu_reduce_chunks(&p);
  size_t nbytes = sizeof(double) * (size_t)(p.n_out * chunks);
  double *part = NULL;
  VOX_TRY(vox_cuda_scratch_alloc(nbytes, (void **)&part));
  cudaError_t e = vox_cu_reduce(vox_cuda_compute_stream(), &p, (int)prm->op, part, chunks);
  vox_cuda_scratch_free(part, nbytes);
  return vox_cuda_status(e, "reduce");
}
VOX_REGISTER_KERNEL(VOX_CUDA, REDUCE, cuda_reduce)

static vox_status cuda_arg_reduce(const vox_kernel_args *a) {
  const vox_arg_reduce_params *prm = a->params;
  const vox_tensor *x = a->in[0];
  vox_tensor *out = a->out[0];
  if (out->dtype != VOX_I32) return vox_errorf(VOX_ERR_DTYPE, "arg_reduce cuda kernel: output must be i32");
  if (prm->dim < 0 || prm->dim >= x->ndim)
    return vox_errorf(VOX_ERR_INDEX, "arg_reduce cuda kernel: dim %d out of range", prm->dim);
  VOX_TRY(check_reduced_shape("arg_reduce", x, out, 1u << prm->dim));
  int64_t n = x->shape[prm->dim];
  if (n == 0) return vox_errorf(VOX_ERR_SHAPE, "arg_reduce cuda kernel: dim %d is empty", prm->dim);
  const vox_tensor *ops[2] = {out, x};
  vox_cu_iter it;
  vox_cuda_iter_init(&it, out->ndim, out->shape, 2, ops);
  return vox_cuda_status(
      vox_cu_arg_reduce(vox_cuda_compute_stream(), &it, n, x->strides[prm->dim], prm->is_max), "arg_reduce");
}
VOX_REGISTER_KERNEL(VOX_CUDA, ARG_REDUCE, cuda_arg_reduce)

static vox_status check_rows(const char *op, int n, const vox_tensor *const *ts) {
  for (int i = 0; i < n; i++) {
    if (!vox_dtype_is_float(ts[i]->dtype))
      return vox_errorf(VOX_ERR_DTYPE, "%s cuda kernel: operand %d is %s, expected f32 or bf16", op, i,
                        vox_dtype_name(ts[i]->dtype));
    if (!vox_tensor_same_shape(ts[i], ts[0]) || ts[i]->ndim < 1)
      return vox_errorf(VOX_ERR_SHAPE, "%s cuda kernel: operands must share one shape of at least 1 dim", op);
  }
  return VOX_OK;
}

static vox_status cuda_softmax(const vox_kernel_args *a) {
  const vox_softmax_params *p = a->params;
  const vox_tensor *ts[2] = {a->in[0], a->out[0]};
  VOX_TRY(check_rows("softmax", 2, ts));
  vox_cu_view x = vox_cuda_view(a->in[0]), y = vox_cuda_view(a->out[0]);
  return vox_cuda_status(vox_cu_softmax(vox_cuda_compute_stream(), &x, &y, p && p->log), "softmax");
}
VOX_REGISTER_KERNEL(VOX_CUDA, SOFTMAX, cuda_softmax)

static vox_status cuda_softmax_backward(const vox_kernel_args *a) {
  const vox_softmax_params *p = a->params;
  const vox_tensor *ts[3] = {a->in[0], a->in[1], a->out[0]};
  VOX_TRY(check_rows("softmax backward", 3, ts));
  vox_cu_view y = vox_cuda_view(a->in[0]), dy = vox_cuda_view(a->in[1]), dx = vox_cuda_view(a->out[0]);
  return vox_cuda_status(vox_cu_softmax_backward(vox_cuda_compute_stream(), &y, &dy, &dx, p && p->log),
                         "softmax backward");
}
VOX_REGISTER_KERNEL(VOX_CUDA, SOFTMAX_BACKWARD, cuda_softmax_backward)

static vox_status check_ce_operands(const char *op, const vox_tensor *logits, const vox_tensor *target) {
  if (logits->ndim != 2 || target->ndim != 1 || target->shape[0] != logits->shape[0])
    return vox_errorf(VOX_ERR_SHAPE, "%s cuda kernel: logits [N, V] and target [N] expected", op);
  if (!vox_dtype_is_float(logits->dtype) || target->dtype != VOX_I32)
    return vox_errorf(VOX_ERR_DTYPE, "%s cuda kernel: float logits and i32 targets expected, got %s and %s", op,
                      vox_dtype_name(logits->dtype), vox_dtype_name(target->dtype));
  return VOX_OK;
}

static vox_status cuda_cross_entropy(const vox_kernel_args *a) {
  const vox_cross_entropy_params *p = a->params;
  const vox_tensor *x = a->in[0], *target = a->in[1];
  vox_tensor *loss = a->out[0], *lse = a->out[1];
  VOX_TRY(check_ce_operands("cross_entropy", x, target));
  if (loss->dtype != VOX_F32 || lse->dtype != VOX_F32 || loss->ndim != 1 || lse->ndim != 1 ||
      loss->shape[0] != x->shape[0] || lse->shape[0] != x->shape[0])
    return vox_errorf(VOX_ERR_DTYPE, "cross_entropy cuda kernel: loss and lse outputs must be f32 [N]");
  VOX_TRY(vox_cuda_check_ids("cross_entropy", target, x->shape[1], p->ignore_index, "target", -1));
  vox_cu_view xv = vox_cuda_view(x), tv = vox_cuda_view(target), lv = vox_cuda_view(loss), sv = vox_cuda_view(lse);
  return vox_cuda_status(vox_cu_cross_entropy(vox_cuda_compute_stream(), &xv, &tv, &lv, &sv, p->ignore_index,
                                              p->label_smoothing),
                         "cross_entropy");
}
VOX_REGISTER_KERNEL(VOX_CUDA, CROSS_ENTROPY, cuda_cross_entropy)

static vox_status cuda_cross_entropy_backward(const vox_kernel_args *a) {
  const vox_cross_entropy_params *p = a->params;
  const vox_tensor *x = a->in[0], *target = a->in[1], *lse = a->in[2], *dloss = a->in[3];
  vox_tensor *dx = a->out[0];
  VOX_TRY(check_ce_operands("cross_entropy backward", x, target));
  if (!vox_tensor_same_shape(dx, x) || lse->ndim != 1 || dloss->ndim != 1 || lse->shape[0] != x->shape[0] ||
      dloss->shape[0] != x->shape[0])
    return vox_errorf(VOX_ERR_SHAPE,
                      "cross_entropy backward cuda kernel: lse [N], dloss [N], dlogits [N, V] expected");
  VOX_TRY(vox_cuda_require_float("cross_entropy backward", dx, "dlogits"));
  /* Targets were validated by the forward; here they are only compared, never used as addresses. */
  vox_cu_view xv = vox_cuda_view(x), tv = vox_cuda_view(target), sv = vox_cuda_view(lse), gv = vox_cuda_view(dloss),
              dv = vox_cuda_view(dx);
  return vox_cuda_status(vox_cu_cross_entropy_backward(vox_cuda_compute_stream(), &xv, &tv, &sv, &gv, &dv,
                                                       p->ignore_index, p->label_smoothing),
                         "cross_entropy backward");
}
VOX_REGISTER_KERNEL(VOX_CUDA, CROSS_ENTROPY_BACKWARD, cuda_cross_entropy_backward)
