/* Host emulation of the CUDA runtime pieces the attention kernels use (thread/block indices, __syncthreads,
 * warp shuffles, atomics) so that tests/integration/cuda_attention_emulated.sh can run the kernel source on a CPU. */
#pragma once
#include <cstdint>
#include <cmath>
#include <cstring>
#include <algorithm>
#include <barrier>
#include <thread>
#include <vector>
#include <mutex>
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(x)
#define __align__(x) alignas(x)
struct dim3e { unsigned x = 0, y = 0, z = 0; };
extern thread_local dim3e threadIdx, blockIdx;
extern dim3e blockDim;
extern std::barrier<> *emu_block_bar;
extern std::barrier<> *emu_warp_bar[8];
extern unsigned char *emu_smem_ptr;
typedef int cudaError_t;
typedef void *cudaStream_t;
#define cudaSuccess 0
struct uint4 { unsigned x, y, z, w; };
inline uint4 make_uint4(unsigned a, unsigned b, unsigned c, unsigned d) { return {a, b, c, d}; }
inline void __syncthreads() { emu_block_bar->arrive_and_wait(); }
// warp exchange
extern uint64_t emu_xchg[8][32];
template <typename T> inline T emu_shfl(T v, int src) {
  int w = threadIdx.x / 32, l = threadIdx.x % 32;
  uint64_t bits = 0; memcpy(&bits, &v, sizeof v);
  emu_xchg[w][l] = bits;
  emu_warp_bar[w]->arrive_and_wait();
  uint64_t r = emu_xchg[w][src];
  emu_warp_bar[w]->arrive_and_wait();
  T out; memcpy(&out, &r, sizeof out); return out;
}
inline float __shfl_xor_sync(unsigned, float v, int o) { return emu_shfl(v, (int)(threadIdx.x % 32) ^ o); }
inline float __shfl_sync(unsigned, float v, int s) { return emu_shfl(v, s); }
inline bool __all_sync(unsigned, bool p) {
  int w = threadIdx.x / 32; bool all = true;
  emu_xchg[w][threadIdx.x % 32] = p;
  emu_warp_bar[w]->arrive_and_wait();
  for (int i = 0; i < 32; i++) all = all && emu_xchg[w][i];
  emu_warp_bar[w]->arrive_and_wait();
  return all;
}
inline float atomicAdd(float *p, float v) {
  static std::mutex m; std::lock_guard<std::mutex> g(m); float o = *p; *p = o + v; return o;
}
using std::min; using std::max;
