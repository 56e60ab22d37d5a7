/* CPU elementwise kernels: BINARY, UNARY, UNARY_BACKWARD, WHERE, DROPOUT, SWIGLU, SWIGLU_BACKWARD.
 * Each tile of a strided iteration is loaded into f32 registers/buffers, computed by a simple loop gcc
 * vectorises, and stored back in the output's dtype; i32 operands take an exact integer path. */
#include <math.h>
#include <stdbool.h>
#include <string.h>

#include "backend/cpu/cpu_iter.h"
#include "backend/cpu/cpu_vmath.h"
#include "core/backend.h"
#include "core/kernel_params.h"
#include "core/rng.h"

#define TILE VOX_CPU_ITER_TILE

/* ---- tile loads and stores ------------------------------------------------------------------------------ */

/* f32 values of a run of `len` elements at `off` (stride `s`) of a tensor of dtype t: the data itself when it
 * is contiguous f32, else converted into buf. */
static inline const float *load_run(const void *base, vox_dtype t, int64_t off, int64_t s, int64_t len,
                                    float *buf) {
  if (t == VOX_F32) {
    const float *p = (const float *)base + off;
    if (s == 1) return p;
    if (s == 0) {
      for (int64_t i = 0; i < len; i++) buf[i] = p[0];
    } else {
      for (int64_t i = 0; i < len; i++) buf[i] = p[i * s];
    }
  } else if (t == VOX_BF16) {
    const uint16_t *p = (const uint16_t *)base + off;
    for (int64_t i = 0; i < len; i++) buf[i] = vox_bf16_to_f32(p[i * s]);
  } else {
    const int32_t *p = (const int32_t *)base + off;
    for (int64_t i = 0; i < len; i++) buf[i] = (float)p[i * s];
  }
  return buf;
}

static inline const int32_t *load_run_i32(const void *base, int64_t off, int64_t s, int64_t len, int32_t *buf) {
  const int32_t *p = (const int32_t *)base + off;
  if (s == 1) return p;
  for (int64_t i = 0; i < len; i++) buf[i] = p[i * s];
  return buf;
}

/* Where a kernel writes f32 results: straight into contiguous f32 output, else into buf (then store_run). */
static inline float *out_run(void *base, vox_dtype t, int64_t off, int64_t s, float *buf) {
  return t == VOX_F32 && s == 1 ? (float *)base + off : buf;
}

static inline void store_run(void *base, vox_dtype t, int64_t off, int64_t s, int64_t len, const float *v) {
  if (t == VOX_F32) {
    float *p = (float *)base + off;
    if (p == v) return;
    for (int64_t i = 0; i < len; i++) p[i * s] = v[i];
  } else if (t == VOX_BF16) {
    uint16_t *p = (uint16_t *)base + off;
    for (int64_t i = 0; i < len; i++) p[i * s] = vox_f32_to_bf16(v[i]);
  } else {
    int32_t *p = (int32_t *)base + off;
    for (int64_t i = 0; i < len; i++) p[i * s] = (int32_t)v[i];
  }
}

static vox_status check_same_shape(const char *k, const vox_tensor *out, const vox_tensor *x, const char *what) {
  char b1[96], b2[96];
  if (!vox_tensor_same_shape(out, x))
    return vox_errorf(VOX_ERR_SHAPE, "%s kernel: %s %s does not match output %s", k, what,
                      vox_tensor_describe(x, b1, sizeof b1), vox_tensor_describe(out, b2, sizeof b2));
  return VOX_OK;
}

/* ---- BINARY ---------------------------------------------------------------------------------------------- */

