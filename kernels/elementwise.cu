/* CUDA elementwise kernels: BINARY, UNARY, UNARY_BACKWARD, WHERE, DROPOUT, SWIGLU(+BACKWARD), one thread per
 * element over a strided iterator. The formulas are those of backend/cpu/cpu_elementwise.c, case by case. */
#include "common.cuh"

/* Op numbers as vox_binary_op / vox_unary_op in core/kernel_params.h. */
enum { B_ADD, B_SUB, B_MUL, B_DIV, B_MAX, B_MIN, B_POW, B_EQ, B_NE, B_LT, B_LE, B_GT, B_GE };
enum {
  U_NEG, U_EXP, U_LOG, U_SQRT, U_RSQRT, U_ABS, U_SIGN, U_TANH, U_SIGMOID, U_RELU, U_GELU_ERF, U_GELU_TANH, U_SILU,
  U_SQUARE, U_RECIP, U_SIN, U_COS, U_AFFINE, U_POW_SCALAR, U_CLAMP
};

#define SQRT_2_OVER_PI 0.7978845608028654f
#define INV_SQRT_2 0.7071067811865476f
#define INV_SQRT_2PI 0.3989422804014327f

__device__ __forceinline__ float sigmoidf_(float x) { return 1.0f / (1.0f + expf(-x)); }

__device__ __forceinline__ float binary_f32(int op, float x, float y) {
  switch (op) {
    case B_ADD: return x + y;
    case B_SUB: return x - y;
    case B_MUL: return x * y;
    case B_DIV: return x / y;
    case B_MAX: return (x > y || x != x) ? x : y;
    case B_MIN: return (x < y || x != x) ? x : y;
    case B_POW: return powf(x, y);
    case B_EQ: return x == y ? 1.0f : 0.0f;
    case B_NE: return x != y ? 1.0f : 0.0f;
    case B_LT: return x < y ? 1.0f : 0.0f;
    case B_LE: return x <= y ? 1.0f : 0.0f;
    case B_GT: return x > y ? 1.0f : 0.0f;
    default: return x >= y ? 1.0f : 0.0f;
  }
}

__device__ __forceinline__ int32_t binary_i32(int op, int32_t x, int32_t y) {
  switch (op) {
    case B_ADD: return (int32_t)((int64_t)x + y);
    case B_SUB: return (int32_t)((int64_t)x - y);
    case B_MUL: return (int32_t)((int64_t)x * y);
    case B_DIV: return y == 0 ? 0 : (int32_t)((int64_t)x / y);
    case B_MAX: return x > y ? x : y;
    case B_MIN: return x < y ? x : y;
    case B_POW: return (int32_t)pow((double)x, (double)y);
    case B_EQ: return x == y;
    case B_NE: return x != y;
    case B_LT: return x < y;
    case B_LE: return x <= y;
    case B_GT: return x > y;
    default: return x >= y;
  }
}

__global__ void binary_kernel(vox_cu_iter it, int op) {
  bool int_path = it.dtype[1] == VOX_CU_I32 && it.dtype[2] == VOX_CU_I32;
  VOX_CU_GRID_LOOP(i, it.numel) {
    int64_t off[3];
    vox_cu_offsets<3>(it, i, off);
    if (int_path) {
      int32_t r = binary_i32(op, ((const int32_t *)it.data[1])[off[1]], ((const int32_t *)it.data[2])[off[2]]);
      if (it.dtype[0] == VOX_CU_I32) ((int32_t *)it.data[0])[off[0]] = r;
      else vox_cu_store(it.data[0], it.dtype[0], off[0], (float)r);
    } else {
      float x = vox_cu_load(it.data[1], it.dtype[1], off[1]), y = vox_cu_load(it.data[2], it.dtype[2], off[2]);
      vox_cu_store(it.data[0], it.dtype[0], off[0], binary_f32(op, x, y));
    }
  }
}

extern "C" cudaError_t vox_cu_binary(cudaStream_t s, const vox_cu_iter *it, int op) {
  if (it->numel == 0) return cudaSuccess;
  binary_kernel<<<vox_cu_blocks(it->numel), VOX_CU_THREADS, 0, s>>>(*it, op);
  return cudaGetLastError();
}

