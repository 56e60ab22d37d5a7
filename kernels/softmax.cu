/* CUDA softmax / log-softmax (+ backward) over the last dim and the fused cross-entropy (+ backward). A row is
 * handled by one warp (short rows) or one block (long rows) with an online max/sum, so a vocabulary-sized row is
 * read twice and never copied; cross-entropy keeps only the per-row log-sum-exp for its backward. */
#include "common.cuh"

#define BIG_ROW_THREADS 512
#define WARP_ROW_MAX 1024 /* rows up to this length go one per warp */

/* Online softmax state: running max m and sum s of exp(x - m). */
struct ms {
  float m, s;
};
__device__ __forceinline__ ms ms_add(ms a, float x) {
  if (x > a.m) {
    a.s = (a.m == -INFINITY ? 0.0f : a.s * __expf(a.m - x)) + 1.0f;
    a.m = x;
  } else if (x != -INFINITY || a.m != -INFINITY) {
    a.s += __expf(x - a.m);
  }
  return a;
}
__device__ __forceinline__ ms ms_merge(ms a, ms b) {
  if (b.m == -INFINITY) return a;
  if (a.m == -INFINITY) return b;
  float m = fmaxf(a.m, b.m);
  return {m, a.s * __expf(a.m - m) + b.s * __expf(b.m - m)};
}

/* Combines over the row's group: a warp (WARP) or the whole block. */
template <bool WARP>
__device__ __forceinline__ ms group_ms(ms v, float *sh) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    ms w = {__shfl_xor_sync(0xffffffffu, v.m, o), __shfl_xor_sync(0xffffffffu, v.s, o)};
    v = ms_merge(v, w);
  }
  if (WARP) return v;
  int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
  __syncthreads();
  if (lane == 0) {
    sh[2 * warp] = v.m;
    sh[2 * warp + 1] = v.s;
  }
  __syncthreads();
  ms r = lane < nw ? ms{sh[2 * lane], sh[2 * lane + 1]} : ms{-INFINITY, 0.0f};
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    ms w = {__shfl_xor_sync(0xffffffffu, r.m, o), __shfl_xor_sync(0xffffffffu, r.s, o)};
    r = ms_merge(r, w);
  }
  return r;
}
template <bool WARP, typename T>
__device__ __forceinline__ T group_sum(T v, T *sh) {
  v = vox_cu_warp_sum(v);
  if (WARP) return v;
  int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
  __syncthreads();
  if (lane == 0) sh[warp] = v;
  __syncthreads();
  T r = lane < nw ? sh[lane] : (T)0;
  return vox_cu_warp_sum(r);
}

/* Row index and lane of this thread's group, and the group's width. */
template <bool WARP>
__device__ __forceinline__ void group_of(int64_t *row, int *lane, int *width) {
  if (WARP) {
    *row = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
    *lane = threadIdx.x & 31;
    *width = 32;
  } else {
    *row = blockIdx.x;
    *lane = threadIdx.x;
    *width = blockDim.x;
  }
}

template <bool WARP>
__global__ void softmax_kernel(vox_cu_view x, vox_cu_view y, int64_t rows, int64_t V, bool log_mode) {
  __shared__ float sh[64];
  int64_t r;
  int lane, width;
  group_of<WARP>(&r, &lane, &width);
  if (r >= rows) return; /* whole warps (WARP) or whole blocks leave together */
  int64_t xo = vox_cu_row_offset(x, r), yo = vox_cu_row_offset(y, r);
  int64_t xs = x.strides[x.ndim - 1], ys = y.strides[y.ndim - 1];
  ms acc = {-INFINITY, 0.0f};
  for (int64_t v = lane; v < V; v += width) acc = ms_add(acc, vox_cu_load(x.data, x.dtype, xo + v * xs));
  acc = group_ms<WARP>(acc, sh);
  float lse = acc.m + logf(acc.s), inv = 1.0f / acc.s;
  for (int64_t v = lane; v < V; v += width) {
    float xv = vox_cu_load(x.data, x.dtype, xo + v * xs);
    vox_cu_store(y.data, y.dtype, yo + v * ys, log_mode ? xv - lse : __expf(xv - acc.m) * inv);
  }
}