static void binary_f32(vox_binary_op op, const float *x, const float *y, float *o, int64_t n) {
  switch (op) {
    case VOX_BIN_ADD: for (int64_t i = 0; i < n; i++) o[i] = x[i] + y[i]; break;
    case VOX_BIN_SUB: for (int64_t i = 0; i < n; i++) o[i] = x[i] - y[i]; break;
    case VOX_BIN_MUL: for (int64_t i = 0; i < n; i++) o[i] = x[i] * y[i]; break;
    case VOX_BIN_DIV: for (int64_t i = 0; i < n; i++) o[i] = x[i] / y[i]; break;
    /* NaN propagates, as in torch.maximum/minimum. */
    case VOX_BIN_MAX: for (int64_t i = 0; i < n; i++) o[i] = (x[i] > y[i] || x[i] != x[i]) ? x[i] : y[i]; break;
    case VOX_BIN_MIN: for (int64_t i = 0; i < n; i++) o[i] = (x[i] < y[i] || x[i] != x[i]) ? x[i] : y[i]; break;
    case VOX_BIN_POW: for (int64_t i = 0; i < n; i++) o[i] = powf(x[i], y[i]); break;
    case VOX_BIN_EQ: for (int64_t i = 0; i < n; i++) o[i] = x[i] == y[i] ? 1.0f : 0.0f; break;
    case VOX_BIN_NE: for (int64_t i = 0; i < n; i++) o[i] = x[i] != y[i] ? 1.0f : 0.0f; break;
    case VOX_BIN_LT: for (int64_t i = 0; i < n; i++) o[i] = x[i] < y[i] ? 1.0f : 0.0f; break;
    case VOX_BIN_LE: for (int64_t i = 0; i < n; i++) o[i] = x[i] <= y[i] ? 1.0f : 0.0f; break;
    case VOX_BIN_GT: for (int64_t i = 0; i < n; i++) o[i] = x[i] > y[i] ? 1.0f : 0.0f; break;
    case VOX_BIN_GE: for (int64_t i = 0; i < n; i++) o[i] = x[i] >= y[i] ? 1.0f : 0.0f; break;
  }
}

/* Exact integer arithmetic (wrapping like int32 in C after a 64-bit computation); division truncates and
 * x/0 gives 0 rather than trapping. */
static int32_t binary_i32_one(vox_binary_op op, int32_t x, int32_t y) {
  switch (op) {
    case VOX_BIN_ADD: return (int32_t)((int64_t)x + y);
    case VOX_BIN_SUB: return (int32_t)((int64_t)x - y);
    case VOX_BIN_MUL: return (int32_t)((int64_t)x * y);
    case VOX_BIN_DIV: return y == 0 ? 0 : (int32_t)((int64_t)x / y);
    case VOX_BIN_MAX: return x > y ? x : y;
    case VOX_BIN_MIN: return x < y ? x : y;
    case VOX_BIN_POW: return (int32_t)pow((double)x, (double)y);
    case VOX_BIN_EQ: return x == y;
    case VOX_BIN_NE: return x != y;
    case VOX_BIN_LT: return x < y;
    case VOX_BIN_LE: return x <= y;
    case VOX_BIN_GT: return x > y;
    case VOX_BIN_GE: return x >= y;
  }
  return 0;
}

