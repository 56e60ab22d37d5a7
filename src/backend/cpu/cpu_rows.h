/* Row access helpers for CPU kernels that work along the last dim (softmax, losses, indexing): the element
 * offset of row r of any strided tensor, and f32 loads/stores of f32, bf16 or i32 elements. */
#ifndef VOX_BACKEND_CPU_ROWS_H
#define VOX_BACKEND_CPU_ROWS_H

#include <stdint.h>

#include "core/tensor.h"

/* Offset (in elements) of element [r..., 0] where r indexes the leading dims in row-major order. */
static inline int64_t vox_cpu_row_offset(const vox_tensor *t, int64_t r) {
  int64_t off = 0;
  for (int d = t->ndim - 2; d >= 0; d--) {
    off += (r % t->shape[d]) * t->strides[d];
    r /= t->shape[d];
  }
  return off;
}

/* Offset of the element with flat row-major index i (any strides). */
static inline int64_t vox_cpu_flat_offset(const vox_tensor *t, int64_t i) {
  int64_t off = 0;
  for (int d = t->ndim - 1; d >= 0; d--) {
    off += (i % t->shape[d]) * t->strides[d];
    i /= t->shape[d];
  }
  return off;
}

static inline float vox_cpu_load(const void *base, vox_dtype t, int64_t i) {
  if (t == VOX_F32) return ((const float *)base)[i];
  if (t == VOX_BF16) return vox_bf16_to_f32(((const uint16_t *)base)[i]);
  return (float)((const int32_t *)base)[i];
}

static inline void vox_cpu_store(void *base, vox_dtype t, int64_t i, float v) {
  if (t == VOX_F32) ((float *)base)[i] = v;
  else if (t == VOX_BF16) ((uint16_t *)base)[i] = vox_f32_to_bf16(v);
  else ((int32_t *)base)[i] = (int32_t)v;
}

#endif