template <bool WARP>
__global__ void softmax_backward_kernel(vox_cu_view y, vox_cu_view dy, vox_cu_view dx, int64_t rows, int64_t V,
                                        bool log_mode) {
  __shared__ float sh[32];
  int64_t r;
  int lane, width;
  group_of<WARP>(&r, &lane, &width);
  if (r >= rows) return;
  int64_t yo = vox_cu_row_offset(y, r), go = vox_cu_row_offset(dy, r), dO = vox_cu_row_offset(dx, r);
  int64_t ys = y.strides[y.ndim - 1], gs = dy.strides[dy.ndim - 1], ds = dx.strides[dx.ndim - 1];
  float acc = 0.0f;
  for (int64_t v = lane; v < V; v += width) {
    float g = vox_cu_load(dy.data, dy.dtype, go + v * gs);
    acc += log_mode ? g : g * vox_cu_load(y.data, y.dtype, yo + v * ys);
  }
  float s = group_sum<WARP>(acc, sh);
  for (int64_t v = lane; v < V; v += width) {
    float g = vox_cu_load(dy.data, dy.dtype, go + v * gs), yv = vox_cu_load(y.data, y.dtype, yo + v * ys);
    vox_cu_store(dx.data, dx.dtype, dO + v * ds, log_mode ? g - __expf(yv) * s : yv * (g - s));
  }
}

static int64_t rows_of(const vox_cu_view *v, int64_t *V) {
  *V = v->shape[v->ndim - 1];
  int64_t n = 1;
  for (int d = 0; d < v->ndim - 1; d++) n *= v->shape[d];
  return *V ? n : 0;
}

extern "C" cudaError_t vox_cu_softmax(cudaStream_t s, const vox_cu_view *x, const vox_cu_view *y, bool log_mode) {
  int64_t V, rows = rows_of(x, &V);
  if (rows == 0) return cudaSuccess;
  if (V <= WARP_ROW_MAX)
    softmax_kernel<true><<<(unsigned)((rows * 32 + 255) / 256), 256, 0, s>>>(*x, *y, rows, V, log_mode);
  else
    softmax_kernel<false><<<(unsigned)rows, BIG_ROW_THREADS, 0, s>>>(*x, *y, rows, V, log_mode);
  return cudaGetLastError();
}

extern "C" cudaError_t vox_cu_softmax_backward(cudaStream_t s, const vox_cu_view *y, const vox_cu_view *dy,
                                               const vox_cu_view *dx, bool log_mode) {
  int64_t V, rows = rows_of(y, &V);
  if (rows == 0) return cudaSuccess;
  if (V <= WARP_ROW_MAX)
    softmax_backward_kernel<true><<<(unsigned)((rows * 32 + 255) / 256), 256, 0, s>>>(*y, *dy, *dx, rows, V,
                                                                                     log_mode);
  else
    softmax_backward_kernel<false><<<(unsigned)rows, BIG_ROW_THREADS, 0, s>>>(*y, *dy, *dx, rows, V, log_mode);
  return cudaGetLastError();
}

