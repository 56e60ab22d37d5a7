/* Implementation of the shared test helpers, notably the finite-difference gradient checker.
 * The checker reduces each op's output against fixed random weights so that every output element counts. */
#include "vox_test.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/rng.h"

static vox_tensor *make_random(int ndim, const int64_t *shape, uint64_t seed, bool normal, float a, float b,
                               bool requires_grad) {
  vox_tensor *t = NULL;
  VT_OK(vox_tensor_empty(VOX_F32, VOX_CPU, ndim, shape, &t));
  vox_rng rng = vox_rng_make(seed);
  if (normal) VT_OK(vox_rng_normal_(&rng, t, 0.0, a));
  else VT_OK(vox_rng_uniform_(&rng, t, a, b));
  t->requires_grad = requires_grad;
  return t;
}

vox_tensor *vt_randn(int ndim, const int64_t *shape, uint64_t seed, float scale, bool requires_grad) {
  return make_random(ndim, shape, seed, true, scale, 0, requires_grad);
}
vox_tensor *vt_uniform(int ndim, const int64_t *shape, uint64_t seed, float lo, float hi, bool requires_grad) {
  return make_random(ndim, shape, seed, false, lo, hi, requires_grad);
}

vox_tensor *vt_from_f32(int ndim, const int64_t *shape, const float *data) {
  vox_tensor *t = NULL;
  VT_OK(vox_tensor_from_host(VOX_F32, VOX_CPU, ndim, shape, data, &t));
  return t;
}
vox_tensor *vt_from_i32(int ndim, const int64_t *shape, const int32_t *data) {
  vox_tensor *t = NULL;
  VT_OK(vox_tensor_from_host(VOX_I32, VOX_CPU, ndim, shape, data, &t));
  return t;
}

static float *read_all(const vox_tensor *t) {
  int64_t n = vox_tensor_numel(t);
  float *buf = malloc(sizeof(float) * (size_t)(n ? n : 1));
  VT_OK(vox_tensor_read_f32(t, buf));
  return buf;
}

static double ratio_of(const float *a, const float *b, int64_t n, double atol, double rtol, int64_t *where) {
  double worst = 0;
  *where = -1;
  for (int64_t i = 0; i < n; i++) {
    double d = fabs((double)a[i] - (double)b[i]), lim = atol + rtol * fabs((double)b[i]);
    double r = isnan(d) ? INFINITY : d / lim;
    if (r > worst || (*where < 0 && r == INFINITY)) {
      worst = r;
      *where = i;
    }
  }
  return worst;
}

double vt_close_ratio(const vox_tensor *a, const vox_tensor *b, double atol, double rtol) {
  float *x = read_all(a), *y = read_all(b);
  int64_t where;
  double r = ratio_of(x, y, vox_tensor_numel(a), atol, rtol, &where);
  free(x);
  free(y);
  return r;
}

void vt_assert_close_f32(const vox_tensor *a, const float *expected, double atol, double rtol, const char *what) {
  float *x = read_all(a);
  int64_t where, n = vox_tensor_numel(a);
  double r = ratio_of(x, expected, n, atol, rtol, &where);
  float got = where >= 0 ? x[where] : 0, want = where >= 0 ? expected[where] : 0;
  free(x);
  cr_assert(r <= 1.0, "%s: element %lld is %.7g, expected %.7g (atol %g, rtol %g)", what, (long long)where,
            got, want, atol, rtol);
}

void vt_assert_close(const vox_tensor *a, const vox_tensor *b, double atol, double rtol, const char *what) {
  char b1[96], b2[96];
  cr_assert(vox_tensor_same_shape(a, b), "%s: shape %s vs %s", what, vox_tensor_describe(a, b1, sizeof b1),
            vox_tensor_describe(b, b2, sizeof b2));
  float *y = read_all(b);
  vt_assert_close_f32(a, y, atol, rtol, what);
  free(y);
}

static double weighted_sum(const vox_tensor *out, const float *w) {
  float *v = read_all(out);
  double s = 0;
  for (int64_t i = 0, n = vox_tensor_numel(out); i < n; i++) s += (double)v[i] * (double)w[i];
  free(v);
  return s;
}

