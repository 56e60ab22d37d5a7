/* CUDA streams and events for vox: the compute stream every vox kernel and copy runs on, side streams (e.g. for
 * NCCL all-reduces overlapping backward) and events to order work between them.
 *
 * Memory rule: device memory is allocated and freed in the compute stream's order (cudaMallocAsync pool). Work
 * queued on a side stream that reads or writes a tensor must be made visible to the compute stream before that
 * tensor is released, by vox_cuda_event_record(ev, side) then vox_cuda_stream_wait(vox_cuda_compute_stream(), ev)
 * — otherwise its memory can be reused by a later allocation while the side stream still uses it. */
#ifndef VOX_BACKEND_CUDA_STREAM_H
#define VOX_BACKEND_CUDA_STREAM_H

#include <cuda_runtime.h>
#include <stdbool.h>

#include "core/status.h"

/* The stream all vox kernels, copies and allocations use (created when the device is probed; it synchronises
 * with the legacy default stream, so libraries that use stream 0 stay ordered with it). NULL before a successful
 * probe (vox_backend_get(VOX_CUDA)->available). */
cudaStream_t vox_cuda_compute_stream(void);

/* A side stream that does not synchronise with the legacy default stream; high priority lets communication
 * kernels start ahead of queued compute. */
vox_status vox_cuda_stream_create(bool high_priority, cudaStream_t *out);
void vox_cuda_stream_destroy(cudaStream_t s); /* NULL is fine */
vox_status vox_cuda_stream_sync(cudaStream_t s);

/* Events without timing (cheapest): record on one stream, wait on another or on the host. */
vox_status vox_cuda_event_create(cudaEvent_t *out);
void vox_cuda_event_destroy(cudaEvent_t e); /* NULL is fine */
vox_status vox_cuda_event_record(cudaEvent_t e, cudaStream_t s);
/* Work queued on `s` after this call waits until `e` has completed (no host blocking). */
vox_status vox_cuda_stream_wait(cudaStream_t s, cudaEvent_t e);
vox_status vox_cuda_event_sync(cudaEvent_t e);
/* *done = whether all work captured by `e` has completed (no blocking). */
vox_status vox_cuda_event_query(cudaEvent_t e, bool *done);

/* Device memory held by tensors is counted by vox_memory_live_bytes(VOX_CUDA); these report the pool behind it. */
size_t vox_cuda_memory_reserved_bytes(void); /* bytes the pool holds from the driver (cached included) */
/* Returns cached, unused pool memory to the driver (after synchronising the compute stream). */
vox_status vox_cuda_memory_empty_cache(void);

#endif