/* loss = (1-eps) * (lse - x_c) + eps * (lse - mean_v x_v); ignored rows get loss 0 (lse is still written). */
template <bool WARP>
__global__ void cross_entropy_kernel(vox_cu_view x, vox_cu_view t, vox_cu_view loss, vox_cu_view lse_out, int64_t N,
                                     int64_t V, int32_t ignore_index, float eps) {
  __shared__ float sh[64];
  __shared__ double shd[32];
  int64_t r;
  int lane, width;
  group_of<WARP>(&r, &lane, &width);
  if (r >= N) return;
  int64_t o = r * x.strides[0], xc = x.strides[1];
  ms acc = {-INFINITY, 0.0f};
  double sum_x = 0.0;
  for (int64_t v = lane; v < V; v += width) {
    float xv = vox_cu_load(x.data, x.dtype, o + v * xc);
    acc = ms_add(acc, xv);
    sum_x += xv;
  }
  acc = group_ms<WARP>(acc, sh);
  sum_x = group_sum<WARP>(sum_x, shd);
  if (lane != 0) return;
  double lse = (double)acc.m + log((double)acc.s);
  ((float *)lse_out.data)[r * lse_out.strides[0]] = (float)lse;
  int32_t c = ((const int32_t *)t.data)[r * t.strides[0]];
  float *lp = (float *)loss.data + r * loss.strides[0];
  if (c == ignore_index) {
    *lp = 0.0f;
    return;
  }
  double x_c = vox_cu_load(x.data, x.dtype, o + (int64_t)c * xc);
  *lp = (float)((1.0 - eps) * (lse - x_c) + eps * (lse - sum_x / (double)V));
}

extern "C" cudaError_t vox_cu_cross_entropy(cudaStream_t s, const vox_cu_view *x, const vox_cu_view *target,
                                            const vox_cu_view *loss, const vox_cu_view *lse, int32_t ignore_index,
                                            float eps) {
  int64_t N = x->shape[0], V = x->shape[1];
  if (N == 0) return cudaSuccess;
  if (V <= WARP_ROW_MAX)
    cross_entropy_kernel<true><<<(unsigned)((N * 32 + 255) / 256), 256, 0, s>>>(*x, *target, *loss, *lse, N, V,
                                                                               ignore_index, eps);
  else
    cross_entropy_kernel<false><<<(unsigned)N, BIG_ROW_THREADS, 0, s>>>(*x, *target, *loss, *lse, N, V,
                                                                       ignore_index, eps);
  return cudaGetLastError();
}

/* dlogits[r, v] = dloss[r] * (exp(x - lse) - eps/V - (v == c) (1 - eps)); ignored rows get 0. One block per row. */
__global__ void cross_entropy_backward_kernel(vox_cu_view x, vox_cu_view t, vox_cu_view lse, vox_cu_view dloss,
                                              vox_cu_view dx, int64_t V, int32_t ignore_index, float eps) {
  int64_t r = blockIdx.x;
  int32_t c = ((const int32_t *)t.data)[r * t.strides[0]];
  float g = c == ignore_index ? 0.0f : vox_cu_load(dloss.data, dloss.dtype, r * dloss.strides[0]);
  float l = vox_cu_load(lse.data, lse.dtype, r * lse.strides[0]);
  float uniform = eps / (float)(V ? V : 1);
  int64_t xo = r * x.strides[0], xc = x.strides[1], dO = r * dx.strides[0], dc = dx.strides[1];
  for (int64_t v = threadIdx.x; v < V; v += blockDim.x) {
    float val = 0.0f;
    if (g != 0.0f) {
      float pv = __expf(vox_cu_load(x.data, x.dtype, xo + v * xc) - l);
      val = g * (pv - uniform - (v == c ? 1.0f - eps : 0.0f));
    }
    vox_cu_store(dx.data, dx.dtype, dO + v * dc, val);
  }
}

extern "C" cudaError_t vox_cu_cross_entropy_backward(cudaStream_t s, const vox_cu_view *x, const vox_cu_view *target,
                                                     const vox_cu_view *lse, const vox_cu_view *dloss,
                                                     const vox_cu_view *dx, int32_t ignore_index, float eps) {
  int64_t N = x->shape[0], V = x->shape[1];
  if (N == 0) return cudaSuccess;
  int threads = V >= 4096 ? 512 : V >= 512 ? 256 : 64;
  cross_entropy_backward_kernel<<<(unsigned)N, threads, 0, s>>>(*x, *target, *lse, *dloss, *dx, V, ignore_index,
                                                                eps);
  return cudaGetLastError();
}
