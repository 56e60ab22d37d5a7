/* CPU kernels for RMSNorm and LayerNorm over the last dim, forward and backward, parallel over rows.
 * Statistics use double and two passes (mean, then centred variance) so large-mean inputs stay exact. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>

#include "backend/cpu/cpu_iter.h"
#include "core/backend.h"
#include "core/kernel_params.h"

static vox_status require_f32(const char *k, const vox_tensor *t) {
  if (t && (t->dtype != VOX_F32 || !vox_tensor_is_contiguous(t)))
    return vox_errorf(VOX_ERR_UNSUPPORTED, "%s: the cpu kernel takes contiguous f32 operands, got %s", k,
                      vox_dtype_name(t->dtype));
  return VOX_OK;
}

/* Threads for `rows` rows of `d` elements: one below the parallel threshold. */
static int row_threads(int64_t rows, int64_t d) {
  int nt = rows * d > VOX_CPU_PARALLEL_MIN ? vox_num_threads() : 1;
  return nt > rows ? (int)(rows > 0 ? rows : 1) : nt;
}

/* Sums per-thread partial vectors acc[nt][d] into dst[d]. */
static void reduce_partials(const double *acc, int nt, int64_t d, float *dst) {
  for (int64_t j = 0; j < d; j++) {
    double s = 0;
    for (int t = 0; t < nt; t++) s += acc[(int64_t)t * d + j];
    dst[j] = (float)s;
  }
}

static vox_status cpu_rmsnorm(const vox_kernel_args *a) {
  const vox_tensor *x = a->in[0], *w = a->in[1];
  vox_tensor *y = a->out[0], *rstd = a->out[1];
  VOX_TRY(require_f32("RMSNORM", x));
  VOX_TRY(require_f32("RMSNORM", w));
  const vox_norm_params *p = a->params;
  int64_t d = x->shape[x->ndim - 1], rows = vox_tensor_numel(x) / d;
  const float *xp = vox_tensor_f32(x), *wp = w ? vox_tensor_f32(w) : NULL;
  float *yp = vox_tensor_f32(y), *rp = rstd ? vox_tensor_f32(rstd) : NULL;
  double eps = p->eps;
#pragma omp parallel for num_threads(row_threads(rows, d))
  for (int64_t r = 0; r < rows; r++) {
    const float *xr = xp + r * d;
    float *yr = yp + r * d;
    double ss = 0;
    for (int64_t j = 0; j < d; j++) ss += (double)xr[j] * xr[j];
    double rs = 1.0 / sqrt(ss / (double)d + eps);
    if (rp) rp[r] = (float)rs;
    if (wp)
      for (int64_t j = 0; j < d; j++) yr[j] = (float)(xr[j] * rs * wp[j]);
    else
      for (int64_t j = 0; j < d; j++) yr[j] = (float)(xr[j] * rs);
  }
  return VOX_OK;
}
VOX_REGISTER_KERNEL(VOX_CPU, RMSNORM, cpu_rmsnorm)

/* dx = r*g - x * r^3 * sum(g*x) / D with g = dy*w; dw = sum_rows dy * x * r. */
static vox_status cpu_rmsnorm_backward(const vox_kernel_args *a) {
  const vox_tensor *x = a->in[0], *w = a->in[1], *rstd = a->in[2], *dy = a->in[3];
  vox_tensor *dx = a->out[0], *dw = a->out[1];
  VOX_TRY(require_f32("RMSNORM_BACKWARD", x));
  VOX_TRY(require_f32("RMSNORM_BACKWARD", dy));
  int64_t d = x->shape[x->ndim - 1], rows = vox_tensor_numel(x) / d;
  const float *xp = vox_tensor_f32(x), *wp = w ? vox_tensor_f32(w) : NULL, *rp = vox_tensor_f32(rstd),
              *gp = vox_tensor_f32(dy);
  float *dxp = dx ? vox_tensor_f32(dx) : NULL;
  int nt = row_threads(rows, d);
  double *acc = NULL;
  if (dw) {
    acc = calloc((size_t)nt * (size_t)d, sizeof *acc);
    if (!acc) return vox_errorf(VOX_ERR_NOMEM, "RMSNORM_BACKWARD: out of memory");
  }
#pragma omp parallel num_threads(nt)
  {
    double *my = acc ? acc + (int64_t)omp_get_thread_num() * d : NULL;
#pragma omp for schedule(static)
    for (int64_t r = 0; r < rows; r++) {
      const float *xr = xp + r * d, *gr = gp + r * d;
      double rs = rp[r];
      if (dxp) {
        double s = 0;
        for (int64_t j = 0; j < d; j++) s += (double)gr[j] * (wp ? wp[j] : 1.0f) * xr[j];
        double c = rs * rs * rs * s / (double)d;
        float *dr = dxp + r * d;
        for (int64_t j = 0; j < d; j++) dr[j] = (float)(rs * gr[j] * (wp ? wp[j] : 1.0f) - xr[j] * c);
      }
      if (my)
        for (int64_t j = 0; j < d; j++) my[j] += (double)gr[j] * xr[j] * rs;
    }
  }
  if (dw) reduce_partials(acc, nt, d, vox_tensor_f32(dw));
  free(acc);
  return VOX_OK;
}
VOX_REGISTER_KERNEL(VOX_CPU, RMSNORM_BACKWARD, cpu_rmsnorm_backward)

