/* Times the CPU attention forward and backward at the CPU benchmark's shape (batch 8, seq 256, d_model 256,
 * 4 heads, causal) and conv1d at a Whisper-like front-end shape. Usage: bench_attention [iterations] */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "core/autograd.h"
#include "core/ops.h"
#include "core/rng.h"

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static vox_tensor *randn(int ndim, const int64_t *shape, uint64_t seed) {
  vox_tensor *t = NULL;
  vox_rng rng = vox_rng_make(seed);
  if (vox_tensor_empty(VOX_F32, VOX_CPU, ndim, shape, &t) != VOX_OK || vox_rng_normal_(&rng, t, 0.0, 1.0) != VOX_OK) {
    fprintf(stderr, "bench: %s\n", vox_last_error());
    exit(1);
  }
  t->requires_grad = true;
  return t;
}

#define CHECK(expr)                                              \
  do {                                                           \
    if ((expr) != VOX_OK) {                                      \
      fprintf(stderr, "bench: %s: %s\n", #expr, vox_last_error()); \
      return 1;                                                  \
    }                                                            \
  } while (0)

int main(int argc, char **argv) {
  int iters = argc > 1 ? atoi(argv[1]) : 10;
  const int64_t qs[4] = {8, 4, 256, 64};
  vox_tensor *q = randn(4, qs, 1), *k = randn(4, qs, 2), *v = randn(4, qs, 3), *g = randn(4, qs, 4);
  vox_attention_mask mask = {.causal = true};
  double tf = 0, tb = 0;
  for (int i = 0; i <= iters; i++) {
    vox_tensor *o = NULL;
    double t0 = now();
    CHECK(vox_op_attention(q, k, v, &mask, 0, &o));
    double t1 = now();
    CHECK(vox_backward(o, g));
    double t2 = now();
    if (i > 0) tf += t1 - t0, tb += t2 - t1; /* iteration 0 warms up */
    vox_tensor_release(o);
    vox_zero_grad((vox_tensor *[]){q, k, v}, 3);
  }
  printf("attention causal B8 H4 T256 D64: forward %.2f ms, backward %.2f ms\n", 1e3 * tf / iters, 1e3 * tb / iters);

  const int64_t xs[3] = {8, 80, 3000}, ws[3] = {256, 80, 3};
  vox_tensor *x = randn(3, xs, 5), *w = randn(3, ws, 6);
  double cf = 0, cb = 0;
  for (int i = 0; i <= iters; i++) {
    vox_tensor *y = NULL;
    double t0 = now();
    CHECK(vox_op_conv1d(x, w, NULL, 1, 1, 1, 1, &y));
    double t1 = now();
    vox_tensor *gy = NULL;
    CHECK(vox_tensor_full(VOX_F32, VOX_CPU, y->ndim, y->shape, 1.0, &gy));
    double t2 = now();
    CHECK(vox_backward(y, gy));
    double t3 = now();
    if (i > 0) cf += t1 - t0, cb += t3 - t2;
    vox_tensor_release(y);
    vox_tensor_release(gy);
    vox_zero_grad((vox_tensor *[]){x, w}, 2);
  }
  printf("conv1d B8 80->256 K3 L3000: forward %.2f ms, backward %.2f ms\n", 1e3 * cf / iters, 1e3 * cb / iters);
  vox_tensor *all[] = {q, k, v, g, x, w};
  for (int i = 0; i < 6; i++) vox_tensor_release(all[i]);
  return 0;
}