static vox_status cpu_binary(const vox_kernel_args *args) {
  const vox_binary_params *p = args->params;
  vox_tensor *out = args->out[0];
  const vox_tensor *a = args->in[0], *b = args->in[1];
  VOX_TRY(check_same_shape("binary", out, a, "a"));
  VOX_TRY(check_same_shape("binary", out, b, "b"));
  const vox_tensor *ops[3] = {out, a, b};
  vox_cpu_iter it;
  vox_cpu_iter_init(&it, out->ndim, out->shape, 3, ops);
  int64_t so = vox_cpu_iter_inner_stride(&it, 0), sa = vox_cpu_iter_inner_stride(&it, 1),
          sb = vox_cpu_iter_inner_stride(&it, 2), tiles = vox_cpu_iter_tiles(&it);
  void *po = vox_tensor_data(out);
  const void *pa = vox_tensor_data(a), *pb = vox_tensor_data(b);
  vox_dtype to = out->dtype, ta = a->dtype, tb = b->dtype;
  bool int_path = ta == VOX_I32 && tb == VOX_I32;
  vox_binary_op op = p->op;
#pragma omp parallel for if (it.numel > VOX_CPU_PARALLEL_MIN) num_threads(vox_num_threads())
  for (int64_t tile = 0; tile < tiles; tile++) {
    int64_t off[3];
    int64_t len = vox_cpu_iter_tile(&it, tile, off);
    if (int_path) {
      int32_t bx[TILE], by[TILE];
      const int32_t *x = load_run_i32(pa, off[1], sa, len, bx), *y = load_run_i32(pb, off[2], sb, len, by);
      if (to == VOX_I32) {
        int32_t *o = (int32_t *)po + off[0];
        for (int64_t i = 0; i < len; i++) o[i * so] = binary_i32_one(op, x[i], y[i]);
      } else {
        float bo[TILE];
        for (int64_t i = 0; i < len; i++) bo[i] = (float)binary_i32_one(op, x[i], y[i]);
        store_run(po, to, off[0], so, len, bo);
      }
    } else {
      float bx[TILE], by[TILE], bo[TILE];
      const float *x = load_run(pa, ta, off[1], sa, len, bx), *y = load_run(pb, tb, off[2], sb, len, by);
      float *o = out_run(po, to, off[0], so, bo);
      binary_f32(op, x, y, o, len);
      store_run(po, to, off[0], so, len, o);
    }
  }
  return VOX_OK;
}
VOX_REGISTER_KERNEL(VOX_CPU, BINARY, cpu_binary)

/* ---- UNARY and UNARY_BACKWARD ----------------------------------------------------------------------------- */

#define VOX_SQRT_2_OVER_PI 0.7978845608028654f
#define VOX_INV_SQRT_2 0.7071067811865476f
#define VOX_INV_SQRT_2PI 0.3989422804014327f

static inline float sigmoidf(float x) { return 1.0f / (1.0f + expf(-x)); }

static void unary_f32(const vox_unary_params *p, const float *x, float *y, int64_t n) {
  float alpha = (float)p->alpha, beta = (float)p->beta;
  switch (p->op) {
    case VOX_UN_NEG: for (int64_t i = 0; i < n; i++) y[i] = -x[i]; break;
    case VOX_UN_EXP: for (int64_t i = 0; i < n; i++) y[i] = expf(x[i]); break;
    case VOX_UN_LOG: for (int64_t i = 0; i < n; i++) y[i] = logf(x[i]); break;
    case VOX_UN_SQRT: for (int64_t i = 0; i < n; i++) y[i] = sqrtf(x[i]); break;
    case VOX_UN_RSQRT: for (int64_t i = 0; i < n; i++) y[i] = 1.0f / sqrtf(x[i]); break;
    case VOX_UN_ABS: for (int64_t i = 0; i < n; i++) y[i] = fabsf(x[i]); break;
    case VOX_UN_SIGN: for (int64_t i = 0; i < n; i++) y[i] = (float)((x[i] > 0) - (x[i] < 0)); break;
    case VOX_UN_TANH: for (int64_t i = 0; i < n; i++) y[i] = tanhf(x[i]); break;
    case VOX_UN_SIGMOID: for (int64_t i = 0; i < n; i++) y[i] = sigmoidf(x[i]); break;
    case VOX_UN_RELU: for (int64_t i = 0; i < n; i++) y[i] = x[i] > 0 ? x[i] : 0.0f; break;
    case VOX_UN_GELU_ERF:
      for (int64_t i = 0; i < n; i++) y[i] = 0.5f * x[i] * (1.0f + vox_cpu_erf(x[i] * VOX_INV_SQRT_2));
      break;
    case VOX_UN_GELU_TANH:
      for (int64_t i = 0; i < n; i++) {
        float v = x[i];
        y[i] = 0.5f * v * (1.0f + tanhf(VOX_SQRT_2_OVER_PI * (v + 0.044715f * v * v * v)));
      }
      break;
    case VOX_UN_SILU: for (int64_t i = 0; i < n; i++) y[i] = x[i] * sigmoidf(x[i]); break;
    case VOX_UN_SQUARE: for (int64_t i = 0; i < n; i++) y[i] = x[i] * x[i]; break;
    case VOX_UN_RECIP: for (int64_t i = 0; i < n; i++) y[i] = 1.0f / x[i]; break;
    case VOX_UN_SIN: for (int64_t i = 0; i < n; i++) y[i] = sinf(x[i]); break;
    case VOX_UN_COS: for (int64_t i = 0; i < n; i++) y[i] = cosf(x[i]); break;
    case VOX_UN_AFFINE: for (int64_t i = 0; i < n; i++) y[i] = alpha * x[i] + beta; break;
    case VOX_UN_POW_SCALAR:
      if (p->alpha == 2.0) for (int64_t i = 0; i < n; i++) y[i] = x[i] * x[i];
      else for (int64_t i = 0; i < n; i++) y[i] = powf(x[i], alpha);
      break;
    case VOX_UN_CLAMP:
      for (int64_t i = 0; i < n; i++) {
        float v = x[i] < alpha ? alpha : x[i];
        y[i] = v > beta ? beta : v;
      }
      break;
  }
}

