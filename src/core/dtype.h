/* Element types and devices: f32, bf16 and i32 tensors on the CPU or a CUDA device.
 * bf16 conversion rounds to nearest even, as the GPU hardware does, so CPU and CUDA agree bit for bit. */
#ifndef VOX_CORE_DTYPE_H
#define VOX_CORE_DTYPE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef enum vox_dtype { VOX_F32 = 0, VOX_BF16, VOX_I32, VOX_DTYPE_COUNT } vox_dtype;
typedef enum vox_device { VOX_CPU = 0, VOX_CUDA, VOX_DEVICE_COUNT } vox_device;

static inline size_t vox_dtype_size(vox_dtype t) { return t == VOX_BF16 ? 2 : 4; }
static inline const char *vox_dtype_name(vox_dtype t) {
  return t == VOX_F32 ? "f32" : t == VOX_BF16 ? "bf16" : t == VOX_I32 ? "i32" : "?";
}
static inline const char *vox_device_name(vox_device d) { return d == VOX_CPU ? "cpu" : "cuda"; }
static inline int vox_dtype_is_float(vox_dtype t) { return t == VOX_F32 || t == VOX_BF16; }

static inline float vox_bf16_to_f32(uint16_t h) {
  uint32_t bits = (uint32_t)h << 16;
  float f;
  memcpy(&f, &bits, sizeof f);
  return f;
}
static inline uint16_t vox_f32_to_bf16(float f) {
  uint32_t bits;
  memcpy(&bits, &f, sizeof bits);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((bits >> 16) | 0x40u); /* quiet NaN */
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return (uint16_t)(bits >> 16);
}

#endif
