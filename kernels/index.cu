/* CUDA indexing kernels: id range checks, EMBEDDING (+ backward by atomic adds), GATHER, SCATTER_ADD (atomic adds,
 * torch semantics, any strides) and PAIRWISE_SQDIST (shared-memory tiles of sum_d (x - c)^2). */
#include <cuda_bf16.h>

#include "common.cuh"

__global__ void check_ids_kernel(vox_cu_view ids, int64_t n, int64_t limit, int64_t allowed,
                                 unsigned long long *bad) {
  VOX_CU_GRID_LOOP(i, n) {
    int64_t v = ((const int32_t *)ids.data)[vox_cu_flat_offset(ids, i)];
    if ((v < 0 || v >= limit) && v != allowed) atomicMin(bad, (unsigned long long)i);
  }
}

static int64_t numel_of(const vox_cu_view *v) {
  int64_t n = 1;
  for (int d = 0; d < v->ndim; d++) n *= v->shape[d];
  return n;
}

extern "C" cudaError_t vox_cu_check_ids(cudaStream_t s, const vox_cu_view *ids, int64_t limit, int64_t allowed,
                                        unsigned long long *bad) {
  int64_t n = numel_of(ids);
  if (n == 0) return cudaSuccess;
  check_ids_kernel<<<vox_cu_blocks(n), VOX_CU_THREADS, 0, s>>>(*ids, n, limit, allowed, bad);
  return cudaGetLastError();
}

/* out[i, d] = w[ids[i], d]: one thread per output element, consecutive threads along d. */
__global__ void embedding_kernel(vox_cu_view w, vox_cu_view ids, vox_cu_view out, int64_t n, int64_t D) {
  int64_t os = out.strides[out.ndim - 1];
  VOX_CU_GRID_LOOP(e, n * D) {
    int64_t i = e / D, d = e - i * D;
    int64_t row = ((const int32_t *)ids.data)[vox_cu_flat_offset(ids, i)];
    float v = vox_cu_load(w.data, w.dtype, row * w.strides[0] + d * w.strides[1]);
    vox_cu_store(out.data, out.dtype, vox_cu_row_offset(out, i) + d * os, v);
  }
}

extern "C" cudaError_t vox_cu_embedding(cudaStream_t s, const vox_cu_view *w, const vox_cu_view *ids,
                                        const vox_cu_view *out) {
  int64_t n = numel_of(ids), D = w->shape[1];
  if (n * D == 0) return cudaSuccess;
  embedding_kernel<<<vox_cu_blocks(n * D), VOX_CU_THREADS, 0, s>>>(*w, *ids, *out, n, D);
  return cudaGetLastError();
}

__device__ __forceinline__ void atomic_add_elem(void *base, int dtype, int64_t i, float v) {
  if (dtype == VOX_CU_F32) atomicAdd((float *)base + i, v);
  else atomicAdd((__nv_bfloat16 *)base + i, __float2bfloat16_rn(v));
}

/* dw[ids[i], d] += dy[i, d]; repeated ids meet in atomic adds (order, and so f32 rounding, is not fixed). */
__global__ void embedding_backward_kernel(vox_cu_view dy, vox_cu_view ids, vox_cu_view dw, int64_t n, int64_t D) {
  int64_t gs = dy.strides[dy.ndim - 1];
  VOX_CU_GRID_LOOP(e, n * D) {
    int64_t i = e / D, d = e - i * D;
    int64_t row = ((const int32_t *)ids.data)[vox_cu_flat_offset(ids, i)];
    float g = vox_cu_load(dy.data, dy.dtype, vox_cu_row_offset(dy, i) + d * gs);
    atomic_add_elem(dw.data, dw.dtype, row * dw.strides[0] + d * dw.strides[1], g);
  }
}

extern "C" cudaError_t vox_cu_embedding_backward(cudaStream_t s, const vox_cu_view *dy, const vox_cu_view *ids,
                                                 const vox_cu_view *dw) {
  int64_t n = numel_of(ids), D = dw->shape[1];
  if (n * D == 0) return cudaSuccess;
  embedding_backward_kernel<<<vox_cu_blocks(n * D), VOX_CU_THREADS, 0, s>>>(*dy, *ids, *dw, n, D);
  return cudaGetLastError();
}

/* Offsets of index element i in `index`, in `full` (all coordinates) and in `other` (all but `dim`). */
__device__ __forceinline__ void index_offsets(const vox_cu_view &index, const vox_cu_view &full,
                                              const vox_cu_view &other, int dim, int64_t i, int64_t *io,
                                              int64_t *fo, int64_t *oo) {
  *io = *fo = *oo = 0;
  for (int d = index.ndim - 1; d >= 0; d--) {
    int64_t c = i % index.shape[d];
    i /= index.shape[d];
    *io += c * index.strides[d];
    *fo += c * full.strides[d];
    if (d != dim) *oo += c * other.strides[d];
  }
}