/* dx = f'(x) * dy. At kinks the derivative is the one PyTorch uses (relu'(0) = 0, |x|'(0) = 0, clamp passes
 * the gradient on the closed interval [lo, hi]). */
static void unary_backward_f32(const vox_unary_params *p, const float *x, const float *dy, float *dx, int64_t n) {
  float alpha = (float)p->alpha, beta = (float)p->beta;
  switch (p->op) {
    case VOX_UN_NEG: for (int64_t i = 0; i < n; i++) dx[i] = -dy[i]; break;
    case VOX_UN_EXP: for (int64_t i = 0; i < n; i++) dx[i] = expf(x[i]) * dy[i]; break;
    case VOX_UN_LOG: for (int64_t i = 0; i < n; i++) dx[i] = dy[i] / x[i]; break;
    case VOX_UN_SQRT: for (int64_t i = 0; i < n; i++) dx[i] = 0.5f * dy[i] / sqrtf(x[i]); break;
    case VOX_UN_RSQRT:
      for (int64_t i = 0; i < n; i++) {
        float r = 1.0f / sqrtf(x[i]);
        dx[i] = -0.5f * r * r * r * dy[i];
      }
      break;
    case VOX_UN_ABS: for (int64_t i = 0; i < n; i++) dx[i] = (float)((x[i] > 0) - (x[i] < 0)) * dy[i]; break;
    case VOX_UN_SIGN: for (int64_t i = 0; i < n; i++) dx[i] = 0.0f; break;
    case VOX_UN_TANH:
      for (int64_t i = 0; i < n; i++) {
        float t = tanhf(x[i]);
        dx[i] = (1.0f - t * t) * dy[i];
      }
      break;
    case VOX_UN_SIGMOID:
      for (int64_t i = 0; i < n; i++) {
        float s = sigmoidf(x[i]);
        dx[i] = s * (1.0f - s) * dy[i];
      }
      break;
    case VOX_UN_RELU: for (int64_t i = 0; i < n; i++) dx[i] = x[i] > 0 ? dy[i] : 0.0f; break;
    case VOX_UN_GELU_ERF:
      for (int64_t i = 0; i < n; i++) {
        float v = x[i];
        float cdf = 0.5f * (1.0f + vox_cpu_erf(v * VOX_INV_SQRT_2));
        float pdf = VOX_INV_SQRT_2PI * vox_cpu_exp_nonpos(-0.5f * v * v);
        dx[i] = (cdf + v * pdf) * dy[i];
      }
      break;
    case VOX_UN_GELU_TANH:
      for (int64_t i = 0; i < n; i++) {
        float v = x[i];
        float u = VOX_SQRT_2_OVER_PI * (v + 0.044715f * v * v * v), t = tanhf(u);
        float du = VOX_SQRT_2_OVER_PI * (1.0f + 3.0f * 0.044715f * v * v);
        dx[i] = (0.5f * (1.0f + t) + 0.5f * v * (1.0f - t * t) * du) * dy[i];
      }
      break;
    case VOX_UN_SILU:
      for (int64_t i = 0; i < n; i++) {
        float s = sigmoidf(x[i]);
        dx[i] = s * (1.0f + x[i] * (1.0f - s)) * dy[i];
      }
      break;
    case VOX_UN_SQUARE: for (int64_t i = 0; i < n; i++) dx[i] = 2.0f * x[i] * dy[i]; break;
    case VOX_UN_RECIP: for (int64_t i = 0; i < n; i++) dx[i] = -dy[i] / (x[i] * x[i]); break;
    case VOX_UN_SIN: for (int64_t i = 0; i < n; i++) dx[i] = cosf(x[i]) * dy[i]; break;
    case VOX_UN_COS: for (int64_t i = 0; i < n; i++) dx[i] = -sinf(x[i]) * dy[i]; break;
    case VOX_UN_AFFINE: for (int64_t i = 0; i < n; i++) dx[i] = alpha * dy[i]; break;
    case VOX_UN_POW_SCALAR:
      if (p->alpha == 2.0) for (int64_t i = 0; i < n; i++) dx[i] = 2.0f * x[i] * dy[i];
      else if (p->alpha == 0.0) for (int64_t i = 0; i < n; i++) dx[i] = 0.0f;
      else for (int64_t i = 0; i < n; i++) dx[i] = alpha * powf(x[i], alpha - 1.0f) * dy[i];
      break;
    case VOX_UN_CLAMP:
      for (int64_t i = 0; i < n; i++) dx[i] = x[i] >= alpha && x[i] <= beta ? dy[i] : 0.0f;
      break;
  }
}

