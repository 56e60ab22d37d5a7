/* CUDA RMSNorm / LayerNorm over the last dim (optionally fused with the residual add before them), their backward
 * (row pass for dx, deterministic column partials for dw/db), and rotary position embedding. Statistics are
 * accumulated in double as the CPU kernels do. */
#include "common.cuh"

static int row_threads(int64_t d) { return d >= 2048 ? 512 : d >= 256 ? 256 : d >= 64 ? 64 : 32; }

/* Element j of the normalised input: x (+ x2, rounded to the storage dtype as a separate add would be). */
__device__ __forceinline__ float norm_input(const void *x, const void *x2, int dt, int64_t i) {
  float h = vox_cu_load(x, dt, i);
  if (x2) {
    h += vox_cu_load(x2, dt, i);
    if (dt == VOX_CU_BF16) h = vox_cu_bf16_to_f32(vox_cu_f32_to_bf16(h));
  }
  return h;
}

__global__ void rmsnorm_kernel(const void *x, const void *x2, int dt, const void *w, void *y, void *sum, float *rstd,
                               int64_t d, float eps) {
  __shared__ double sh[32];
  int64_t base = (int64_t)blockIdx.x * d;
  double ss = 0.0;
  for (int64_t j = threadIdx.x; j < d; j += blockDim.x) {
    float h = norm_input(x, x2, dt, base + j);
    if (sum) vox_cu_store(sum, dt, base + j, h);
    ss += (double)h * h;
  }
  ss = vox_cu_block_sum(ss, sh);
  double rs = 1.0 / sqrt(ss / (double)d + (double)eps);
  if (threadIdx.x == 0 && rstd) rstd[blockIdx.x] = (float)rs;
  for (int64_t j = threadIdx.x; j < d; j += blockDim.x) {
    double h = norm_input(x, x2, dt, base + j);
    double v = h * rs;
    if (w) v *= vox_cu_load(w, dt, j);
    vox_cu_store(y, dt, base + j, (float)v);
  }
}

extern "C" cudaError_t vox_cu_rmsnorm(cudaStream_t s, const void *x, const void *x2, int x_dtype, const void *w,
                                      void *y, void *sum, float *rstd, int64_t rows, int64_t d, float eps) {
  if (rows == 0) return cudaSuccess;
  rmsnorm_kernel<<<(unsigned)rows, row_threads(d), 0, s>>>(x, x2, x_dtype, w, y, sum, rstd, d, eps);
  return cudaGetLastError();
}

__global__ void layernorm_kernel(const void *x, const void *x2, int dt, const void *w, const void *b, void *y,
                                 void *sum, float *mean, float *rstd, int64_t d, float eps) {
  __shared__ double sh[32];
  int64_t base = (int64_t)blockIdx.x * d;
  double s = 0.0;
  for (int64_t j = threadIdx.x; j < d; j += blockDim.x) {
    float h = norm_input(x, x2, dt, base + j);
    if (sum) vox_cu_store(sum, dt, base + j, h);
    s += h;
  }
  double mu = vox_cu_block_sum(s, sh) / (double)d, v = 0.0;
  for (int64_t j = threadIdx.x; j < d; j += blockDim.x) {
    double c = (double)norm_input(x, x2, dt, base + j) - mu;
    v += c * c;
  }
  v = vox_cu_block_sum(v, sh);
  double rs = 1.0 / sqrt(v / (double)d + (double)eps);
  if (threadIdx.x == 0) {
    if (mean) mean[blockIdx.x] = (float)mu;
    if (rstd) rstd[blockIdx.x] = (float)rs;
  }
  for (int64_t j = threadIdx.x; j < d; j += blockDim.x) {
    double h = ((double)norm_input(x, x2, dt, base + j) - mu) * rs;
    if (w) h *= vox_cu_load(w, dt, j);
    if (b) h += vox_cu_load(b, dt, j);
    vox_cu_store(y, dt, base + j, (float)h);
  }
}

