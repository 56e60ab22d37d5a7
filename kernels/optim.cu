/* CUDA optimizer kernels: AdamW for one tensor or for many tensors in one launch (a block list mapping each block to
 * a tensor and a range), and SGD with momentum/nesterov. Square roots and divisions are IEEE-rounded even under
 * --use_fast_math, so master weights follow the CPU's arithmetic. */
#include "common.cuh"

__device__ __forceinline__ void adamw_one(float g, float &w, float &m, float &v, float b1, float b2, float eps,
                                          float gs, float decay, float step, float inv_sqrt_bc2) {
  float gi = g * gs;
  float mi = b1 * m + (1.0f - b1) * gi;
  float vi = b2 * v + (1.0f - b2) * gi * gi;
  m = mi;
  v = vi;
  w = w * decay - __fdiv_rn(step * mi, __fsqrt_rn(vi) * inv_sqrt_bc2 + eps);
}

__global__ void adamw_kernel(const float *g, float *w, float *m, float *v, int64_t n, vox_cu_adamw_args p) {
  VOX_CU_GRID_LOOP(i, n) {
    float wi = w[i], mi = m[i], vi = v[i];
    adamw_one(g[i], wi, mi, vi, p.b1, p.b2, p.eps, p.grad_scale, p.decay, p.step, p.inv_sqrt_bc2);
    w[i] = wi;
    m[i] = mi;
    v[i] = vi;
  }
}

extern "C" cudaError_t vox_cu_adamw(cudaStream_t s, const float *g, float *w, float *m, float *v, int64_t n,
                                    const vox_cu_adamw_args *p) {
  if (n == 0) return cudaSuccess;
  adamw_kernel<<<vox_cu_blocks(n), VOX_CU_THREADS, 0, s>>>(g, w, m, v, n, *p);
  return cudaGetLastError();
}

__global__ void adamw_multi_kernel(vox_cu_adamw_multi_args p) {
  for (int64_t blk = blockIdx.x; blk < p.n_blocks; blk += gridDim.x) {
    int lo = 0, hi = p.n_tensors - 1; /* last tensor whose first block is <= blk */
    while (lo < hi) {
      int mid = (lo + hi + 1) / 2;
      if (p.tensors[mid].first_block <= blk) lo = mid;
      else hi = mid - 1;
    }
    const vox_cu_adamw_tensor t = p.tensors[lo];
    int64_t start = (blk - t.first_block) * p.chunk, end = start + p.chunk < t.n ? start + p.chunk : t.n;
    for (int64_t i = start + threadIdx.x; i < end; i += blockDim.x) {
      float wi = t.w[i], mi = t.m[i], vi = t.v[i];
      adamw_one(t.g[i], wi, mi, vi, p.b1, p.b2, p.eps, p.grad_scale, t.decay, t.step, p.inv_sqrt_bc2);
      t.w[i] = wi;
      t.m[i] = mi;
      t.v[i] = vi;
    }
  }
}

extern "C" cudaError_t vox_cu_adamw_multi(cudaStream_t s, const vox_cu_adamw_multi_args *p) {
  if (p->n_blocks == 0) return cudaSuccess;
  unsigned grid = (unsigned)(p->n_blocks < 65536 ? p->n_blocks : 65536);
  adamw_multi_kernel<<<grid, VOX_CU_THREADS, 0, s>>>(*p);
  return cudaGetLastError();
}

/* PyTorch SGD: g += wd * p; buf = mu * buf + g; g = nesterov ? g + mu * buf : buf; p -= lr * g. */
__global__ void sgd_kernel(const float *g, float *w, float *buf, int64_t n, float lr, float mu, float wd, float gs,
                           bool nesterov) {
  VOX_CU_GRID_LOOP(i, n) {
    float gi = g[i] * gs + wd * w[i];
    if (buf) {
      float bi = mu * buf[i] + gi;
      buf[i] = bi;
      gi = nesterov ? gi + mu * bi : bi;
    }
    w[i] -= lr * gi;
  }
}

extern "C" cudaError_t vox_cu_sgd(cudaStream_t s, const float *g, float *w, float *buf, int64_t n, float lr, float mu,
                                  float wd, float gs, bool nesterov) {
  if (n == 0) return cudaSuccess;
  sgd_kernel<<<vox_cu_blocks(n), VOX_CU_THREADS, 0, s>>>(g, w, buf, n, lr, mu, wd, gs, nesterov);
  return cudaGetLastError();
}