__device__ __forceinline__ float unary_f32(int op, float x, float alpha, float beta, bool a2) {
  switch (op) {
    case U_NEG: return -x;
    case U_EXP: return expf(x);
    case U_LOG: return logf(x);
    case U_SQRT: return sqrtf(x);
    case U_RSQRT: return 1.0f / sqrtf(x);
    case U_ABS: return fabsf(x);
    case U_SIGN: return (float)((x > 0) - (x < 0));
    case U_TANH: return tanhf(x);
    case U_SIGMOID: return sigmoidf_(x);
    case U_RELU: return x > 0 ? x : 0.0f;
    case U_GELU_ERF: return 0.5f * x * (1.0f + erff(x * INV_SQRT_2));
    case U_GELU_TANH: return 0.5f * x * (1.0f + tanhf(SQRT_2_OVER_PI * (x + 0.044715f * x * x * x)));
    case U_SILU: return x * sigmoidf_(x);
    case U_SQUARE: return x * x;
    case U_RECIP: return 1.0f / x;
    case U_SIN: return sinf(x);
    case U_COS: return cosf(x);
    case U_AFFINE: return alpha * x + beta;
    case U_POW_SCALAR: return a2 ? x * x : powf(x, alpha);
    default: {
      float v = x < alpha ? alpha : x;
      return v > beta ? beta : v;
    }
  }
}

__device__ __forceinline__ float unary_backward_f32(int op, float x, float dy, float alpha, float beta, bool a2,
                                                    bool a0) {
  switch (op) {
    case U_NEG: return -dy;
    case U_EXP: return expf(x) * dy;
    case U_LOG: return dy / x;
    case U_SQRT: return 0.5f * dy / sqrtf(x);
    case U_RSQRT: {
      float r = 1.0f / sqrtf(x);
      return -0.5f * r * r * r * dy;
    }
    case U_ABS: return (float)((x > 0) - (x < 0)) * dy;
    case U_SIGN: return 0.0f;
    case U_TANH: {
      float t = tanhf(x);
      return (1.0f - t * t) * dy;
    }
    case U_SIGMOID: {
      float s = sigmoidf_(x);
      return s * (1.0f - s) * dy;
    }
    case U_RELU: return x > 0 ? dy : 0.0f;
    case U_GELU_ERF: {
      float cdf = 0.5f * (1.0f + erff(x * INV_SQRT_2)), pdf = INV_SQRT_2PI * expf(-0.5f * x * x);
      return (cdf + x * pdf) * dy;
    }
    case U_GELU_TANH: {
      float u = SQRT_2_OVER_PI * (x + 0.044715f * x * x * x), t = tanhf(u);
      float du = SQRT_2_OVER_PI * (1.0f + 3.0f * 0.044715f * x * x);
      return (0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * du) * dy;
    }
    case U_SILU: {
      float s = sigmoidf_(x);
      return s * (1.0f + x * (1.0f - s)) * dy;
    }
    case U_SQUARE: return 2.0f * x * dy;
    case U_RECIP: return -dy / (x * x);
    case U_SIN: return cosf(x) * dy;
    case U_COS: return -sinf(x) * dy;
    case U_AFFINE: return alpha * dy;
    case U_POW_SCALAR: return a2 ? 2.0f * x * dy : a0 ? 0.0f : alpha * powf(x, alpha - 1.0f) * dy;
    default: return x >= alpha && x <= beta ? dy : 0.0f;
  }
}

__global__ void unary_kernel(vox_cu_iter it, int op, float alpha, float beta, bool a2) {
  VOX_CU_GRID_LOOP(i, it.numel) {
    int64_t off[2];
    vox_cu_offsets<2>(it, i, off);
    float x = vox_cu_load(it.data[1], it.dtype[1], off[1]);
    vox_cu_store(it.data[0], it.dtype[0], off[0], unary_f32(op, x, alpha, beta, a2));
  }
}

__global__ void unary_backward_kernel(vox_cu_iter it, int op, float alpha, float beta, bool a2, bool a0) {
  VOX_CU_GRID_LOOP(i, it.numel) {
    int64_t off[3];
    vox_cu_offsets<3>(it, i, off);
    float x = vox_cu_load(it.data[1], it.dtype[1], off[1]), dy = vox_cu_load(it.data[2], it.dtype[2], off[2]);
    vox_cu_store(it.data[0], it.dtype[0], off[0], unary_backward_f32(op, x, dy, alpha, beta, a2, a0));
  }
}

extern "C" cudaError_t vox_cu_unary(cudaStream_t s, const vox_cu_iter *it, int op, float alpha, float beta,
                                    bool alpha_is_2, bool alpha_is_0) {
  if (it->numel == 0) return cudaSuccess;
  unary_kernel<<<vox_cu_blocks(it->numel), VOX_CU_THREADS, 0, s>>>(*it, op, alpha, beta, alpha_is_2);
  return cudaGetLastError();
}