extern "C" cudaError_t vox_cu_layernorm(cudaStream_t s, const void *x, const void *x2, int x_dtype, const void *w,
                                        const void *b, void *y, void *sum, float *mean, float *rstd, int64_t rows,
                                        int64_t d, float eps) {
  if (rows == 0) return cudaSuccess;
  layernorm_kernel<<<(unsigned)rows, row_threads(d), 0, s>>>(x, x2, x_dtype, w, b, y, sum, mean, rstd, d, eps);
  return cudaGetLastError();
}

/* RMS: dx = r*g - x * r^3 * sum(g*x)/D; LN: dx = r * (g - mean(g) - xhat * mean(g*xhat)), g = dy*w, xhat recomputed
 * from the saved f32 mean exactly as the CPU kernel does. dsum is added (the residual path's gradient). */
__global__ void norm_dx_kernel(int dt, const void *x, const void *w, const float *mean, const float *rstd,
                               const void *dy, const void *dsum, void *dx, int64_t d) {
  __shared__ double sh[32];
  int64_t r = blockIdx.x, base = r * d;
  double rs = rstd[r], mu = mean ? (double)mean[r] : 0.0;
  double sg = 0.0, sgx = 0.0;
  for (int64_t j = threadIdx.x; j < d; j += blockDim.x) {
    double g = (double)vox_cu_load(dy, dt, base + j) * (w ? vox_cu_load(w, dt, j) : 1.0f);
    double xv = vox_cu_load(x, dt, base + j);
    if (mean) {
      sg += g;
      sgx += g * (xv - mu) * rs;
    } else {
      sgx += g * xv;
    }
  }
  sgx = vox_cu_block_sum(sgx, sh);
  if (mean) sg = vox_cu_block_sum(sg, sh);
  for (int64_t j = threadIdx.x; j < d; j += blockDim.x) {
    double g = (double)vox_cu_load(dy, dt, base + j) * (w ? vox_cu_load(w, dt, j) : 1.0f);
    double xv = vox_cu_load(x, dt, base + j), v;
    if (mean) v = rs * (g - sg / (double)d - (xv - mu) * rs * (sgx / (double)d));
    else v = rs * g - xv * (rs * rs * rs * sgx / (double)d);
    if (dsum) v += vox_cu_load(dsum, dt, base + j);
    vox_cu_store(dx, dt, base + j, (float)v);
  }
}

/* partials[c][0][j] = sum over rows of chunk c of dy*xhat (dw), partials[c][1][j] = sum of dy (db). Block (32, 8):
 * x along columns (coalesced), y over rows; a fixed shared-memory fold keeps the result deterministic. */
__global__ void norm_dwdb_partial_kernel(int dt, const void *x, const float *mean, const float *rstd, const void *dy,
                                         int64_t rows, int64_t d, double *part, int64_t chunks) {
  __shared__ double sw[8][33], sb[8][33];
  int64_t j = (int64_t)blockIdx.x * 32 + threadIdx.x, c = blockIdx.y;
  int64_t r0 = rows * c / chunks, r1 = rows * (c + 1) / chunks;
  double aw = 0.0, ab = 0.0;
  if (j < d)
    for (int64_t r = r0 + threadIdx.y; r < r1; r += 8) {
      double g = vox_cu_load(dy, dt, r * d + j), xv = vox_cu_load(x, dt, r * d + j);
      double xh = mean ? (xv - (double)mean[r]) * (double)rstd[r] : xv * (double)rstd[r];
      aw += g * xh;
      ab += g;
    }
  sw[threadIdx.y][threadIdx.x] = aw;
  sb[threadIdx.y][threadIdx.x] = ab;
  __syncthreads();
  if (threadIdx.y == 0 && j < d) {
    for (int k = 1; k < 8; k++) {
      aw += sw[k][threadIdx.x];
      ab += sb[k][threadIdx.x];
    }
    part[(c * 2) * d + j] = aw;
    part[(c * 2 + 1) * d + j] = ab;
  }
}

