/* Side streams and events around the compute stream (see cuda_stream.h): thin, checked wrappers over the CUDA
 * runtime so that callers outside the backend get vox_status errors. */
#include "backend/cuda/cuda_stream.h"

#include <stddef.h>

static vox_status check(cudaError_t e, const char *what) {
  if (e == cudaSuccess) return VOX_OK;
  return vox_errorf(VOX_ERR_DEVICE, "cuda: %s: %s", what, cudaGetErrorString(e));
}

vox_status vox_cuda_stream_create(bool high_priority, cudaStream_t *out) {
  *out = NULL;
  int lo = 0, hi = 0;
  VOX_TRY(check(cudaDeviceGetStreamPriorityRange(&lo, &hi), "stream priority range"));
  return check(cudaStreamCreateWithPriority(out, cudaStreamNonBlocking, high_priority ? hi : lo), "create stream");
}

void vox_cuda_stream_destroy(cudaStream_t s) {
  if (s) cudaStreamDestroy(s);
}

vox_status vox_cuda_stream_sync(cudaStream_t s) { return check(cudaStreamSynchronize(s), "synchronize stream"); }

vox_status vox_cuda_event_create(cudaEvent_t *out) {
  *out = NULL;
  return check(cudaEventCreateWithFlags(out, cudaEventDisableTiming), "create event");
}

void vox_cuda_event_destroy(cudaEvent_t e) {
  if (e) cudaEventDestroy(e);
}

vox_status vox_cuda_event_record(cudaEvent_t e, cudaStream_t s) { return check(cudaEventRecord(e, s), "record event"); }

vox_status vox_cuda_stream_wait(cudaStream_t s, cudaEvent_t e) {
  return check(cudaStreamWaitEvent(s, e, 0), "stream wait on event");
}

vox_status vox_cuda_event_sync(cudaEvent_t e) { return check(cudaEventSynchronize(e), "synchronize event"); }

vox_status vox_cuda_event_query(cudaEvent_t e, bool *done) {
  cudaError_t r = cudaEventQuery(e);
  *done = r == cudaSuccess;
  if (r == cudaErrorNotReady) {
    (void)cudaGetLastError();
    return VOX_OK;
  }
  return check(r, "query event");
}
