/* CPU kernels for 1-D convolution via im2col + OpenBLAS GEMM: forward, backward-data (also the forward of
 * conv_transpose1d) and backward-weight. Lengths come from the operands' shapes, so one set serves both ops. */
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/cpu_blas.h"
#include "backend/cpu/cpu_iter.h"
#include "core/backend.h"
#include "core/kernel_params.h"

typedef struct conv_dims {
  int64_t B, Cin, L, Cout, Lout, K, cig, cog, g, s, p, d;
  bool direct; /* 1x1 kernel, stride 1, no padding: the input is its own column matrix */
} conv_dims;

/* x [B, Cin, L], w [Cout, Cin/groups, K], y [B, Cout, Lout]: any of the three operand roles. */
static vox_status conv_setup(const char *k, const vox_tensor *x, const vox_tensor *w, const vox_tensor *y,
                             const vox_conv1d_params *p, conv_dims *c) {
  const vox_tensor *ops[3] = {x, w, y};
  for (int i = 0; i < 3; i++)
    if (ops[i]->dtype != VOX_F32 || !vox_tensor_is_contiguous(ops[i]) || ops[i]->ndim != 3)
      return vox_errorf(VOX_ERR_UNSUPPORTED, "%s: the cpu kernel takes contiguous 3-D f32 operands", k);
  *c = (conv_dims){.B = x->shape[0], .Cin = x->shape[1], .L = x->shape[2], .Cout = w->shape[0], .Lout = y->shape[2],
                   .K = w->shape[2], .g = p->groups, .s = p->stride, .p = p->padding, .d = p->dilation};
  c->cig = c->Cin / c->g;
  c->cog = c->Cout / c->g;
  if (w->shape[1] != c->cig || y->shape[1] != c->Cout || y->shape[0] != c->B || c->Cout % c->g)
    return vox_errorf(VOX_ERR_SHAPE, "%s: operand shapes disagree with groups %d", k, p->groups);
  c->direct = c->K == 1 && c->s == 1 && c->p == 0 && c->L == c->Lout;
  return VOX_OK;
}

/* col[(ci*K + k), lo] = x[ci, lo*s - p + k*d] (0 outside [0, L)). */
static void im2col(const conv_dims *c, const float *x, float *col) {
  for (int64_t ci = 0; ci < c->cig; ci++)
    for (int64_t k = 0; k < c->K; k++) {
      float *row = col + (ci * c->K + k) * c->Lout;
      const float *xr = x + ci * c->L;
      int64_t off = k * c->d - c->p;
      for (int64_t lo = 0; lo < c->Lout; lo++) {
        int64_t l = lo * c->s + off;
        row[lo] = l >= 0 && l < c->L ? xr[l] : 0.0f;
      }
    }
}

/* x[ci, lo*s - p + k*d] += col[(ci*K + k), lo]; x must be zeroed first. */
static void col2im(const conv_dims *c, const float *col, float *x) {
  for (int64_t ci = 0; ci < c->cig; ci++)
    for (int64_t k = 0; k < c->K; k++) {
      const float *row = col + (ci * c->K + k) * c->Lout;
      float *xr = x + ci * c->L;
      int64_t off = k * c->d - c->p;
      for (int64_t lo = 0; lo < c->Lout; lo++) {
        int64_t l = lo * c->s + off;
        if (l >= 0 && l < c->L) xr[l] += row[lo];
      }
    }
}

/* Threads over (batch, group) tasks when there are enough of them; otherwise one loop and threaded GEMMs. */
static int task_threads(const conv_dims *c) {
  int64_t tasks = c->B * c->g, work = tasks * c->cog * c->cig * c->K * c->Lout;
  int nt = work > VOX_CPU_PARALLEL_MIN ? vox_num_threads() : 1;
  return tasks >= nt ? nt : 1;
}

static float *alloc_cols(const conv_dims *c, int nt) {
  return malloc(sizeof(float) * (size_t)nt * (size_t)(c->cig * c->K * c->Lout > 0 ? c->cig * c->K * c->Lout : 1));
}

static vox_status cpu_conv1d(const vox_kernel_args *a) {
  conv_dims c;
  VOX_TRY(conv_setup("CONV1D", a->in[0], a->in[1], a->out[0], a->params, &c));
  const float *xp = vox_tensor_f32(a->in[0]), *wp = vox_tensor_f32(a->in[1]);
  float *yp = vox_tensor_f32(a->out[0]);
  int nt = task_threads(&c);
  float *cols = c.direct ? NULL : alloc_cols(&c, nt);
  if (!c.direct && !cols) return vox_errorf(VOX_ERR_NOMEM, "CONV1D: out of memory for im2col");
  int blas = nt > 1 ? vox_cpu_blas_single() : 1;
  int64_t ck = c.cig * c.K;
#pragma omp parallel for schedule(dynamic) num_threads(nt)
  for (int64_t task = 0; task < c.B * c.g; task++) {
    int64_t b = task / c.g, g = task % c.g;
    const float *xb = xp + (b * c.Cin + g * c.cig) * c.L;
    const float *col = xb;
    if (!c.direct) {
      float *mine = cols + (size_t)omp_get_thread_num() * (size_t)(ck * c.Lout);
      im2col(&c, xb, mine);
      col = mine;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)c.cog, (int)c.Lout, (int)ck, 1.0f,
                wp + g * c.cog * ck, (int)ck, col, (int)c.Lout, 0.0f, yp + (b * c.Cout + g * c.cog) * c.Lout,
                (int)c.Lout);
  }
  vox_cpu_blas_restore(blas);
  free(cols);
  return VOX_OK;
}
VOX_REGISTER_KERNEL(VOX_CPU, CONV1D, cpu_conv1d)