static vox_status cpu_layernorm(const vox_kernel_args *a) {
  const vox_tensor *x = a->in[0], *w = a->in[1], *b = a->in[2];
  vox_tensor *y = a->out[0], *mean = a->out[1], *rstd = a->out[2];
  VOX_TRY(require_f32("LAYERNORM", x));
  VOX_TRY(require_f32("LAYERNORM", w));
  VOX_TRY(require_f32("LAYERNORM", b));
  const vox_norm_params *p = a->params;
  int64_t d = x->shape[x->ndim - 1], rows = vox_tensor_numel(x) / d;
  const float *xp = vox_tensor_f32(x), *wp = w ? vox_tensor_f32(w) : NULL, *bp = b ? vox_tensor_f32(b) : NULL;
  float *yp = vox_tensor_f32(y), *mp = mean ? vox_tensor_f32(mean) : NULL, *rp = rstd ? vox_tensor_f32(rstd) : NULL;
  double eps = p->eps;
#pragma omp parallel for num_threads(row_threads(rows, d))
  for (int64_t r = 0; r < rows; r++) {
    const float *xr = xp + r * d;
    float *yr = yp + r * d;
    double s = 0;
    for (int64_t j = 0; j < d; j++) s += xr[j];
    double mu = s / (double)d, v = 0;
    for (int64_t j = 0; j < d; j++) {
      double c = xr[j] - mu;
      v += c * c;
    }
    double rs = 1.0 / sqrt(v / (double)d + eps);
    if (mp) mp[r] = (float)mu;
    if (rp) rp[r] = (float)rs;
    for (int64_t j = 0; j < d; j++) {
      double h = (xr[j] - mu) * rs;
      if (wp) h *= wp[j];
      if (bp) h += bp[j];
      yr[j] = (float)h;
    }
  }
  return VOX_OK;
}
VOX_REGISTER_KERNEL(VOX_CPU, LAYERNORM, cpu_layernorm)

/* With xhat = (x-mean)*r and g = dy*w: dx = r * (g - mean(g) - xhat * mean(g*xhat)); dw = sum dy*xhat; db = sum dy.
 * The saved f32 mean is only rounded, so xhat is recomputed from it exactly as the forward did. */
static vox_status cpu_layernorm_backward(const vox_kernel_args *a) {
  const vox_tensor *x = a->in[0], *w = a->in[1], *mean = a->in[2], *rstd = a->in[3], *dy = a->in[4];
  vox_tensor *dx = a->out[0], *dw = a->out[1], *db = a->out[2];
  VOX_TRY(require_f32("LAYERNORM_BACKWARD", x));
  VOX_TRY(require_f32("LAYERNORM_BACKWARD", dy));
  int64_t d = x->shape[x->ndim - 1], rows = vox_tensor_numel(x) / d;
  const float *xp = vox_tensor_f32(x), *wp = w ? vox_tensor_f32(w) : NULL, *mp = vox_tensor_f32(mean),
              *rp = vox_tensor_f32(rstd), *gp = vox_tensor_f32(dy);
  float *dxp = dx ? vox_tensor_f32(dx) : NULL;
  int nt = row_threads(rows, d);
  double *acc = NULL;
  if (dw || db) {
    acc = calloc((size_t)nt * 2 * (size_t)d, sizeof *acc);
    if (!acc) return vox_errorf(VOX_ERR_NOMEM, "LAYERNORM_BACKWARD: out of memory");
  }
#pragma omp parallel num_threads(nt)
  {
    double *myw = acc ? acc + (int64_t)omp_get_thread_num() * d : NULL;
    double *myb = acc ? acc + ((int64_t)nt + omp_get_thread_num()) * d : NULL;
#pragma omp for schedule(static)
    for (int64_t r = 0; r < rows; r++) {
      const float *xr = xp + r * d, *gr = gp + r * d;
      double mu = mp[r], rs = rp[r];
      if (dxp) {
        double sg = 0, sgx = 0;
        for (int64_t j = 0; j < d; j++) {
          double g = (double)gr[j] * (wp ? wp[j] : 1.0f);
          sg += g;
          sgx += g * (xr[j] - mu) * rs;
        }
        sg /= (double)d;
        sgx /= (double)d;
        float *dr = dxp + r * d;
        for (int64_t j = 0; j < d; j++) {
          double g = (double)gr[j] * (wp ? wp[j] : 1.0f);
          dr[j] = (float)(rs * (g - sg - (xr[j] - mu) * rs * sgx));
        }
      }
      if (acc)
        for (int64_t j = 0; j < d; j++) {
          myw[j] += (double)gr[j] * (xr[j] - mu) * rs;
          myb[j] += gr[j];
        }
    }
  }
  if (dw) reduce_partials(acc, nt, d, vox_tensor_f32(dw));
  if (db) reduce_partials(acc + (int64_t)nt * d, nt, d, vox_tensor_f32(db));
  free(acc);
  return VOX_OK;
}
VOX_REGISTER_KERNEL(VOX_CPU, LAYERNORM_BACKWARD, cpu_layernorm_backward)