__global__ void norm_dwdb_finish_kernel(int dt, const double *part, int64_t chunks, int64_t d, void *dw, void *db) {
  VOX_CU_GRID_LOOP(j, d) {
    double aw = 0.0, ab = 0.0;
    for (int64_t c = 0; c < chunks; c++) {
      aw += part[(c * 2) * d + j];
      ab += part[(c * 2 + 1) * d + j];
    }
    if (dw) vox_cu_store(dw, dt, j, (float)aw);
    if (db) vox_cu_store(db, dt, j, (float)ab);
  }
}

extern "C" int64_t vox_cu_norm_backward_chunks(int64_t rows, int64_t d) {
  int64_t c = (rows + 127) / 128;
  if (c > 256) c = 256;
  return c < 1 ? 1 : c;
}

extern "C" cudaError_t vox_cu_norm_backward(cudaStream_t s, int dtype, const void *x, const void *w, const float *mean,
                                            const float *rstd, const void *dy, const void *dsum, void *dx, void *dw,
                                            void *db, int64_t rows, int64_t d, double *partials, int64_t chunks) {
  if (dx && rows > 0) {
    norm_dx_kernel<<<(unsigned)rows, row_threads(d), 0, s>>>(dtype, x, w, mean, rstd, dy, dsum, dx, d);
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) return e;
  }
  if (dw || db) {
    if (chunks > 65535) return cudaErrorInvalidValue;
    if (rows > 0) {
      dim3 grid((unsigned)((d + 31) / 32), (unsigned)chunks);
      norm_dwdb_partial_kernel<<<grid, dim3(32, 8), 0, s>>>(dtype, x, mean, rstd, dy, rows, d, partials, chunks);
      cudaError_t e = cudaGetLastError();
      if (e != cudaSuccess) return e;
    } else {
      cudaError_t e = cudaMemsetAsync(partials, 0, sizeof(double) * 2 * (size_t)d * (size_t)chunks, s);
      if (e != cudaSuccess) return e;
    }
    norm_dwdb_finish_kernel<<<vox_cu_blocks(d), VOX_CU_THREADS, 0, s>>>(dtype, partials, chunks, d, dw, db);
  }
  return cudaGetLastError();
}

/* y = rotate_half rotation of the first 2*half features of each row of x [B, H, T, D]; the rest are copied. Angles
 * are f32 products pos * inv_freq as in the CPU kernel, cos/sin evaluated in double and rounded. */
__global__ void rope_kernel(vox_cu_rope_args r, const void *x, const int32_t *pos, void *y, int dt) {
  int64_t per_row = r.D - r.half, n = r.B * r.H * r.T * per_row;
  VOX_CU_GRID_LOOP(e, n) {
    int64_t row = e / per_row, j = e - row * per_row;
    int64_t base = row * r.D;
    if (j >= r.half) {
      int64_t k = j + r.half;
      vox_cu_store(y, dt, base + k, vox_cu_load(x, dt, base + k));
      continue;
    }
    int64_t t = row % r.T, b = row / (r.H * r.T);
    float ang = __fmul_rn((float)pos[(r.pos_batched ? b * r.T : 0) + t], r.inv_freq[j]);
    double sd, cd;
    sincos((double)ang, &sd, &cd);
    float c = (float)cd, sn = r.sign * (float)sd;
    float x1 = vox_cu_load(x, dt, base + j), x2 = vox_cu_load(x, dt, base + j + r.half);
    vox_cu_store(y, dt, base + j, x1 * c - x2 * sn);
    vox_cu_store(y, dt, base + j + r.half, x2 * c + x1 * sn);
  }
}

extern "C" cudaError_t vox_cu_rope(cudaStream_t s, const vox_cu_rope_args *r, const void *x, const int32_t *pos, void *y,
                                   int dtype) {
  int64_t n = r->B * r->H * r->T * (r->D - r->half);
  if (n == 0) return cudaSuccess;
  rope_kernel<<<vox_cu_blocks(n), VOX_CU_THREADS, 0, s>>>(*r, x, pos, y, dtype);
  return cudaGetLastError();
}
