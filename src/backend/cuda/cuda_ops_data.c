/* CUDA glue for the data kernels: COPY (strided, with casts), FILL and RNG. Checks mirror
 * backend/cpu/cpu_copy.c; the device code is kernels/copy.cu. */
#include <string.h>

#include "backend/cuda/cuda_internal.h"

static vox_status cuda_copy(const vox_kernel_args *a) {
  const vox_tensor *src = a->in[0];
  vox_tensor *dst = a->out[0];
  VOX_TRY(vox_cuda_require_same_shape("copy", dst, src, "source"));
  const vox_tensor *ops[2] = {dst, src};
  vox_cu_iter it;
  vox_cuda_iter_init(&it, dst->ndim, dst->shape, 2, ops);
  /* A dense same-dtype copy is one memcpy on the stream. */
  if (dst->dtype == src->dtype && it.ndim == 1 && it.strides[0][0] == 1 && it.strides[1][0] == 1)
    return vox_cuda_status(cudaMemcpyAsync(it.data[0], it.data[1], (size_t)it.numel * vox_dtype_size(dst->dtype),
                                           cudaMemcpyDeviceToDevice, vox_cuda_compute_stream()),
                           "copy");
  return vox_cuda_status(vox_cu_copy(vox_cuda_compute_stream(), &it), "copy");
}
VOX_REGISTER_KERNEL(VOX_CUDA, COPY, cuda_copy)

/* The value's bit pattern in the tensor's dtype, converted on the host exactly as the CPU kernel converts it. */
static vox_status cuda_fill(const vox_kernel_args *a) {
  vox_tensor *t = a->out[0];
  const vox_fill_params *p = a->params;
  uint32_t bits;
  float f = (float)p->value;
  if (t->dtype == VOX_F32) memcpy(&bits, &f, sizeof bits);
  else if (t->dtype == VOX_BF16) bits = vox_f32_to_bf16(f);
  else {
    int32_t iv = (int32_t)p->value;
    memcpy(&bits, &iv, sizeof bits);
  }
  const vox_tensor *ops[1] = {t};
  vox_cu_iter it;
  vox_cuda_iter_init(&it, t->ndim, t->shape, 1, ops);
  return vox_cuda_status(vox_cu_fill(vox_cuda_compute_stream(), &it, bits), "fill");
}
VOX_REGISTER_KERNEL(VOX_CUDA, FILL, cuda_fill)

static vox_status cuda_rng(const vox_kernel_args *a) {
  vox_tensor *t = a->out[0];
  const vox_rng_params *p = a->params;
  if (!vox_tensor_is_contiguous(t)) return vox_errorf(VOX_ERR_INVALID, "rng cuda kernel: output must be contiguous");
  if (!vox_dtype_is_float(t->dtype)) return vox_errorf(VOX_ERR_DTYPE, "rng cuda kernel: output must be f32 or bf16");
  int dist = p->dist == VOX_RNG_UNIFORM ? 0 : p->dist == VOX_RNG_NORMAL ? 1 : 2;
  return vox_cuda_status(vox_cu_rng(vox_cuda_compute_stream(), vox_tensor_data(t), (int)t->dtype,
                                    vox_tensor_numel(t), p->seed, p->offset, dist, p->a, p->b),
                         "rng");
}
VOX_REGISTER_KERNEL(VOX_CUDA, RNG, cuda_rng)
