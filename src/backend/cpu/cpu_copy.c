/* CPU kernels that move or create data: strided copy with dtype conversion, fill, and counter-based RNG.
 * Every other kernel relies on COPY to make operands contiguous. */
#include <math.h>
#include <string.h>

#include "backend/cpu/cpu_iter.h"
#include "core/backend.h"
#include "core/kernel_params.h"
#include "core/rng.h"

static inline float load_f32(const void *base, vox_dtype t, int64_t i) {
  switch (t) {
    case VOX_F32: return ((const float *)base)[i];
    case VOX_BF16: return vox_bf16_to_f32(((const uint16_t *)base)[i]);
    default: return (float)((const int32_t *)base)[i];
  }
}

static vox_status cpu_copy(const vox_kernel_args *a) {
  const vox_tensor *src = a->in[0];
  vox_tensor *dst = a->out[0];
  const vox_tensor *ops[2] = {dst, src};
  vox_cpu_iter it;
  vox_cpu_iter_init(&it, dst->ndim, dst->shape, 2, ops);
  char *d = vox_tensor_data(dst);
  const char *s = vox_tensor_data(src);
  vox_dtype dt = dst->dtype, st = src->dtype;
  int64_t sd = vox_cpu_iter_inner_stride(&it, 0), ss = vox_cpu_iter_inner_stride(&it, 1);
  int64_t tiles = vox_cpu_iter_tiles(&it);
  size_t es = vox_dtype_size(dt);
#pragma omp parallel for if (it.numel > VOX_CPU_PARALLEL_MIN) num_threads(vox_num_threads())
  for (int64_t tile = 0; tile < tiles; tile++) {
    int64_t off[2];
    int64_t len = vox_cpu_iter_tile(&it, tile, off);
    if (dt == st && sd == 1 && ss == 1) {
      memcpy(d + off[0] * es, s + off[1] * es, (size_t)len * es);
    } else if (dt == st && dt != VOX_BF16) {
      const int32_t *sp = (const int32_t *)s + off[1];
      int32_t *dp = (int32_t *)d + off[0];
      for (int64_t i = 0; i < len; i++) dp[i * sd] = sp[i * ss];
    } else if (dt == VOX_I32) {
      for (int64_t i = 0; i < len; i++)
        ((int32_t *)d)[off[0] + i * sd] = (int32_t)load_f32(s, st, off[1] + i * ss);
    } else if (dt == VOX_F32) {
      for (int64_t i = 0; i < len; i++) ((float *)d)[off[0] + i * sd] = load_f32(s, st, off[1] + i * ss);
    } else {
      for (int64_t i = 0; i < len; i++)
        ((uint16_t *)d)[off[0] + i * sd] = vox_f32_to_bf16(load_f32(s, st, off[1] + i * ss));
    }
  }
  return VOX_OK;
}
VOX_REGISTER_KERNEL(VOX_CPU, COPY, cpu_copy)

static vox_status cpu_fill(const vox_kernel_args *a) {
  vox_tensor *t = a->out[0];
  const vox_fill_params *p = a->params;
  const vox_tensor *ops[1] = {t};
  vox_cpu_iter it;
  vox_cpu_iter_init(&it, t->ndim, t->shape, 1, ops);
  int64_t s = vox_cpu_iter_inner_stride(&it, 0), tiles = vox_cpu_iter_tiles(&it);
  char *base = vox_tensor_data(t);
  float f = (float)p->value;
  int32_t iv = (int32_t)p->value;
  uint16_t h = vox_f32_to_bf16(f);
#pragma omp parallel for if (it.numel > VOX_CPU_PARALLEL_MIN) num_threads(vox_num_threads())
  for (int64_t tile = 0; tile < tiles; tile++) {
    int64_t off = 0;
    int64_t len = vox_cpu_iter_tile(&it, tile, &off);
    if (t->dtype == VOX_F32)
      for (int64_t i = 0; i < len; i++) ((float *)base)[off + i * s] = f;
    else if (t->dtype == VOX_I32)
      for (int64_t i = 0; i < len; i++) ((int32_t *)base)[off + i * s] = iv;
    else
      for (int64_t i = 0; i < len; i++) ((uint16_t *)base)[off + i * s] = h;
  }
  return VOX_OK;
}
VOX_REGISTER_KERNEL(VOX_CPU, FILL, cpu_fill)

static vox_status cpu_rng(const vox_kernel_args *a) {
  vox_tensor *t = a->out[0];
  const vox_rng_params *p = a->params;
  if (!vox_tensor_is_contiguous(t)) return vox_errorf(VOX_ERR_INVALID, "rng: output must be contiguous");
  if (!vox_dtype_is_float(t->dtype)) return vox_errorf(VOX_ERR_DTYPE, "rng: output must be f32 or bf16");
  int64_t n = vox_tensor_numel(t);
  void *base = vox_tensor_data(t);
#pragma omp parallel for if (n > VOX_CPU_PARALLEL_MIN) num_threads(vox_num_threads())
  for (int64_t i = 0; i < n; i++) {
    float v;
    uint64_t idx = p->offset + (uint64_t)i;
    if (p->dist == VOX_RNG_UNIFORM) v = (float)(p->a + (p->b - p->a) * vox_rng_uniform_at(p->seed, idx));
    else if (p->dist == VOX_RNG_NORMAL) v = (float)(p->a + p->b * vox_rng_normal_at(p->seed, idx));
    else v = vox_rng_uniform_at(p->seed, idx) < p->a ? 1.0f : 0.0f;
    if (t->dtype == VOX_F32) ((float *)base)[i] = v;
    else ((uint16_t *)base)[i] = vox_f32_to_bf16(v);
  }
  return VOX_OK;
}
VOX_REGISTER_KERNEL(VOX_CPU, RNG, cpu_rng)
