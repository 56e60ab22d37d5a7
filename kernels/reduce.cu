/* CUDA reductions: REDUCE (sum/mean/max/min/sumsq over any set of dims, any strides) in two deterministic passes
 * (fixed chunks of double partials, merged in order), and ARG_REDUCE (first extreme index, NaN counts as extreme). */
#include "common.cuh"

enum { R_SUM, R_MEAN, R_MAX, R_MIN, R_SUMSQ };

__device__ __forceinline__ double acc_init(int op) { return op == R_MAX ? -INFINITY : op == R_MIN ? INFINITY : 0.0; }
__device__ __forceinline__ double acc_merge(int op, double a, double v) {
  if (op == R_MAX) return (v > a || v != v) ? v : a;
  if (op == R_MIN) return (v < a || v != v) ? v : a;
  return a + v;
}
__device__ __forceinline__ double acc_add(int op, double a, float x) {
  double v = x;
  return op == R_SUMSQ ? a + v * v : acc_merge(op, a, v);
}

__device__ __forceinline__ int64_t red_offset(const vox_cu_reduce_plan &p, int64_t r) {
  if (p.nr == 1) return r * p.rxs[0];
  int64_t off = 0;
  for (int d = p.nr - 1; d >= 0; d--) {
    off += (r % p.rs[d]) * p.rxs[d];
    r /= p.rs[d];
  }
  return off;
}
__device__ __forceinline__ void kept_offsets(const vox_cu_reduce_plan &p, int64_t o, int64_t *xo, int64_t *oo) {
  *xo = *oo = 0;
  for (int d = p.nk - 1; d >= 0; d--) {
    int64_t i = o % p.ks[d];
    o /= p.ks[d];
    *xo += i * p.kxs[d];
    *oo += i * p.kos[d];
  }
}

/* Row mode: block (output o, chunk c) walks its share of the reduced elements with all threads (coalesced when
 * the innermost reduced dim is contiguous), then a fixed-shape tree in shared memory. */
__global__ void reduce_rows_kernel(vox_cu_reduce_plan p, int op, double *part, int64_t chunks) {
  __shared__ double sh[VOX_CU_THREADS];
  int64_t o = blockIdx.x, c = blockIdx.y, xo, oo;
  kept_offsets(p, o, &xo, &oo);
  int64_t r0 = p.n_red * c / chunks, r1 = p.n_red * (c + 1) / chunks;
  double acc = acc_init(op);
  for (int64_t r = r0 + threadIdx.x; r < r1; r += blockDim.x)
    acc = acc_add(op, acc, vox_cu_load(p.x, p.x_dtype, xo + red_offset(p, r)));
  sh[threadIdx.x] = acc;
  __syncthreads();
  for (int w = blockDim.x / 2; w > 0; w >>= 1) {
    if ((int)threadIdx.x < w) sh[threadIdx.x] = acc_merge(op, sh[threadIdx.x], sh[threadIdx.x + w]);
    __syncthreads();
  }
  if (threadIdx.x == 0) part[o * chunks + c] = sh[0];
}

/* Column mode: one thread per output (adjacent outputs adjacent in memory), grid.y splits the reduced range. */
__global__ void reduce_cols_kernel(vox_cu_reduce_plan p, int op, double *part, int64_t chunks) {
  int64_t o = (int64_t)blockIdx.x * blockDim.x + threadIdx.x, c = blockIdx.y;
  if (o >= p.n_out) return;
  int64_t xo, oo;
  kept_offsets(p, o, &xo, &oo);
  int64_t r0 = p.n_red * c / chunks, r1 = p.n_red * (c + 1) / chunks;
  double acc = acc_init(op);
  for (int64_t r = r0; r < r1; r++) acc = acc_add(op, acc, vox_cu_load(p.x, p.x_dtype, xo + red_offset(p, r)));
  part[o * chunks + c] = acc;
}

__global__ void reduce_finish_kernel(vox_cu_reduce_plan p, int op, const double *part, int64_t chunks) {
  VOX_CU_GRID_LOOP(o, p.n_out) {
    double acc = part[o * chunks];
    for (int64_t c = 1; c < chunks; c++) acc = acc_merge(op, acc, part[o * chunks + c]);
    if (op == R_MEAN) acc = p.n_red ? acc / (double)p.n_red : __longlong_as_double(0x7ff8000000000000LL);
    int64_t xo, oo;
    kept_offsets(p, o, &xo, &oo);
    if (p.out_dtype == VOX_CU_I32) ((int32_t *)p.out)[oo] = (int32_t)__double2ll_rn(acc);
    else vox_cu_store(p.out, p.out_dtype, oo, (float)acc);
  }
}