static vox_status check_float_dtype(const char *k, const vox_tensor *t, const char *what) {
  char b1[96];
  if (!vox_dtype_is_float(t->dtype))
    return vox_errorf(VOX_ERR_DTYPE, "%s kernel: %s %s must be f32 or bf16", k, what,
                      vox_tensor_describe(t, b1, sizeof b1));
  return VOX_OK;
}

static vox_status cpu_unary(const vox_kernel_args *args) {
  const vox_unary_params *p = args->params;
  vox_tensor *out = args->out[0];
  const vox_tensor *x = args->in[0];
  VOX_TRY(check_same_shape("unary", out, x, "x"));
  VOX_TRY(check_float_dtype("unary", out, "output"));
  const vox_tensor *ops[2] = {out, x};
  vox_cpu_iter it;
  vox_cpu_iter_init(&it, out->ndim, out->shape, 2, ops);
  int64_t so = vox_cpu_iter_inner_stride(&it, 0), sx = vox_cpu_iter_inner_stride(&it, 1),
          tiles = vox_cpu_iter_tiles(&it);
  void *po = vox_tensor_data(out);
  const void *px = vox_tensor_data(x);
#pragma omp parallel for if (it.numel > VOX_CPU_PARALLEL_MIN / 4) num_threads(vox_num_threads())
  for (int64_t tile = 0; tile < tiles; tile++) {
    int64_t off[2];
    int64_t len = vox_cpu_iter_tile(&it, tile, off);
    float bx[TILE], bo[TILE];
    const float *xv = load_run(px, x->dtype, off[1], sx, len, bx);
    float *o = out_run(po, out->dtype, off[0], so, bo);
    unary_f32(p, xv, o, len);
    store_run(po, out->dtype, off[0], so, len, o);
  }
  return VOX_OK;
}
VOX_REGISTER_KERNEL(VOX_CPU, UNARY, cpu_unary)

