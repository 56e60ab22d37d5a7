/* CPU CROSS_ENTROPY / CROSS_ENTROPY_BACKWARD kernels: per-row loss and log-sum-exp from logits [N, V], and the
 * logits gradient recomputed from the saved log-sum-exp (no probability buffer is ever stored). */
#include <math.h>

#include "backend/cpu/cpu_iter.h"
#include "backend/cpu/cpu_rows.h"
#include "core/backend.h"
#include "core/kernel_params.h"

/* Validates targets first so that an error names the first bad row, whatever the thread schedule. */
static vox_status check_targets(const vox_tensor *target, int64_t V, int32_t ignore_index) {
  const int32_t *t = vox_tensor_i32(target);
  int64_t ts = target->strides[0];
  for (int64_t r = 0; r < target->shape[0]; r++) {
    int32_t c = t[r * ts];
    if (c != ignore_index && (c < 0 || c >= V))
      return vox_errorf(VOX_ERR_INDEX, "target %d at row %lld is outside [0, %lld) (ignore_index %d)", c,
                        (long long)r, (long long)V, ignore_index);
  }
  return VOX_OK;
}

static vox_status check_operands(const char *op, const vox_tensor *logits, const vox_tensor *target) {
  if (logits->ndim != 2 || target->ndim != 1 || target->shape[0] != logits->shape[0])
    return vox_errorf(VOX_ERR_SHAPE, "%s kernel: logits [N, V] and target [N] expected", op);
  if (!vox_dtype_is_float(logits->dtype) || target->dtype != VOX_I32)
    return vox_errorf(VOX_ERR_DTYPE, "%s kernel: float logits and i32 targets expected, got %s and %s", op,
                      vox_dtype_name(logits->dtype), vox_dtype_name(target->dtype));
  return VOX_OK;
}

static vox_status cpu_cross_entropy(const vox_kernel_args *args) {
  const vox_cross_entropy_params *p = args->params;
  const vox_tensor *x = args->in[0], *target = args->in[1];
  vox_tensor *loss = args->out[0], *lse_out = args->out[1];
  VOX_TRY(check_operands("cross_entropy", x, target));
  if (loss->dtype != VOX_F32 || lse_out->dtype != VOX_F32)
    return vox_errorf(VOX_ERR_DTYPE, "cross_entropy kernel: loss and lse outputs must be f32");
  int64_t N = x->shape[0], V = x->shape[1];
  VOX_TRY(check_targets(target, V, p->ignore_index));
  const void *xb = vox_tensor_data(x);
  const int32_t *tb = vox_tensor_i32(target);
  float *lb = vox_tensor_f32(loss), *sb = vox_tensor_f32(lse_out);
  int64_t xr = x->strides[0], xc = x->strides[1], ts = target->strides[0], ls = loss->strides[0],
          ss = lse_out->strides[0];
  double eps = p->label_smoothing;
#pragma omp parallel for num_threads(vox_num_threads()) if (N * V > VOX_CPU_PARALLEL_MIN && N > 1) schedule(static)
  for (int64_t r = 0; r < N; r++) {
    const int64_t o = r * xr;
    float m = -INFINITY;
    double sum_x = 0;
    for (int64_t v = 0; v < V; v++) {
      float xv = vox_cpu_load(xb, x->dtype, o + v * xc);
      m = xv > m ? xv : m;
      sum_x += xv;
    }
    double s = 0;
    for (int64_t v = 0; v < V; v++) s += expf(vox_cpu_load(xb, x->dtype, o + v * xc) - m);
    double lse = m + log(s);
    sb[r * ss] = (float)lse;
    int32_t c = tb[r * ts];
    if (c == p->ignore_index) {
      lb[r * ls] = 0.0f;
      continue;
    }
    /* -log p_c = lse - x_c; the smoothing term mean_v(-log p_v) = lse - mean_v(x_v). */
    double xc_val = vox_cpu_load(xb, x->dtype, o + c * xc);
    lb[r * ls] = (float)((1.0 - eps) * (lse - xc_val) + eps * (lse - sum_x / (double)V));
  }
  return VOX_OK;
}
VOX_REGISTER_KERNEL(VOX_CPU, CROSS_ENTROPY, cpu_cross_entropy)

/* dlogits[r, v] = dloss[r] * (softmax_v - (1 - eps) [v == c] - eps / V); ignored rows get 0. */
static vox_status cpu_cross_entropy_backward(const vox_kernel_args *args) {
  const vox_cross_entropy_params *p = args->params;
  const vox_tensor *x = args->in[0], *target = args->in[1], *lse = args->in[2], *dloss = args->in[3];
  vox_tensor *dx = args->out[0];
  VOX_TRY(check_operands("cross_entropy backward", x, target));
  if (!vox_tensor_same_shape(dx, x) || lse->ndim != 1 || dloss->ndim != 1 || lse->shape[0] != x->shape[0] ||
      dloss->shape[0] != x->shape[0])
    return vox_errorf(VOX_ERR_SHAPE, "cross_entropy backward kernel: lse [N], dloss [N], dlogits [N, V] expected");
  int64_t N = x->shape[0], V = x->shape[1];
  VOX_TRY(check_targets(target, V, p->ignore_index));
  const void *xb = vox_tensor_data(x), *sb = vox_tensor_data(lse), *gb = vox_tensor_data(dloss);
  const int32_t *tb = vox_tensor_i32(target);
  void *db = vox_tensor_data(dx);
  int64_t xr = x->strides[0], xc = x->strides[1], ts = target->strides[0], dr = dx->strides[0], dc = dx->strides[1];
  float eps = p->label_smoothing, uniform = eps / (float)(V ? V : 1);
#pragma omp parallel for num_threads(vox_num_threads()) if (N * V > VOX_CPU_PARALLEL_MIN && N > 1) schedule(static)
  for (int64_t r = 0; r < N; r++) {
    int32_t c = tb[r * ts];
    float g = c == p->ignore_index ? 0.0f : vox_cpu_load(gb, dloss->dtype, r * dloss->strides[0]);
    float l = vox_cpu_load(sb, lse->dtype, r * lse->strides[0]);
    for (int64_t v = 0; v < V; v++) {
      float val = 0.0f;
      if (g != 0.0f) {
        float pv = expf(vox_cpu_load(xb, x->dtype, r * xr + v * xc) - l);
        val = g * (pv - uniform - (v == c ? 1.0f - eps : 0.0f));
      }
      vox_cpu_store(db, dx->dtype, r * dr + v * dc, val);
    }
  }
  return VOX_OK;
}
VOX_REGISTER_KERNEL(VOX_CPU, CROSS_ENTROPY_BACKWARD, cpu_cross_entropy_backward)