/* out[i] = x[i with coordinate dim replaced by index[i]] (out has index's shape). */
__global__ void gather_kernel(vox_cu_view x, vox_cu_view index, vox_cu_view out, int dim, int64_t n) {
  VOX_CU_GRID_LOOP(i, n) {
    int64_t io, oo, xo;
    index_offsets(index, out, x, dim, i, &io, &oo, &xo);
    xo += (int64_t)((const int32_t *)index.data)[io] * x.strides[dim];
    vox_cu_store(out.data, out.dtype, oo, vox_cu_load(x.data, x.dtype, xo));
  }
}

extern "C" cudaError_t vox_cu_gather(cudaStream_t s, const vox_cu_view *x, const vox_cu_view *index,
                                     const vox_cu_view *out, int dim) {
  int64_t n = numel_of(index);
  if (n == 0) return cudaSuccess;
  gather_kernel<<<vox_cu_blocks(n), VOX_CU_THREADS, 0, s>>>(*x, *index, *out, dim, n);
  return cudaGetLastError();
}

/* out[i with coordinate dim replaced by index[i]] += src[i]. */
__global__ void scatter_add_kernel(vox_cu_view index, vox_cu_view src, vox_cu_view out, int dim, int64_t n) {
  VOX_CU_GRID_LOOP(i, n) {
    int64_t io, so, oo;
    index_offsets(index, src, out, dim, i, &io, &so, &oo);
    oo += (int64_t)((const int32_t *)index.data)[io] * out.strides[dim];
    atomic_add_elem(out.data, out.dtype, oo, vox_cu_load(src.data, src.dtype, so));
  }
}

extern "C" cudaError_t vox_cu_scatter_add(cudaStream_t s, const vox_cu_view *index, const vox_cu_view *src,
                                          const vox_cu_view *out, int dim) {
  int64_t n = numel_of(index);
  if (n == 0) return cudaSuccess;
  scatter_add_kernel<<<vox_cu_blocks(n), VOX_CU_THREADS, 0, s>>>(*index, *src, *out, dim, n);
  return cudaGetLastError();
}

/* out[n, k] = sum_d (x[n, d] - c[k, d])^2: a 16x16 output tile per block, 16-wide slices of D through shared
 * memory. Exact differences never go below zero, so no clamp is needed. */
#define SQ_TILE 16
__global__ void pairwise_sqdist_kernel(vox_cu_view x, vox_cu_view c, vox_cu_view out, int64_t N, int64_t K,
                                       int64_t D) {
  __shared__ float xs[SQ_TILE][SQ_TILE + 1], cs[SQ_TILE][SQ_TILE + 1];
  int tx = threadIdx.x, ty = threadIdx.y;
  int64_t n = (int64_t)blockIdx.x * SQ_TILE + ty, k = (int64_t)blockIdx.y * SQ_TILE + tx;
  float acc = 0.0f;
  for (int64_t d0 = 0; d0 < D; d0 += SQ_TILE) {
    /* xs[row][feat]: thread (ty, tx) loads x[block rows + ty][d0 + tx] and c[block cols + ty][d0 + tx]. */
    int64_t xr = (int64_t)blockIdx.x * SQ_TILE + ty, cr = (int64_t)blockIdx.y * SQ_TILE + ty, d = d0 + tx;
    xs[ty][tx] = xr < N && d < D ? vox_cu_load(x.data, x.dtype, xr * x.strides[0] + d * x.strides[1]) : 0.0f;
    cs[ty][tx] = cr < K && d < D ? vox_cu_load(c.data, c.dtype, cr * c.strides[0] + d * c.strides[1]) : 0.0f;
    __syncthreads();
#pragma unroll
    for (int j = 0; j < SQ_TILE; j++) {
      float diff = xs[ty][j] - cs[tx][j];
      acc += diff * diff;
    }
    __syncthreads();
  }
  if (n < N && k < K) vox_cu_store(out.data, out.dtype, n * out.strides[0] + k * out.strides[1], acc);
}

extern "C" cudaError_t vox_cu_pairwise_sqdist(cudaStream_t s, const vox_cu_view *x, const vox_cu_view *c,
                                              const vox_cu_view *out) {
  int64_t N = x->shape[0], K = c->shape[0], D = x->shape[1];
  if (N == 0 || K == 0) return cudaSuccess;
  if ((K + SQ_TILE - 1) / SQ_TILE > 65535) return cudaErrorInvalidValue;
  dim3 grid((unsigned)((N + SQ_TILE - 1) / SQ_TILE), (unsigned)((K + SQ_TILE - 1) / SQ_TILE));
  pairwise_sqdist_kernel<<<grid, dim3(SQ_TILE, SQ_TILE), 0, s>>>(*x, *c, *out, N, K, D);
  return cudaGetLastError();
}