static vox_status cpu_unary_backward(const vox_kernel_args *args) {
  const vox_unary_params *p = args->params;
  vox_tensor *dx = args->out[0];
  const vox_tensor *x = args->in[0], *dy = args->in[1];
  VOX_TRY(check_same_shape("unary_backward", dx, x, "x"));
  VOX_TRY(check_same_shape("unary_backward", dx, dy, "dy"));
  VOX_TRY(check_float_dtype("unary_backward", dx, "dx"));
  const vox_tensor *ops[3] = {dx, x, dy};
  vox_cpu_iter it;
  vox_cpu_iter_init(&it, dx->ndim, dx->shape, 3, ops);
  int64_t so = vox_cpu_iter_inner_stride(&it, 0), sx = vox_cpu_iter_inner_stride(&it, 1),
          sy = vox_cpu_iter_inner_stride(&it, 2), tiles = vox_cpu_iter_tiles(&it);
  void *po = vox_tensor_data(dx);
  const void *px = vox_tensor_data(x), *py = vox_tensor_data(dy);
#pragma omp parallel for if (it.numel > VOX_CPU_PARALLEL_MIN / 4) num_threads(vox_num_threads())
  for (int64_t tile = 0; tile < tiles; tile++) {
    int64_t off[3];
    int64_t len = vox_cpu_iter_tile(&it, tile, off);
    float bx[TILE], by[TILE], bo[TILE];
    const float *xv = load_run(px, x->dtype, off[1], sx, len, bx);
    const float *yv = load_run(py, dy->dtype, off[2], sy, len, by);
    float *o = out_run(po, dx->dtype, off[0], so, bo);
    unary_backward_f32(p, xv, yv, o, len);
    store_run(po, dx->dtype, off[0], so, len, o);
  }
  return VOX_OK;
}
VOX_REGISTER_KERNEL(VOX_CPU, UNARY_BACKWARD, cpu_unary_backward)

/* ---- WHERE ----------------------------------------------------------------------------------------------- */

static vox_status cpu_where(const vox_kernel_args *args) {
  vox_tensor *out = args->out[0];
  const vox_tensor *c = args->in[0], *a = args->in[1], *b = args->in[2];
  VOX_TRY(check_same_shape("where", out, c, "cond"));
  VOX_TRY(check_same_shape("where", out, a, "a"));
  VOX_TRY(check_same_shape("where", out, b, "b"));
  const vox_tensor *ops[4] = {out, c, a, b};
  vox_cpu_iter it;
  vox_cpu_iter_init(&it, out->ndim, out->shape, 4, ops);
  int64_t so = vox_cpu_iter_inner_stride(&it, 0), sc = vox_cpu_iter_inner_stride(&it, 1),
          sa = vox_cpu_iter_inner_stride(&it, 2), sb = vox_cpu_iter_inner_stride(&it, 3),
          tiles = vox_cpu_iter_tiles(&it);
  void *po = vox_tensor_data(out);
  const void *pc = vox_tensor_data(c), *pa = vox_tensor_data(a), *pb = vox_tensor_data(b);
  bool int_path = out->dtype == VOX_I32 && a->dtype == VOX_I32 && b->dtype == VOX_I32;
#pragma omp parallel for if (it.numel > VOX_CPU_PARALLEL_MIN) num_threads(vox_num_threads())
  for (int64_t tile = 0; tile < tiles; tile++) {
    int64_t off[4];
    int64_t len = vox_cpu_iter_tile(&it, tile, off);
    float bc[TILE];
    const float *cv = load_run(pc, c->dtype, off[1], sc, len, bc); /* nonzero (NaN included) is true */
    if (int_path) {
      int32_t ba[TILE], bb[TILE];
      const int32_t *av = load_run_i32(pa, off[2], sa, len, ba), *bv = load_run_i32(pb, off[3], sb, len, bb);
      int32_t *o = (int32_t *)po + off[0];
      for (int64_t i = 0; i < len; i++) o[i * so] = cv[i] != 0.0f ? av[i] : bv[i];
    } else {
      float ba[TILE], bb[TILE], bo[TILE];
      const float *av = load_run(pa, a->dtype, off[2], sa, len, ba), *bv = load_run(pb, b->dtype, off[3], sb, len, bb);
      float *o = out_run(po, out->dtype, off[0], so, bo);
      for (int64_t i = 0; i < len; i++) o[i] = cv[i] != 0.0f ? av[i] : bv[i];
      store_run(po, out->dtype, off[0], so, len, o);
    }
  }
  return VOX_OK;
}
VOX_REGISTER_KERNEL(VOX_CPU, WHERE, cpu_where)