extern "C" cudaError_t vox_cu_unary_backward(cudaStream_t s, const vox_cu_iter *it, int op, float alpha, float beta,
                                             bool alpha_is_2, bool alpha_is_0) {
  if (it->numel == 0) return cudaSuccess;
  unary_backward_kernel<<<vox_cu_blocks(it->numel), VOX_CU_THREADS, 0, s>>>(*it, op, alpha, beta, alpha_is_2,
                                                                          alpha_is_0);
  return cudaGetLastError();
}

__global__ void where_kernel(vox_cu_iter it) {
  bool int_path = it.dtype[0] == VOX_CU_I32 && it.dtype[2] == VOX_CU_I32 && it.dtype[3] == VOX_CU_I32;
  VOX_CU_GRID_LOOP(i, it.numel) {
    int64_t off[4];
    vox_cu_offsets<4>(it, i, off);
    bool c = vox_cu_load(it.data[1], it.dtype[1], off[1]) != 0.0f; /* NaN is true */
    if (int_path) {
      ((int32_t *)it.data[0])[off[0]] = c ? ((const int32_t *)it.data[2])[off[2]] : ((const int32_t *)it.data[3])[off[3]];
    } else {
      float v = c ? vox_cu_load(it.data[2], it.dtype[2], off[2]) : vox_cu_load(it.data[3], it.dtype[3], off[3]);
      vox_cu_store(it.data[0], it.dtype[0], off[0], v);
    }
  }
}

extern "C" cudaError_t vox_cu_where(cudaStream_t s, const vox_cu_iter *it) {
  if (it->numel == 0) return cudaSuccess;
  where_kernel<<<vox_cu_blocks(it->numel), VOX_CU_THREADS, 0, s>>>(*it);
  return cudaGetLastError();
}

/* The output is contiguous, so its flat index i is the RNG index, exactly as in the CPU kernel. */
__global__ void dropout_kernel(vox_cu_iter it, uint64_t seed, uint64_t base, float p, float scale) {
  VOX_CU_GRID_LOOP(i, it.numel) {
    int64_t off[2];
    vox_cu_offsets<2>(it, i, off);
    bool keep = vox_cu_uniform_at(seed, base + (uint64_t)i) >= p;
    float x = vox_cu_load(it.data[1], it.dtype[1], off[1]);
    vox_cu_store(it.data[0], it.dtype[0], off[0], keep ? __fmul_rn(x, scale) : 0.0f);
  }
}

extern "C" cudaError_t vox_cu_dropout(cudaStream_t s, const vox_cu_iter *it, uint64_t seed, uint64_t offset,
                                      float p, float scale) {
  if (it->numel == 0) return cudaSuccess;
  dropout_kernel<<<vox_cu_blocks(it->numel), VOX_CU_THREADS, 0, s>>>(*it, seed, offset, p, scale);
  return cudaGetLastError();
}

__global__ void swiglu_kernel(vox_cu_iter it) {
  VOX_CU_GRID_LOOP(i, it.numel) {
    int64_t off[3];
    vox_cu_offsets<3>(it, i, off);
    float g = vox_cu_load(it.data[1], it.dtype[1], off[1]), u = vox_cu_load(it.data[2], it.dtype[2], off[2]);
    vox_cu_store(it.data[0], it.dtype[0], off[0], g * sigmoidf_(g) * u);
  }
}

extern "C" cudaError_t vox_cu_swiglu(cudaStream_t s, const vox_cu_iter *it) {
  if (it->numel == 0) return cudaSuccess;
  swiglu_kernel<<<vox_cu_blocks(it->numel), VOX_CU_THREADS, 0, s>>>(*it);
  return cudaGetLastError();
}

__global__ void swiglu_backward_kernel(vox_cu_iter it, void *dup, int dup_dtype) {
  VOX_CU_GRID_LOOP(i, it.numel) {
    int64_t off[4];
    vox_cu_offsets<4>(it, i, off);
    float g = vox_cu_load(it.data[1], it.dtype[1], off[1]), u = vox_cu_load(it.data[2], it.dtype[2], off[2]);
    float d = vox_cu_load(it.data[3], it.dtype[3], off[3]);
    float sg = sigmoidf_(g), silu = g * sg, dsilu = sg * (1.0f + g * (1.0f - sg));
    vox_cu_store(it.data[0], it.dtype[0], off[0], d * u * dsilu);
    vox_cu_store(dup, dup_dtype, off[0], d * silu);
  }
}

extern "C" cudaError_t vox_cu_swiglu_backward(cudaStream_t s, const vox_cu_iter *it, void *dup, int dup_dtype) {
  if (it->numel == 0) return cudaSuccess;
  swiglu_backward_kernel<<<vox_cu_blocks(it->numel), VOX_CU_THREADS, 0, s>>>(*it, dup, dup_dtype);
  return cudaGetLastError();
}
