/* Host emulation of cuda_bf16.h for the emulated attention kernels: bf16 storage, round-to-nearest-even
 * conversions as the hardware does them. */
#pragma once
#include "cuda_runtime.h"
struct __nv_bfloat16 { uint16_t v; };
struct __nv_bfloat162 { __nv_bfloat16 x, y; };
inline float __bfloat162float(__nv_bfloat16 h) { uint32_t b = (uint32_t)h.v << 16; float f; memcpy(&f, &b, 4); return f; }
inline __nv_bfloat16 __float2bfloat16_rn(float f) { uint32_t b; memcpy(&b, &f, 4);
  if ((b & 0x7fffffffu) > 0x7f800000u) return {(uint16_t)((b >> 16) | 0x40)};
  b += 0x7fffu + ((b >> 16) & 1u); return {(uint16_t)(b >> 16)}; }
inline __nv_bfloat162 __floats2bfloat162_rn(float a, float b) { return {__float2bfloat16_rn(a), __float2bfloat16_rn(b)}; }