/* ---- DROPOUT --------------------------------------------------------------------------------------------- */

/* Element i (row-major index in the contiguous output) is kept when uniform(seed, offset + i) >= p, and
 * scaled by 1/(1-p); the backward runs the same kernel on dy with the same params, so no mask is stored. */
static vox_status cpu_dropout(const vox_kernel_args *args) {
  const vox_dropout_params *p = args->params;
  vox_tensor *out = args->out[0];
  const vox_tensor *x = args->in[0];
  VOX_TRY(check_same_shape("dropout", out, x, "x"));
  VOX_TRY(check_float_dtype("dropout", out, "output"));
  if (!vox_tensor_is_contiguous(out))
    return vox_errorf(VOX_ERR_INVALID, "dropout kernel: the output must be contiguous (its index seeds the RNG)");
  const vox_tensor *ops[2] = {out, x};
  vox_cpu_iter it;
  vox_cpu_iter_init(&it, out->ndim, out->shape, 2, ops);
  int64_t sx = vox_cpu_iter_inner_stride(&it, 1), tiles = vox_cpu_iter_tiles(&it);
  void *po = vox_tensor_data(out);
  const void *px = vox_tensor_data(x);
  float prob = p->p, scale = p->p < 1.0f ? 1.0f / (1.0f - p->p) : 0.0f;
  uint64_t seed = p->seed, base = p->offset;
#pragma omp parallel for if (it.numel > VOX_CPU_PARALLEL_MIN / 8) num_threads(vox_num_threads())
  for (int64_t tile = 0; tile < tiles; tile++) {
    int64_t off[2];
    int64_t len = vox_cpu_iter_tile(&it, tile, off);
    float bx[TILE], bo[TILE];
    const float *xv = load_run(px, x->dtype, off[1], sx, len, bx);
    float *o = out_run(po, out->dtype, off[0], 1, bo);
    for (int64_t i = 0; i < len; i++) {
      bool keep = vox_rng_uniform_at(seed, base + (uint64_t)(off[0] + i)) >= prob;
      o[i] = keep ? xv[i] * scale : 0.0f;
    }
    store_run(po, out->dtype, off[0], 1, len, o);
  }
  return VOX_OK;
}
VOX_REGISTER_KERNEL(VOX_CPU, DROPOUT, cpu_dropout)

/* ---- SWIGLU ---------------------------------------------------------------------------------------------- */

static vox_status cpu_swiglu(const vox_kernel_args *args) {
  vox_tensor *out = args->out[0];
  const vox_tensor *g = args->in[0], *u = args->in[1];
  VOX_TRY(check_same_shape("swiglu", out, g, "gate"));
  VOX_TRY(check_same_shape("swiglu", out, u, "up"));
  VOX_TRY(check_float_dtype("swiglu", out, "output"));
  const vox_tensor *ops[3] = {out, g, u};
  vox_cpu_iter it;
  vox_cpu_iter_init(&it, out->ndim, out->shape, 3, ops);
  int64_t so = vox_cpu_iter_inner_stride(&it, 0), sg = vox_cpu_iter_inner_stride(&it, 1),
          su = vox_cpu_iter_inner_stride(&it, 2), tiles = vox_cpu_iter_tiles(&it);
  void *po = vox_tensor_data(out);
  const void *pg = vox_tensor_data(g), *pu = vox_tensor_data(u);
#pragma omp parallel for if (it.numel > VOX_CPU_PARALLEL_MIN / 4) num_threads(vox_num_threads())
  for (int64_t tile = 0; tile < tiles; tile++) {
    int64_t off[3];
    int64_t len = vox_cpu_iter_tile(&it, tile, off);
    float bg[TILE], bu[TILE], bo[TILE];
    const float *gv = load_run(pg, g->dtype, off[1], sg, len, bg), *uv = load_run(pu, u->dtype, off[2], su, len, bu);
    float *o = out_run(po, out->dtype, off[0], so, bo);
    for (int64_t i = 0; i < len; i++) o[i] = gv[i] * sigmoidf(gv[i]) * uv[i];
    store_run(po, out->dtype, off[0], so, len, o);
  }
  return VOX_OK;
}
VOX_REGISTER_KERNEL(VOX_CPU, SWIGLU, cpu_swiglu)

