/* The CUDA backend's host side: device detection on first use, the compute stream, a caching device allocator
 * (the device's stream-ordered memory pool, kept instead of returned to the driver) and host transfers.
 * Kernels live in kernels/ and register into this backend's table from the cuda_ops_*.c glue. */
#include <cuda_runtime.h>
#include <stdint.h>
#include <stdlib.h>

#include "backend/cuda/cuda_stream.h"
#include "core/backend.h"
#include "core/log.h"
#include "core/storage.h"

static cudaStream_t compute_stream;
static cudaMemPool_t pool;
static bool use_pool; /* false when the device has no memory pools: plain cudaMalloc/cudaFree */

static vox_status cuda_check(cudaError_t e, const char *what) {
  if (e == cudaSuccess) return VOX_OK;
  return vox_errorf(VOX_ERR_DEVICE, "cuda: %s: %s", what, cudaGetErrorString(e));
}

cudaStream_t vox_cuda_compute_stream(void) { return compute_stream; }

/* Allocations are ordered on the compute stream: a block freed by one kernel sequence is handed to the next
 * allocation at once, without a device synchronisation. When the pool cannot grow, cached blocks are returned
 * to the driver and the allocation is tried once more. */
static vox_status cuda_alloc(size_t nbytes, void **ptr) {
  cudaError_t e = use_pool ? cudaMallocAsync(ptr, nbytes, compute_stream) : cudaMalloc(ptr, nbytes);
  if (e == cudaErrorMemoryAllocation) {
    (void)cudaGetLastError();
    cudaStreamSynchronize(compute_stream);
    if (use_pool) cudaMemPoolTrimTo(pool, 0);
    e = use_pool ? cudaMallocAsync(ptr, nbytes, compute_stream) : cudaMalloc(ptr, nbytes);
  }
  if (e == cudaErrorMemoryAllocation) {
    (void)cudaGetLastError();
    return vox_errorf(VOX_ERR_NOMEM, "cuda: out of device memory allocating %zu bytes (%zu bytes held by tensors)",
                      nbytes, vox_memory_live_bytes(VOX_CUDA));
  }
  return cuda_check(e, "device allocation");
}

static void cuda_free(void *ptr, size_t nbytes) {
  cudaError_t e = use_pool ? cudaFreeAsync(ptr, compute_stream) : cudaFree(ptr);
  if (e != cudaSuccess) vox_log_warn("cuda: freeing %zu bytes: %s", nbytes, cudaGetErrorString(e));
}

size_t vox_cuda_memory_reserved_bytes(void) {
  if (!compute_stream || !use_pool) return 0;
  uint64_t v = 0;
  if (cudaMemPoolGetAttribute(pool, cudaMemPoolAttrReservedMemCurrent, &v) != cudaSuccess) return 0;
  return (size_t)v;
}

vox_status vox_cuda_memory_empty_cache(void) {
  if (!compute_stream) return VOX_OK;
  VOX_TRY(cuda_check(cudaStreamSynchronize(compute_stream), "empty cache: synchronize"));
  if (use_pool) VOX_TRY(cuda_check(cudaMemPoolTrimTo(pool, 0), "empty cache: trim pool"));
  return VOX_OK;
}

/* Transfers go through the compute stream, so they are ordered after the kernels that produced the data. */
static vox_status cuda_to_host(void *dst, const void *src, size_t nbytes) {
  VOX_TRY(cuda_check(cudaMemcpyAsync(dst, src, nbytes, cudaMemcpyDeviceToHost, compute_stream), "copy to host"));
  return cuda_check(cudaStreamSynchronize(compute_stream), "copy to host: synchronize");
}
/* From pageable memory the call returns once the source has been staged, so `src` may be reused at once. */
static vox_status cuda_from_host(void *dst, const void *src, size_t nbytes) {
  return cuda_check(cudaMemcpyAsync(dst, src, nbytes, cudaMemcpyHostToDevice, compute_stream), "copy from host");
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
  int lo = 0, hi = 0;
  cudaDeviceGetStreamPriorityRange(&lo, &hi);
  /* cudaStreamDefault: ordered with the legacy default stream, which other libraries may use. */
  e = cudaStreamCreateWithPriority(&compute_stream, cudaStreamDefault, lo);
  if (e != cudaSuccess) {
    vox_log_warn("cuda: cannot create the compute stream (%s); CUDA disabled", cudaGetErrorString(e));
    compute_stream = NULL;
    return;
  }
  int pools = 0;
  cudaDeviceGetAttribute(&pools, cudaDevAttrMemoryPoolsSupported, device);
  if (pools && cudaDeviceGetDefaultMemPool(&pool, device) == cudaSuccess) {
    uint64_t keep = UINT64_MAX; /* never give freed blocks back on synchronisation: this is the cache */
    use_pool = cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &keep) == cudaSuccess;
  }
  if (!use_pool) vox_log_info("cuda: device %d has no memory pools; using cudaMalloc without a cache", device);
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
