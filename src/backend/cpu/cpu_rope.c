/* CPU kernel for rotary position embedding: a cos/sin table per (batch row, position) is built once, then every
 * head's rows are rotated in parallel. Angles are formed in f32 as Hugging Face does, so long positions agree. */
#include <math.h>
#include <stdlib.h>

#include "backend/cpu/cpu_iter.h"
#include "core/backend.h"
#include "core/kernel_params.h"

/* in = {x [B,H,T,D] contiguous f32, positions i32 [B,T] or [T]} -> out = {y [B,H,T,D]} */
static vox_status cpu_rope(const vox_kernel_args *a) {
  const vox_tensor *x = a->in[0], *pos = a->in[1];
  vox_tensor *y = a->out[0];
  const vox_rope_params *p = a->params;
  if (x->dtype != VOX_F32 || y->dtype != VOX_F32 || !vox_tensor_is_contiguous(x) || !vox_tensor_is_contiguous(pos))
    return vox_errorf(VOX_ERR_UNSUPPORTED, "ROPE: the cpu kernel takes contiguous f32 input, got %s",
                      vox_dtype_name(x->dtype));
  int64_t B = x->shape[0], H = x->shape[1], T = x->shape[2], D = x->shape[3];
  int64_t half = p->rotary_dim / 2, PB = pos->ndim == 2 ? B : 1;
  float *inv = malloc(sizeof(float) * (size_t)(half ? half : 1));
  int64_t ntab = PB * T * half;
  float *tab = malloc(sizeof(float) * 2 * (size_t)(ntab > 0 ? ntab : 1));
  if (!inv || !tab) {
    free(inv);
    free(tab);
    return vox_errorf(VOX_ERR_NOMEM, "ROPE: out of memory");
  }
  for (int64_t j = 0; j < half; j++) {
    float e = (float)(2 * j) / (float)p->rotary_dim;
    inv[j] = (float)(1.0 / pow((double)p->theta, (double)e));
  }
  const int32_t *pp = vox_tensor_i32(pos);
  float sign = p->inverse ? -1.0f : 1.0f;
#pragma omp parallel for if (PB * T * half > 4096) num_threads(vox_num_threads())
  for (int64_t r = 0; r < PB * T; r++) {
    float *c = tab + r * 2 * half;
    for (int64_t j = 0; j < half; j++) {
      float ang = (float)pp[r] * inv[j];
      c[j] = (float)cos((double)ang);
      c[half + j] = sign * (float)sin((double)ang);
    }
  }
  const float *xp = vox_tensor_f32(x);
  float *yp = vox_tensor_f32(y);
  int64_t rows = B * H * T;
#pragma omp parallel for if (rows * D > VOX_CPU_PARALLEL_MIN) num_threads(vox_num_threads())
  for (int64_t r = 0; r < rows; r++) {
    int64_t t = r % T, b = r / (H * T);
    const float *c = tab + ((PB > 1 ? b * T : 0) + t) * 2 * half, *s = c + half;
    const float *xr = xp + r * D;
    float *yr = yp + r * D;
    for (int64_t j = 0; j < half; j++) {
      float x1 = xr[j], x2 = xr[j + half];
      yr[j] = x1 * c[j] - x2 * s[j];
      yr[j + half] = x2 * c[j] + x1 * s[j];
    }
    for (int64_t j = 2 * half; j < D; j++) yr[j] = xr[j];
  }
  free(inv);
  free(tab);
  return VOX_OK;
}
VOX_REGISTER_KERNEL(VOX_CPU, ROPE, cpu_rope)