/* out = {dgate, dup}; both must be contiguous (they share the iteration of dgate). */
static vox_status cpu_swiglu_backward(const vox_kernel_args *args) {
  vox_tensor *dg = args->out[0], *du = args->out[1];
  const vox_tensor *g = args->in[0], *u = args->in[1], *dy = args->in[2];
  VOX_TRY(check_same_shape("swiglu_backward", dg, g, "gate"));
  VOX_TRY(check_same_shape("swiglu_backward", dg, u, "up"));
  VOX_TRY(check_same_shape("swiglu_backward", dg, dy, "dy"));
  VOX_TRY(check_same_shape("swiglu_backward", dg, du, "dup"));
  VOX_TRY(check_float_dtype("swiglu_backward", dg, "dgate"));
  VOX_TRY(check_float_dtype("swiglu_backward", du, "dup"));
  if (!vox_tensor_is_contiguous(dg) || !vox_tensor_is_contiguous(du))
    return vox_errorf(VOX_ERR_INVALID, "swiglu_backward kernel: dgate and dup must be contiguous");
  const vox_tensor *ops[4] = {dg, g, u, dy};
  vox_cpu_iter it;
  vox_cpu_iter_init(&it, dg->ndim, dg->shape, 4, ops);
  int64_t sg = vox_cpu_iter_inner_stride(&it, 1), su = vox_cpu_iter_inner_stride(&it, 2),
          sy = vox_cpu_iter_inner_stride(&it, 3), tiles = vox_cpu_iter_tiles(&it);
  void *pdg = vox_tensor_data(dg), *pdu = vox_tensor_data(du);
  const void *pg = vox_tensor_data(g), *pu = vox_tensor_data(u), *py = vox_tensor_data(dy);
#pragma omp parallel for if (it.numel > VOX_CPU_PARALLEL_MIN / 4) num_threads(vox_num_threads())
  for (int64_t tile = 0; tile < tiles; tile++) {
    int64_t off[4];
    int64_t len = vox_cpu_iter_tile(&it, tile, off);
    float bg[TILE], bu[TILE], by[TILE], bdg[TILE], bdu[TILE];
    const float *gv = load_run(pg, g->dtype, off[1], sg, len, bg), *uv = load_run(pu, u->dtype, off[2], su, len, bu);
    const float *yv = load_run(py, dy->dtype, off[3], sy, len, by);
    float *og = out_run(pdg, dg->dtype, off[0], 1, bdg), *ou = out_run(pdu, du->dtype, off[0], 1, bdu);
    for (int64_t i = 0; i < len; i++) {
      float s = sigmoidf(gv[i]), silu = gv[i] * s;
      float dsilu = s * (1.0f + gv[i] * (1.0f - s));
      float d = yv[i];
      og[i] = d * uv[i] * dsilu;
      ou[i] = d * silu;
    }
    store_run(pdg, dg->dtype, off[0], 1, len, og);
    store_run(pdu, du->dtype, off[0], 1, len, ou);
  }
  return VOX_OK;
}
VOX_REGISTER_KERNEL(VOX_CPU, SWIGLU_BACKWARD, cpu_swiglu_backward)