static bool row_mode(const vox_cu_reduce_plan *p) {
  if (p->nk == 0) return true;
  if (p->nr == 0) return false;
  return p->rxs[p->nr - 1] < p->kxs[p->nk - 1] && p->n_red > 32;
}

extern "C" int64_t vox_cu_reduce_chunks(const vox_cu_reduce_plan *p) {
  int64_t c;
  if (row_mode(p)) {
    c = p->n_out >= 512 ? 1 : p->n_red / 65536;
    if (c > 1024) c = 1024;
  } else {
    c = 131072 / (p->n_out ? p->n_out : 1);
    if (c > p->n_red / 64) c = p->n_red / 64;
    if (c > 1024) c = 1024;
  }
  return c < 1 ? 1 : c;
}

extern "C" cudaError_t vox_cu_reduce(cudaStream_t s, const vox_cu_reduce_plan *p, int op, double *partials,
                                     int64_t chunks) {
  if (p->n_out == 0) return cudaSuccess;
  if (row_mode(p)) {
    if (p->n_out > 2147483647LL || chunks > 65535) return cudaErrorInvalidValue;
    reduce_rows_kernel<<<dim3((unsigned)p->n_out, (unsigned)chunks), VOX_CU_THREADS, 0, s>>>(*p, op, partials,
                                                                                           chunks);
  } else {
    int64_t gx = (p->n_out + VOX_CU_THREADS - 1) / VOX_CU_THREADS;
    if (gx > 2147483647LL || chunks > 65535) return cudaErrorInvalidValue;
    reduce_cols_kernel<<<dim3((unsigned)gx, (unsigned)chunks), VOX_CU_THREADS, 0, s>>>(*p, op, partials, chunks);
  }
  cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess) return e;
  reduce_finish_kernel<<<vox_cu_blocks(p->n_out), VOX_CU_THREADS, 0, s>>>(*p, op, partials, chunks);
  return cudaGetLastError();
}

/* (v, i) beats (b, j): a NaN beats any number, then the more extreme value, then (ties) the smaller index. */
__device__ __forceinline__ bool arg_better(float v, int64_t i, float b, int64_t j, bool is_max) {
  bool vn = v != v, bn = b != b;
  if (vn || bn) return vn && (!bn || i < j);
  if (v == b) return i < j;
  return is_max ? v > b : v < b;
}

/* One warp per output: lanes scan interleaved elements, then a shuffle tournament. */
__global__ void arg_reduce_kernel(vox_cu_iter it, int64_t n, int64_t sd, bool is_max) {
  int lane = threadIdx.x & 31;
  int64_t warp = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) >> 5, nwarps = ((int64_t)gridDim.x * blockDim.x) >> 5;
  for (int64_t o = warp; o < it.numel; o += nwarps) {
    int64_t off[2];
    vox_cu_offsets<2>(it, o, off);
    float best = NAN;
    int64_t arg = INT64_MAX;
    for (int64_t k = lane; k < n; k += 32) {
      float v = vox_cu_load(it.data[1], it.dtype[1], off[1] + k * sd);
      if (arg == INT64_MAX || arg_better(v, k, best, arg, is_max)) {
        best = v;
        arg = k;
      }
    }
#pragma unroll
    for (int sh = 16; sh > 0; sh >>= 1) {
      float ov = __shfl_xor_sync(0xffffffffu, best, sh);
      int64_t oa = __shfl_xor_sync(0xffffffffu, arg, sh);
      if (oa != INT64_MAX && (arg == INT64_MAX || arg_better(ov, oa, best, arg, is_max))) {
        best = ov;
        arg = oa;
      }
    }
    if (lane == 0) ((int32_t *)it.data[0])[off[0]] = (int32_t)arg;
  }
}

extern "C" cudaError_t vox_cu_arg_reduce(cudaStream_t s, const vox_cu_iter *it, int64_t n, int64_t s_dim,
                                         bool is_max) {
  if (it->numel == 0) return cudaSuccess;
  arg_reduce_kernel<<<vox_cu_blocks(it->numel * 32), VOX_CU_THREADS, 0, s>>>(*it, n, s_dim, is_max);
  return cudaGetLastError();
}
