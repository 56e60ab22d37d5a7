/* Host emulation of the compute-stream accessor for tests/integration/cuda_matmul_emulated.sh (one host "stream"). */
#pragma once
#include <cuda_runtime.h>
static inline cudaStream_t vox_cuda_compute_stream(void) { return 0; }
