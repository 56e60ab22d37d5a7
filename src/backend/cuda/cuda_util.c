/* Host helpers of the CUDA kernel glue (see cuda_internal.h): descriptors of strided operands, checks with the
 * CPU kernels' wording, stream-ordered scratch memory and device-side id validation. */
#include <inttypes.h>
#include <stdint.h>

#include "backend/cuda/cuda_internal.h"

vox_status vox_cuda_status(cudaError_t e, const char *kernel) {
  if (e == cudaSuccess) return VOX_OK;
  (void)cudaGetLastError(); /* clear a sticky launch error so the next call reports its own */
  return vox_errorf(VOX_ERR_DEVICE, "%s cuda kernel: %s", kernel, cudaGetErrorString(e));
}

void vox_cuda_iter_init(vox_cu_iter *it, int ndim, const int64_t *shape, int n_ops, const vox_tensor *const *ops) {
  it->n_ops = n_ops;
  it->numel = 1;
  for (int d = 0; d < ndim; d++) it->numel *= shape[d];
  for (int k = 0; k < n_ops; k++) {
    it->data[k] = vox_tensor_data(ops[k]);
    it->dtype[k] = (int)ops[k]->dtype;
  }
  int n = 0;
  for (int d = 0; d < ndim; d++) {
    if (shape[d] == 1) continue;
    if (n > 0) {
      bool merge = true;
      for (int k = 0; k < n_ops; k++)
        if (it->strides[k][n - 1] != ops[k]->strides[d] * shape[d]) merge = false;
      if (merge) {
        it->shape[n - 1] *= shape[d];
        for (int k = 0; k < n_ops; k++) it->strides[k][n - 1] = ops[k]->strides[d];
        continue;
      }
    }
    it->shape[n] = shape[d];
    for (int k = 0; k < n_ops; k++) it->strides[k][n] = ops[k]->strides[d];
    n++;
  }
  if (n == 0) {
    it->shape[0] = 1;
    for (int k = 0; k < n_ops; k++) it->strides[k][0] = 1;
    n = 1;
  }
  it->ndim = n;
}

vox_cu_view vox_cuda_view(const vox_tensor *t) {
  vox_cu_view v = {0};
  if (!t) return v;
  v.data = vox_tensor_data(t);
  v.dtype = (int)t->dtype;
  v.ndim = t->ndim;
  for (int d = 0; d < t->ndim; d++) {
    v.shape[d] = t->shape[d];
    v.strides[d] = t->strides[d];
  }
  return v;
}

vox_status vox_cuda_scratch_alloc(size_t nbytes, void **ptr) {
  *ptr = NULL;
  vox_backend *be = vox_backend_get(VOX_CUDA);
  return be->alloc(nbytes ? nbytes : 1, ptr);
}

void vox_cuda_scratch_free(void *ptr, size_t nbytes) {
  if (ptr) vox_backend_get(VOX_CUDA)->free(ptr, nbytes);
}

vox_status vox_cuda_check_ids(const char *kernel, const vox_tensor *ids, int64_t limit, int64_t allowed,
                              const char *what, int dim) {
  int64_t n = vox_tensor_numel(ids);
  if (n == 0) return VOX_OK;
  cudaStream_t s = vox_cuda_compute_stream();
  unsigned long long *bad = NULL, host_bad = 0;
  VOX_TRY(vox_cuda_scratch_alloc(sizeof *bad, (void **)&bad));
  vox_cu_view v = vox_cuda_view(ids);
  cudaError_t e = cudaMemsetAsync(bad, 0xff, sizeof *bad, s);
  if (e == cudaSuccess) e = vox_cu_check_ids(s, &v, limit, allowed, bad);
  if (e == cudaSuccess) e = cudaMemcpyAsync(&host_bad, bad, sizeof host_bad, cudaMemcpyDeviceToHost, s);
  if (e == cudaSuccess) e = cudaStreamSynchronize(s);
  vox_cuda_scratch_free(bad, sizeof *bad);
  VOX_TRY(vox_cuda_status(e, kernel));
  if (host_bad == ~0ULL) return VOX_OK;
  /* Read the offending value for the message (the position is a flat row-major index). */
  int64_t i = (int64_t)host_bad, off = 0, rem = i;
  for (int d = ids->ndim - 1; d >= 0; d--) {
    off += (rem % ids->shape[d]) * ids->strides[d];
    rem /= ids->shape[d];
  }
  int32_t value = 0;
  e = cudaMemcpyAsync(&value, (const int32_t *)vox_tensor_data(ids) + off, sizeof value, cudaMemcpyDeviceToHost, s);
  if (e == cudaSuccess) e = cudaStreamSynchronize(s);
  VOX_TRY(vox_cuda_status(e, kernel));
  if (dim < 0)
    return vox_errorf(VOX_ERR_INDEX, "%s kernel: %s %d at position %" PRId64 " is outside [0, %" PRId64 ")", kernel,
                      what, value, i, limit);
  return vox_errorf(VOX_ERR_INDEX, "%s kernel: %s %d at position %" PRId64 " is outside [0, %" PRId64 ") along dim %d",
                    kernel, what, value, i, limit, dim);
}

vox_status vox_cuda_require_float(const char *kernel, const vox_tensor *t, const char *what) {
  char b[96];
  if (!vox_dtype_is_float(t->dtype))
    return vox_errorf(VOX_ERR_DTYPE, "%s cuda kernel: %s %s must be f32 or bf16", kernel, what,
                      vox_tensor_describe(t, b, sizeof b));
  return VOX_OK;
}

vox_status vox_cuda_require_same_shape(const char *kernel, const vox_tensor *out, const vox_tensor *t,
                                       const char *what) {
  char b1[96], b2[96];
  if (!vox_tensor_same_shape(out, t))
    return vox_errorf(VOX_ERR_SHAPE, "%s cuda kernel: %s %s does not match output %s", kernel, what,
                      vox_tensor_describe(t, b1, sizeof b1), vox_tensor_describe(out, b2, sizeof b2));
  return VOX_OK;
}

vox_status vox_cuda_require_dense(const char *kernel, const vox_tensor *t, int dtype, const char *what) {
  char b[96];
  if (!t) return VOX_OK;
  bool dt_ok = dtype < 0 ? vox_dtype_is_float(t->dtype) : (int)t->dtype == dtype;
  if (!dt_ok || !vox_tensor_is_contiguous(t))
    return vox_errorf(VOX_ERR_INVALID, "%s cuda kernel: %s %s must be contiguous %s", kernel, what,
                      vox_tensor_describe(t, b, sizeof b), dtype < 0 ? "f32 or bf16" : vox_dtype_name((vox_dtype)dtype));
  return VOX_OK;
}
