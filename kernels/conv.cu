/* CUDA 1-D convolution (stride, padding, dilation, groups), direct kernels without atomics: forward (one thread per
 * output), backward-data (one thread per input element, also conv_transpose1d's forward) and backward-weight (one
 * warp per weight element reducing over batch and length). f32 accumulation for f32 and bf16 operands. */
#include "common.cuh"

/* y[b, co, lo] = sum_{ci, k} w[co, ci, k] * x[b, g*cig + ci, lo*s - p + k*d] */
__global__ void conv1d_kernel(vox_cu_conv c, const void *x, const void *w, void *y) {
  int64_t n = c.B * c.Cout * c.Lout;
  VOX_CU_GRID_LOOP(e, n) {
    int64_t lo = e % c.Lout, t = e / c.Lout, co = t % c.Cout, b = t / c.Cout, g = co / c.cog;
    const int64_t xb = (b * c.Cin + g * c.cig) * c.L, wb = co * c.cig * c.K;
    float acc = 0.0f;
    for (int64_t ci = 0; ci < c.cig; ci++)
      for (int64_t k = 0; k < c.K; k++) {
        int64_t l = lo * c.stride - c.padding + k * c.dilation;
        if (l >= 0 && l < c.L)
          acc += vox_cu_load(w, c.dtype, wb + ci * c.K + k) * vox_cu_load(x, c.dtype, xb + ci * c.L + l);
      }
    vox_cu_store(y, c.dtype, e, acc);
  }
}

/* dx[b, ci, l] = sum over co in ci's group and taps k with l + p - k*d = lo*s, 0 <= lo < Lout of w * dy. */
__global__ void conv1d_backward_data_kernel(vox_cu_conv c, const void *dy, const void *w, void *dx) {
  int64_t n = c.B * c.Cin * c.L;
  VOX_CU_GRID_LOOP(e, n) {
    int64_t l = e % c.L, t = e / c.L, ci = t % c.Cin, b = t / c.Cin, g = ci / c.cig, cl = ci - g * c.cig;
    float acc = 0.0f;
    for (int64_t k = 0; k < c.K; k++) {
      int64_t q = l + c.padding - k * c.dilation;
      if (q < 0 || q % c.stride) continue;
      int64_t lo = q / c.stride;
      if (lo >= c.Lout) continue;
      for (int64_t oc = 0; oc < c.cog; oc++) {
        int64_t co = g * c.cog + oc;
        acc += vox_cu_load(w, c.dtype, (co * c.cig + cl) * c.K + k) *
               vox_cu_load(dy, c.dtype, (b * c.Cout + co) * c.Lout + lo);
      }
    }
    vox_cu_store(dx, c.dtype, e, acc);
  }
}

/* dw[co, ci, k] = sum_{b, lo} dy[b, co, lo] * x[b, g*cig + ci, lo*s - p + k*d]: a warp per weight element. */
__global__ void conv1d_backward_weight_kernel(vox_cu_conv c, const void *x, const void *dy, void *dw) {
  int lane = threadIdx.x & 31;
  int64_t nw = c.Cout * c.cig * c.K;
  int64_t warp = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) >> 5, step = ((int64_t)gridDim.x * blockDim.x) >> 5;
  for (int64_t e = warp; e < nw; e += step) {
    int64_t k = e % c.K, t = e / c.K, cl = t % c.cig, co = t / c.cig, g = co / c.cog;
    int64_t off = k * c.dilation - c.padding;
    float acc = 0.0f;
    for (int64_t m = lane; m < c.B * c.Lout; m += 32) {
      int64_t b = m / c.Lout, lo = m - b * c.Lout, l = lo * c.stride + off;
      if (l >= 0 && l < c.L)
        acc += vox_cu_load(dy, c.dtype, (b * c.Cout + co) * c.Lout + lo) *
               vox_cu_load(x, c.dtype, (b * c.Cin + g * c.cig + cl) * c.L + l);
    }
    acc = vox_cu_warp_sum(acc);
    if (lane == 0) vox_cu_store(dw, c.dtype, e, acc);
  }
}

extern "C" cudaError_t vox_cu_conv1d(cudaStream_t s, const vox_cu_conv *c, const void *x, const void *w, void *y) {
  int64_t n = c->B * c->Cout * c->Lout;
  if (n == 0) return cudaSuccess;
  conv1d_kernel<<<vox_cu_blocks(n), VOX_CU_THREADS, 0, s>>>(*c, x, w, y);
  return cudaGetLastError();
}

extern "C" cudaError_t vox_cu_conv1d_backward_data(cudaStream_t s, const vox_cu_conv *c, const void *dy,
                                                   const void *w, void *dx) {
  int64_t n = c->B * c->Cin * c->L;
  if (n == 0) return cudaSuccess;
  conv1d_backward_data_kernel<<<vox_cu_blocks(n), VOX_CU_THREADS, 0, s>>>(*c, dy, w, dx);
  return cudaGetLastError();
}

extern "C" cudaError_t vox_cu_conv1d_backward_weight(cudaStream_t s, const vox_cu_conv *c, const void *x,
                                                     const void *dy, void *dw) {
  int64_t nw = c->Cout * c->cig * c->K;
  if (nw == 0) return cudaSuccess;
  conv1d_backward_weight_kernel<<<vox_cu_blocks(nw * 32), VOX_CU_THREADS, 0, s>>>(*c, x, dy, dw);
  return cudaGetLastError();
}