/* in = {dy [B, Cout, Lout], w} -> out = {dx [B, Cin, L]}: col = W_g^T dy_g, then scatter-add (col2im). */
static vox_status cpu_conv1d_backward_data(const vox_kernel_args *a) {
  conv_dims c;
  VOX_TRY(conv_setup("CONV1D_BACKWARD_DATA", a->out[0], a->in[1], a->in[0], a->params, &c));
  const float *gp = vox_tensor_f32(a->in[0]), *wp = vox_tensor_f32(a->in[1]);
  float *xp = vox_tensor_f32(a->out[0]);
  int nt = task_threads(&c);
  float *cols = c.direct ? NULL : alloc_cols(&c, nt);
  if (!c.direct && !cols) return vox_errorf(VOX_ERR_NOMEM, "CONV1D_BACKWARD_DATA: out of memory for col2im");
  int blas = nt > 1 ? vox_cpu_blas_single() : 1;
  int64_t ck = c.cig * c.K;
#pragma omp parallel for schedule(dynamic) num_threads(nt)
  for (int64_t task = 0; task < c.B * c.g; task++) {
    int64_t b = task / c.g, g = task % c.g;
    float *xb = xp + (b * c.Cin + g * c.cig) * c.L;
    float *col = c.direct ? xb : cols + (size_t)omp_get_thread_num() * (size_t)(ck * c.Lout);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)ck, (int)c.Lout, (int)c.cog, 1.0f,
                wp + g * c.cog * ck, (int)ck, gp + (b * c.Cout + g * c.cog) * c.Lout, (int)c.Lout, 0.0f, col,
                (int)c.Lout);
    if (!c.direct) {
      memset(xb, 0, sizeof(float) * (size_t)(c.cig * c.L));
      col2im(&c, col, xb);
    }
  }
  vox_cpu_blas_restore(blas);
  free(cols);
  return VOX_OK;
}
VOX_REGISTER_KERNEL(VOX_CPU, CONV1D_BACKWARD_DATA, cpu_conv1d_backward_data)

/* in = {x [B, Cin, L], dy [B, Cout, Lout]} -> out = {dw [Cout, Cin/groups, K]}: dW_g = sum_b dy_g col^T, with
 * per-thread partial sums when batches run in parallel. */
static vox_status cpu_conv1d_backward_weight(const vox_kernel_args *a) {
  conv_dims c;
  VOX_TRY(conv_setup("CONV1D_BACKWARD_WEIGHT", a->in[0], a->out[0], a->in[1], a->params, &c));
  const float *xp = vox_tensor_f32(a->in[0]), *gp = vox_tensor_f32(a->in[1]);
  float *wp = vox_tensor_f32(a->out[0]);
  int nt = task_threads(&c);
  int64_t ck = c.cig * c.K, wn = c.Cout * ck;
  float *cols = c.direct ? NULL : alloc_cols(&c, nt);
  float *part = nt > 1 ? calloc((size_t)nt * (size_t)wn, sizeof(float)) : NULL;
  if ((!c.direct && !cols) || (nt > 1 && !part)) {
    free(cols);
    free(part);
    return vox_errorf(VOX_ERR_NOMEM, "CONV1D_BACKWARD_WEIGHT: out of memory");
  }
  if (nt == 1) memset(wp, 0, sizeof(float) * (size_t)wn);
  int blas = nt > 1 ? vox_cpu_blas_single() : 1;
  /* static: each thread sums a fixed set of tasks into its partial, so the result is bit-reproducible (a dynamic
   * schedule regroups the float sums from run to run and breaks exact resume) */
#pragma omp parallel for schedule(static) num_threads(nt)
  for (int64_t task = 0; task < c.B * c.g; task++) {
    int64_t b = task / c.g, g = task % c.g;
    int tid = omp_get_thread_num();
    const float *xb = xp + (b * c.Cin + g * c.cig) * c.L;
    const float *col = xb;
    if (!c.direct) {
      float *mine = cols + (size_t)tid * (size_t)(ck * c.Lout);
      im2col(&c, xb, mine);
      col = mine;
    }
    float *dst = (part ? part + (size_t)tid * (size_t)wn : wp) + g * c.cog * ck;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)c.cog, (int)ck, (int)c.Lout, 1.0f,
                gp + (b * c.Cout + g * c.cog) * c.Lout, (int)c.Lout, col, (int)c.Lout, 1.0f, dst, (int)ck);
  }
  vox_cpu_blas_restore(blas);
  if (part)
    for (int64_t i = 0; i < wn; i++) {
      float s = 0;
      for (int t = 0; t < nt; t++) s += part[(size_t)t * (size_t)wn + i];
      wp[i] = s;
    }
  free(cols);
  free(part);
  return VOX_OK;
}
VOX_REGISTER_KERNEL(VOX_CPU, CONV1D_BACKWARD_WEIGHT, cpu_conv1d_backward_weight)
