/* CPU SOFTMAX / SOFTMAX_BACKWARD kernels over the last dim (any strides, f32 or bf16), one row per task.
 * The row maximum is subtracted before exp, so logits of any magnitude give finite results. */
#include <math.h>
#include <stdlib.h>

#include "backend/cpu/cpu_iter.h"
#include "backend/cpu/cpu_rows.h"
#include "core/backend.h"
#include "core/kernel_params.h"

static vox_status check_rows(const char *op, int n, const vox_tensor *const *ts) {
  for (int i = 0; i < n; i++) {
    if (!vox_dtype_is_float(ts[i]->dtype))
      return vox_errorf(VOX_ERR_DTYPE, "%s kernel: operand %d is %s, expected f32 or bf16", op, i,
                        vox_dtype_name(ts[i]->dtype));
    if (!vox_tensor_same_shape(ts[i], ts[0]) || ts[i]->ndim < 1)
      return vox_errorf(VOX_ERR_SHAPE, "%s kernel: operands must share one shape of at least 1 dim", op);
  }
  return VOX_OK;
}

static vox_status cpu_softmax(const vox_kernel_args *args) {
  const vox_softmax_params *p = args->params;
  const vox_tensor *x = args->in[0];
  vox_tensor *y = args->out[0];
  const vox_tensor *ts[2] = {x, y};
  VOX_TRY(check_rows("softmax", 2, ts));
  int64_t V = x->shape[x->ndim - 1], rows = V ? vox_tensor_numel(x) / V : 0;
  bool log_mode = p && p->log;
  const void *xb = vox_tensor_data(x);
  void *yb = vox_tensor_data(y);
  int64_t xs = x->strides[x->ndim - 1], ys = y->strides[y->ndim - 1];
  int fail = 0;
#pragma omp parallel num_threads(vox_num_threads()) if (rows * V > VOX_CPU_PARALLEL_MIN && rows > 1)
  {
    float *buf = malloc(sizeof(float) * (size_t)(V ? V : 1));
    if (!buf) {
#pragma omp atomic write
      fail = 1;
    }
#pragma omp for schedule(static)
    for (int64_t r = 0; r < rows; r++) {
      if (!buf) continue;
      int64_t xo = vox_cpu_row_offset(x, r), yo = vox_cpu_row_offset(y, r);
      float m = -INFINITY;
      for (int64_t v = 0; v < V; v++) {
        buf[v] = vox_cpu_load(xb, x->dtype, xo + v * xs);
        m = buf[v] > m ? buf[v] : m;
      }
      double s = 0;
      if (log_mode) {
        for (int64_t v = 0; v < V; v++) s += expf(buf[v] - m);
        float lse = m + (float)log(s);
        for (int64_t v = 0; v < V; v++) vox_cpu_store(yb, y->dtype, yo + v * ys, buf[v] - lse);
      } else {
        for (int64_t v = 0; v < V; v++) {
          buf[v] = expf(buf[v] - m);
          s += buf[v];
        }
        float inv = (float)(1.0 / s);
        if (y->dtype == VOX_F32 && ys == 1) {
          float *yr = (float *)yb + yo;
          for (int64_t v = 0; v < V; v++) yr[v] = buf[v] * inv;
        } else {
          for (int64_t v = 0; v < V; v++) vox_cpu_store(yb, y->dtype, yo + v * ys, buf[v] * inv);
        }
      }
    }
    free(buf);
  }
  return fail ? vox_errorf(VOX_ERR_NOMEM, "softmax kernel: out of memory for a row of %lld", (long long)V) : VOX_OK;
}
VOX_REGISTER_KERNEL(VOX_CPU, SOFTMAX, cpu_softmax)

/* softmax: dx = y * (dy - sum(dy * y)); log_softmax: dx = dy - exp(y) * sum(dy). */
static vox_status cpu_softmax_backward(const vox_kernel_args *args) {
  const vox_softmax_params *p = args->params;
  const vox_tensor *y = args->in[0], *dy = args->in[1];
  vox_tensor *dx = args->out[0];
  const vox_tensor *ts[3] = {y, dy, dx};
  VOX_TRY(check_rows("softmax backward", 3, ts));
  int64_t V = y->shape[y->ndim - 1], rows = V ? vox_tensor_numel(y) / V : 0;
  bool log_mode = p && p->log;
  const void *yb = vox_tensor_data(y), *gb = vox_tensor_data(dy);
  void *db = vox_tensor_data(dx);
  int64_t ys = y->strides[y->ndim - 1], gs = dy->strides[dy->ndim - 1], ds = dx->strides[dx->ndim - 1];
#pragma omp parallel for num_threads(vox_num_threads()) if (rows * V > VOX_CPU_PARALLEL_MIN && rows > 1) \
    schedule(static)
  for (int64_t r = 0; r < rows; r++) {
    int64_t yo = vox_cpu_row_offset(y, r), go = vox_cpu_row_offset(dy, r), dO = vox_cpu_row_offset(dx, r);
    double acc = 0;
    for (int64_t v = 0; v < V; v++) {
      float g = vox_cpu_load(gb, dy->dtype, go + v * gs);
      acc += log_mode ? g : (double)g * vox_cpu_load(yb, y->dtype, yo + v * ys);
    }
    float s = (float)acc;
    for (int64_t v = 0; v < V; v++) {
      float g = vox_cpu_load(gb, dy->dtype, go + v * gs), yv = vox_cpu_load(yb, y->dtype, yo + v * ys);
      vox_cpu_store(db, dx->dtype, dO + v * ds, log_mode ? g - expf(yv) * s : yv * (g - s));
    }
  }
  return VOX_OK;
}
VOX_REGISTER_KERNEL(VOX_CPU, SOFTMAX_BACKWARD, cpu_softmax_backward)