void vt_gradcheck(const char *name, vt_fn fn, void *ctx, int n_inputs, vox_tensor *const *inputs,
                  const vt_gradcheck_opts *opts) {
  double eps = opts && opts->eps > 0 ? opts->eps : 1e-2;
  double atol = opts && opts->atol > 0 ? opts->atol : 2e-3;
  double rtol = opts && opts->rtol > 0 ? opts->rtol : 2e-2;
  for (int i = 0; i < n_inputs; i++) {
    cr_assert((inputs[i]->device == VOX_CPU && inputs[i]->dtype == VOX_F32 && vox_tensor_is_contiguous(inputs[i])) ||
                  !inputs[i]->requires_grad,
              "%s: gradcheck input %d must be a contiguous CPU f32 tensor", name, i);
    vox_tensor_drop(&inputs[i]->grad);
  }
  /* Analytic gradients. */
  vox_tensor *out = NULL;
  VT_OK(fn(ctx, inputs, &out));
  cr_assert(out->requires_grad, "%s: output does not require grad (no autograd node recorded)", name);
  vox_tensor *w = vt_randn(out->ndim, out->shape, 777, 1.0f, false);
  float *wv = read_all(w);
  VT_OK(vox_backward(out, w));
  vox_tensor_release(out);
  vox_tensor_release(w);

  vox_no_grad_begin();
  for (int i = 0; i < n_inputs; i++) {
    vox_tensor *x = inputs[i];
    if (!x->requires_grad) continue;
    cr_assert(x->grad != NULL, "%s: input %d received no gradient", name, i);
    float *g = read_all(x->grad), *xv = vox_tensor_f32(x);
    int64_t n = vox_tensor_numel(x);
    for (int64_t j = 0; j < n; j++) {
      float saved = xv[j];
      vox_tensor *o = NULL;
      xv[j] = (float)(saved + eps);
      VT_OK(fn(ctx, inputs, &o));
      double lp = weighted_sum(o, wv);
      vox_tensor_drop(&o);
      xv[j] = (float)(saved - eps);
      VT_OK(fn(ctx, inputs, &o));
      double lm = weighted_sum(o, wv);
      vox_tensor_drop(&o);
      xv[j] = saved;
      double numeric = (lp - lm) / (2 * eps), analytic = g[j];
      double lim = atol + rtol * fabs(numeric);
      cr_assert(fabs(analytic - numeric) <= lim,
                "%s: d/d input %d [element %lld]: autograd %.6g vs finite difference %.6g", name, i,
                (long long)j, analytic, numeric);
    }
    free(g);
  }
  vox_no_grad_end();
  free(wv);
}

vt_mem_mark vt_mem_now(void) {
  return (vt_mem_mark){.bytes = vox_memory_live_bytes(VOX_CPU), .nodes = vox_autograd_live_nodes()};
}

void vt_assert_mem_back_to(vt_mem_mark m, const char *what) {
  size_t now = vox_memory_live_bytes(VOX_CPU);
  long nodes = vox_autograd_live_nodes();
  cr_assert(now == m.bytes, "%s: %zd bytes still live (%zu before, %zu after)", what, (ssize_t)(now - m.bytes),
            m.bytes, now);
  cr_assert(nodes == m.nodes, "%s: %ld autograd nodes still live", what, nodes - m.nodes);
}

const char *vt_fixture(const char *name) {
  static _Thread_local char path[1024];
  snprintf(path, sizeof path, "%s/%s", VOX_TEST_FIXTURES, name);
  return path;
}

/* Fetches the tokenizer (cached after the first run) with the project's script; Criterion runs each test
 * in its own process, so this runs once per test (milliseconds once cached, fast failure when offline). */
const char *vt_qwen_tokenizer_path(void) {
  static char path[4096];
  static bool tried;
  if (tried) return path[0] ? path : NULL;
  tried = true;
  const char *src = getenv("VOX_SOURCE_DIR");
  char cmd[4200];
  snprintf(cmd, sizeof cmd, "bash '%s/data_tools/fetch_qwen_tokenizer.sh' 2>&1", src ? src : VOX_SOURCE_DIR);
  FILE *p = popen(cmd, "r");
  if (!p) return NULL;
  char line[4096] = "";
  while (fgets(line, sizeof line, p)) {}
  int rc = pclose(p);
  line[strcspn(line, "\n")] = '\0';
  if (rc != 0 || access(line, R_OK) != 0) {
    cr_log_warn("fetch_qwen_tokenizer.sh failed: %s", line);
    return NULL;
  }
  snprintf(path, sizeof path, "%s", line);
  return path;
}

vox_status vt_lm_new(const vox_qwen2_config *cfg, uint64_t seed, vt_lm **out) {
  vt_lm *l = calloc(1, sizeof *l);
  if (!l) return vox_errorf(VOX_ERR_NOMEM, "vt_lm: out of memory");
  vox_rng rng = vox_rng_make(seed);
  vox_status st = vox_params_new(&l->params);
  if (st == VOX_OK) st = vox_qwen2_init(&l->m, l->params, "", cfg, &rng);
  if (st != VOX_OK) {
    vox_params_free(l->params);
    free(l);
    l = NULL;
  }
  *out = l;
  return st;
}

void vt_lm_free(vt_lm *l) {
  if (!l) return;
  vox_qwen2_release(&l->m);
  vox_params_free(l->params);
  free(l);
}
