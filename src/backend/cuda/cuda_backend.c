/* The CUDA backend's host side: device detection on first use, device memory and host transfers through
 * the CUDA runtime. Kernels live in kernels/ and register into this backend's table like the CPU ones. */
#include <cuda_runtime.h>
#include <stdlib.h>

#include "core/backend.h"
#include "core/log.h"

static vox_status cuda_check(cudaError_t e, const char *what) {
  if (e == cudaSuccess) return VOX_OK;
  return vox_errorf(VOX_ERR_DEVICE, "cuda: %s: %s", what, cudaGetErrorString(e));
}

static vox_status cuda_alloc(size_t nbytes, void **ptr) {
  cudaError_t e = cudaMalloc(ptr, nbytes);
  if (e == cudaErrorMemoryAllocation) return vox_errorf(VOX_ERR_NOMEM, "cuda: out of device memory allocating %zu bytes", nbytes);
  return cuda_check(e, "cudaMalloc");
}
static void cuda_free(void *ptr, size_t nbytes) { cudaFree(ptr); }
static vox_status cuda_to_host(void *dst, const void *src, size_t nbytes) {
  return cuda_check(cudaMemcpy(dst, src, nbytes, cudaMemcpyDeviceToHost), "copy to host");
}
static vox_status cuda_from_host(void *dst, const void *src, size_t nbytes) {
  return cuda_check(cudaMemcpy(dst, src, nbytes, cudaMemcpyHostToDevice), "copy from host");
}
static vox_status cuda_synchronize(void) { return cuda_check(cudaDeviceSynchronize(), "synchronize"); }

/* Device selection: VOX_CUDA_DEVICE, else device 0 (the distributed layer picks by local rank). */
static void cuda_probe(vox_backend *be) {
  int count = 0;
  cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess || count == 0) {
    vox_log_debug("cuda: no usable device (%s)", e == cudaSuccess ? "none found" : cudaGetErrorString(e));
    return;
  }
  const char *env = getenv("VOX_CUDA_DEVICE");
  int device = env ? atoi(env) : 0;
  if (device < 0 || device >= count || cudaSetDevice(device) != cudaSuccess) {
    vox_log_warn("cuda: VOX_CUDA_DEVICE=%s is not one of the %d devices; CUDA disabled", env ? env : "0", count);
    return;
  }
  be->available = true;
}

__attribute__((constructor(101))) static void cuda_backend_init(void) {
  vox_backend *be = vox_backend_table(VOX_CUDA); /* not vox_backend_get: that would probe at load time */
  be->probe = cuda_probe;
  be->alloc = cuda_alloc;
  be->free = cuda_free;
  be->copy_to_host = cuda_to_host;
  be->copy_from_host = cuda_from_host;
  be->synchronize = cuda_synchronize;
}
