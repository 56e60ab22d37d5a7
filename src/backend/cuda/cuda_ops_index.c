/* CUDA glue for the indexing kernels: EMBEDDING(+BACKWARD), GATHER, SCATTER_ADD and PAIRWISE_SQDIST, with the
 * CPU kernels' shape checks and id range checks (run on the device); device code in kernels/index.cu. */
#include "backend/cuda/cuda_internal.h"

static vox_status cuda_embedding(const vox_kernel_args *a) {
  const vox_tensor *w = a->in[0], *ids = a->in[1];
  vox_tensor *out = a->out[0];
  if (w->ndim != 2 || ids->dtype != VOX_I32 || out->ndim != ids->ndim + 1 || out->shape[ids->ndim] != w->shape[1])
    return vox_errorf(VOX_ERR_SHAPE, "embedding cuda kernel: weight [V, D], i32 ids [...], out [..., D] expected");
  VOX_TRY(vox_cuda_require_float("embedding", out, "output"));
  VOX_TRY(vox_cuda_check_ids("embedding", ids, w->shape[0], INT64_MIN, "id", -1));
  vox_cu_view wv = vox_cuda_view(w), iv = vox_cuda_view(ids), ov = vox_cuda_view(out);
  return vox_cuda_status(vox_cu_embedding(vox_cuda_compute_stream(), &wv, &iv, &ov), "embedding");
}
VOX_REGISTER_KERNEL(VOX_CUDA, EMBEDDING, cuda_embedding)

static vox_status cuda_embedding_backward(const vox_kernel_args *a) {
  const vox_tensor *dy = a->in[0], *ids = a->in[1];
  vox_tensor *dw = a->out[0];
  if (dw->ndim != 2 || ids->dtype != VOX_I32 || dy->ndim != ids->ndim + 1 || dy->shape[ids->ndim] != dw->shape[1])
    return vox_errorf(VOX_ERR_SHAPE,
                      "embedding backward cuda kernel: dy [..., D], i32 ids [...], dweight [V, D] expected");
  VOX_TRY(vox_cuda_require_float("embedding backward", dw, "dweight"));
  VOX_TRY(vox_cuda_check_ids("embedding backward", ids, dw->shape[0], INT64_MIN, "id", -1));
  vox_cu_view gv = vox_cuda_view(dy), iv = vox_cuda_view(ids), wv = vox_cuda_view(dw);
  return vox_cuda_status(vox_cu_embedding_backward(vox_cuda_compute_stream(), &gv, &iv, &wv), "embedding backward");
}
VOX_REGISTER_KERNEL(VOX_CUDA, EMBEDDING_BACKWARD, cuda_embedding_backward)

static vox_status check_index_shapes(const char *op, const vox_tensor *x, const vox_tensor *index, int dim) {
  if (index->dtype != VOX_I32 || index->ndim != x->ndim || dim < 0 || dim >= x->ndim)
    return vox_errorf(VOX_ERR_SHAPE, "%s cuda kernel: i32 index with the input's %d dims and a valid dim expected", op,
                      x->ndim);
  for (int d = 0; d < x->ndim; d++)
    if (d != dim && index->shape[d] > x->shape[d])
      return vox_errorf(VOX_ERR_SHAPE, "%s cuda kernel: index dim %d (%lld) exceeds the input's (%lld)", op, d,
                        (long long)index->shape[d], (long long)x->shape[d]);
  return VOX_OK;
}

static vox_status cuda_gather(const vox_kernel_args *a) {
  const vox_index_params *p = a->params;
  const vox_tensor *x = a->in[0], *index = a->in[1];
  vox_tensor *out = a->out[0];
  VOX_TRY(check_index_shapes("gather", x, index, p->dim));
  if (!vox_tensor_same_shape(out, index))
    return vox_errorf(VOX_ERR_SHAPE, "gather cuda kernel: out must match index");
  VOX_TRY(vox_cuda_check_ids("gather", index, x->shape[p->dim], INT64_MIN, "index", p->dim));
  vox_cu_view xv = vox_cuda_view(x), iv = vox_cuda_view(index), ov = vox_cuda_view(out);
  return vox_cuda_status(vox_cu_gather(vox_cuda_compute_stream(), &xv, &iv, &ov, p->dim), "gather");
}
VOX_REGISTER_KERNEL(VOX_CUDA, GATHER, cuda_gather)

static vox_status cuda_scatter_add(const vox_kernel_args *a) {
  const vox_index_params *p = a->params;
  const vox_tensor *index = a->in[0], *src = a->in[1];
  vox_tensor *out = a->out[0];
  VOX_TRY(check_index_shapes("scatter_add", out, index, p->dim));
  if (src->ndim != index->ndim)
    return vox_errorf(VOX_ERR_SHAPE, "scatter_add cuda kernel: src must have the index's dims");
  for (int d = 0; d < src->ndim; d++)
    if (index->shape[d] > src->shape[d])
      return vox_errorf(VOX_ERR_SHAPE, "scatter_add cuda kernel: index dim %d (%lld) exceeds src's (%lld)", d,
                        (long long)index->shape[d], (long long)src->shape[d]);
  VOX_TRY(vox_cuda_require_float("scatter_add", out, "output"));
  VOX_TRY(vox_cuda_check_ids("scatter_add", index, out->shape[p->dim], INT64_MIN, "index", p->dim));
  vox_cu_view iv = vox_cuda_view(index), sv = vox_cuda_view(src), ov = vox_cuda_view(out);
  return vox_cuda_status(vox_cu_scatter_add(vox_cuda_compute_stream(), &iv, &sv, &ov, p->dim), "scatter_add");
}
VOX_REGISTER_KERNEL(VOX_CUDA, SCATTER_ADD, cuda_scatter_add)

static vox_status cuda_pairwise_sqdist(const vox_kernel_args *a) {
  const vox_tensor *x = a->in[0], *c = a->in[1];
  vox_tensor *out = a->out[0];
  if (x->ndim != 2 || c->ndim != 2 || x->shape[1] != c->shape[1] || out->ndim != 2 || out->shape[0] != x->shape[0] ||
      out->shape[1] != c->shape[0])
    return vox_errorf(VOX_ERR_SHAPE, "pairwise_sqdist cuda kernel: x [N, D], c [K, D], out [N, K] expected");
  VOX_TRY(vox_cuda_require_float("pairwise_sqdist", out, "output"));
  vox_cu_view xv = vox_cuda_view(x), cv = vox_cuda_view(c), ov = vox_cuda_view(out);
  return vox_cuda_status(vox_cu_pairwise_sqdist(vox_cuda_compute_stream(), &xv, &cv, &ov), "pairwise_sqdist");
}
VOX_REGISTER_KERNEL(VOX_CUDA, PAIRWISE_SQDIST, cuda_pairwise_sqdist)
