/* Host-side helpers for the CUDA kernel glue: error conversion, operand descriptors built from vox tensors,
 * stream-ordered scratch memory and device-side index validation. Private to src/backend/cuda. */
#ifndef VOX_BACKEND_CUDA_INTERNAL_H
#define VOX_BACKEND_CUDA_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include "backend/cuda/cuda_kernels.h"
#include "backend/cuda/cuda_stream.h"
#include "core/backend.h"
#include "core/kernel_params.h"
#include "core/tensor.h"

/* VOX_OK, or VOX_ERR_DEVICE naming `kernel` and the CUDA error. */
vox_status vox_cuda_status(cudaError_t e, const char *kernel);

/* An iterator over `shape` for n_ops operands (broadcast ones carry stride 0); dims of size 1 are dropped and
 * neighbours contiguous in every operand merged, as the CPU iterator does. */
void vox_cuda_iter_init(vox_cu_iter *it, int ndim, const int64_t *shape, int n_ops, const vox_tensor *const *ops);
/* A view descriptor of t (all zero for NULL). */
vox_cu_view vox_cuda_view(const vox_tensor *t);

/* Device scratch memory in the compute stream's order: free it right after the launches that use it. */
vox_status vox_cuda_scratch_alloc(size_t nbytes, void **ptr);
void vox_cuda_scratch_free(void *ptr, size_t nbytes);

/* Checks on the device that every element of ids (i32, any strides) lies in [0, limit) or equals `allowed`;
 * synchronises with the compute stream. On failure, VOX_ERR_INDEX naming `kernel`, `what`, the value and position
 * (and dim when dim >= 0), as the CPU kernels word it. */
vox_status vox_cuda_check_ids(const char *kernel, const vox_tensor *ids, int64_t limit, int64_t allowed,
                              const char *what, int dim);

/* Shared operand checks. */
vox_status vox_cuda_require_float(const char *kernel, const vox_tensor *t, const char *what);
vox_status vox_cuda_require_same_shape(const char *kernel, const vox_tensor *out, const vox_tensor *t,
                                       const char *what);
/* Contiguous, and of dtype `dtype` (-1: f32 or bf16). NULL passes. */
vox_status vox_cuda_require_dense(const char *kernel, const vox_tensor *t, int dtype, const char *what);

#endif
