/* Forward values of matmul/linear, indexing, softmax, losses and mel filters against naive references, torch
 * values and librosa-equivalent filters; bad inputs give errors naming the op and shapes. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/backend.h"
#include "core/kernel_params.h"
#include "vox_test.h"

static float *values(const vox_tensor *t) {
  float *v = malloc(sizeof(float) * (size_t)(vox_tensor_numel(t) + 1));
  VT_OK(vox_tensor_read_f32(t, v));
  return v;
}

/* Element [i, j] of a 2-D matrix (any strides) held in host values of a contiguous base. */
static float at2(const float *base, const vox_tensor *t, int64_t bo, int64_t i, int64_t j) {
  int n = t->ndim;
  return base[bo + i * t->strides[n - 2] + j * t->strides[n - 1]];
}

/* Naive reference for op(a) @ op(b) with broadcast batch dims; a and b are views of contiguous storages. */
static void check_matmul(vox_tensor *a, vox_tensor *b, bool ta, bool tb, const char *what) {
  vox_tensor *c = NULL;
  VT_OK(vox_op_matmul(a, b, ta, tb, &c));
  float *av = (float *)a->storage->data, *bv = (float *)b->storage->data, *cv = values(c);
  int n = c->ndim, nb = n - 2;
  int64_t M = c->shape[n - 2], N = c->shape[n - 1], K = ta ? a->shape[a->ndim - 2] : a->shape[a->ndim - 1];
  int64_t batch = 1;
  for (int d = 0; d < nb; d++) batch *= c->shape[d];
  double worst = 0;
  for (int64_t bi = 0; bi < batch; bi++) {
    int64_t ao = a->offset, bo = b->offset, rem = bi;
    for (int d = nb - 1; d >= 0; d--) {
      int64_t i = rem % c->shape[d];
      rem /= c->shape[d];
      int da = d - (nb - (a->ndim - 2)), db = d - (nb - (b->ndim - 2));
      if (da >= 0 && a->shape[da] > 1) ao += i * a->strides[da];
      if (db >= 0 && b->shape[db] > 1) bo += i * b->strides[db];
    }
    for (int64_t i = 0; i < M; i++)
      for (int64_t j = 0; j < N; j++) {
        double s = 0;
        for (int64_t k = 0; k < K; k++)
          s += (double)(ta ? at2(av, a, ao, k, i) : at2(av, a, ao, i, k)) *
               (double)(tb ? at2(bv, b, bo, j, k) : at2(bv, b, bo, k, j));
        double d = fabs(s - cv[(bi * M + i) * N + j]) / (1e-4 + 1e-4 * fabs(s));
        if (d > worst) worst = d;
      }
  }
  cr_assert(worst <= 1.0, "%s: matmul differs from the naive loop (ratio %g)", what, worst);
  free(cv);
  vox_tensor_release(c);
}

Test(linear_ops, matmul_matches_naive_loop) {
  vt_mem_mark mark = vt_mem_now();
  int64_t dims[][3] = {{1, 1, 1}, {3, 5, 7}, {17, 1, 33}, {65, 70, 3}, {2, 129, 31}};
  for (int s = 0; s < 5; s++) {
    int64_t M = dims[s][0], K = dims[s][1], N = dims[s][2];
    for (int t = 0; t < 4; t++) {
      bool ta = t & 1, tb = t & 2;
      vox_tensor *a = ta ? vt_randn(VT_SHAPE(K, M), 10 + s, 1, false) : vt_randn(VT_SHAPE(M, K), 10 + s, 1, false);
      vox_tensor *b = tb ? vt_randn(VT_SHAPE(N, K), 20 + s, 1, false) : vt_randn(VT_SHAPE(K, N), 20 + s, 1, false);
      char what[64];
      snprintf(what, sizeof what, "[%lld,%lld,%lld] ta=%d tb=%d", (long long)M, (long long)K, (long long)N, ta, tb);
      check_matmul(a, b, ta, tb, what);
      vox_tensor_release(a);
      vox_tensor_release(b);
    }
  }
  vt_assert_mem_back_to(mark, "matmul");
}

Test(linear_ops, matmul_batched_broadcast_and_strided) {
  vox_tensor *a = vt_randn(VT_SHAPE(3, 1, 5, 7), 1, 1, false), *b = vt_randn(VT_SHAPE(4, 7, 9), 2, 1, false);
  check_matmul(a, b, false, false, "broadcast [3,1,5,7] @ [4,7,9]");
  vox_tensor *bt = vt_randn(VT_SHAPE(4, 9, 7), 3, 1, false);
  check_matmul(a, bt, false, true, "broadcast with trans_b");
  /* Strided operands: a transposed view (column-major) and a view with a row step of 2 (neither dim unit). */
  vox_tensor *big = vt_randn(VT_SHAPE(2, 10, 12), 4, 1, false), *perm = NULL, *step = NULL;
  VT_OK(vox_tensor_view_permute(big, (int[]){0, 2, 1}, &perm)); /* [2, 12, 10] */
  vox_tensor *w = vt_randn(VT_SHAPE(10, 6), 5, 1, false);
  check_matmul(perm, w, false, false, "column-major a");
  VT_OK(vox_tensor_view_slice(big, 2, 0, 12, 2, &step)); /* [2, 10, 6] with column stride 2 */
  vox_tensor *w2 = vt_randn(VT_SHAPE(6, 4), 6, 1, false);
  check_matmul(step, w2, false, false, "column stride 2");
  check_matmul(w2, step, true, true, "column stride 2 as b^T");
  vox_tensor *row1 = NULL; /* a single row of a transposed view */
  VT_OK(vox_tensor_view_slice(perm, 1, 3, 4, 1, &row1));
  check_matmul(row1, w, false, false, "one strided row");
  vox_tensor *objs[] = {a, b, bt, big, perm, step, w, w2, row1};
  for (int i = 0; i < 9; i++) vox_tensor_release(objs[i]);
}

Test(linear_ops, matmul_bf16_inputs) {
  vox_tensor *a = vt_randn(VT_SHAPE(2, 5, 8), 1, 1, false), *b = vt_randn(VT_SHAPE(8, 3), 2, 1, false);
  vox_tensor *ah = NULL, *bh = NULL, *ref = NULL, *c = NULL, *ar = NULL, *br = NULL;
  VT_OK(vox_tensor_to(a, VOX_CPU, VOX_BF16, &ah));
  VT_OK(vox_tensor_to(b, VOX_CPU, VOX_BF16, &bh));
  VT_OK(vox_tensor_to(ah, VOX_CPU, VOX_F32, &ar)); /* the rounded values, as f32 */
  VT_OK(vox_tensor_to(bh, VOX_CPU, VOX_F32, &br));
  VT_OK(vox_op_matmul(ah, bh, false, false, &c));
  VT_OK(vox_op_matmul(ar, br, false, false, &ref));
  cr_assert_eq(c->dtype, VOX_BF16);
  vt_assert_close(c, ref, 1e-2, 1e-2, "bf16 matmul");
  vox_tensor *objs[] = {a, b, ah, bh, ref, c, ar, br};
  for (int i = 0; i < 8; i++) vox_tensor_release(objs[i]);
}

Test(linear_ops, linear_with_bias_matches_naive) {
  vox_tensor *x = vt_randn(VT_SHAPE(2, 3, 5), 1, 1, false), *w = vt_randn(VT_SHAPE(4, 5), 2, 1, false);
  vox_tensor *b = vt_randn(VT_SHAPE(4), 3, 1, false), *y = NULL;
  VT_OK(vox_op_linear(x, w, b, &y));
  cr_assert(y->ndim == 3 && y->shape[2] == 4);
  float *xv = vox_tensor_f32(x), *wv = vox_tensor_f32(w), *bv = vox_tensor_f32(b), ref[24];
  for (int r = 0; r < 6; r++)
    for (int o = 0; o < 4; o++) {
      double s = bv[o];
      for (int i = 0; i < 5; i++) s += xv[r * 5 + i] * wv[o * 5 + i];
      ref[r * 4 + o] = (float)s;
    }
  vt_assert_close_f32(y, ref, 1e-5, 1e-5, "linear");
  vox_tensor_release(x);
  vox_tensor_release(w);
  vox_tensor_release(b);
  vox_tensor_release(y);
}

Test(linear_ops, softmax_and_log_softmax_values) {
  vox_tensor *x = vt_randn(VT_SHAPE(2, 3, 4), 7, 2, false), *s = NULL, *ls = NULL;
  VT_OK(vox_op_softmax(x, 1, &s));
  VT_OK(vox_op_log_softmax(x, 1, &ls));
  float *xv = vox_tensor_f32(x), ref[24], lref[24];
  for (int i = 0; i < 2; i++)
    for (int k = 0; k < 4; k++) {
      double m = -INFINITY, z = 0;
      for (int j = 0; j < 3; j++) m = fmax(m, xv[i * 12 + j * 4 + k]);
      for (int j = 0; j < 3; j++) z += exp(xv[i * 12 + j * 4 + k] - m);
      for (int j = 0; j < 3; j++) {
        ref[i * 12 + j * 4 + k] = (float)(exp(xv[i * 12 + j * 4 + k] - m) / z);
        lref[i * 12 + j * 4 + k] = (float)(xv[i * 12 + j * 4 + k] - m - log(z));
      }
    }
  vt_assert_close_f32(s, ref, 1e-6, 1e-5, "softmax dim 1");
  vt_assert_close_f32(ls, lref, 1e-6, 1e-5, "log_softmax dim 1");
  vox_tensor_release(x);
  vox_tensor_release(s);
  vox_tensor_release(ls);
}

Test(linear_ops, softmax_and_cross_entropy_stable_for_huge_logits) {
  float big[8] = {1e4f, -1e4f, 0.0f, 1e4f, -1e4f, -1e4f, -1e4f, 1e4f - 1.0f};
  vox_tensor *x = vt_from_f32(VT_SHAPE(2, 4), big), *s = NULL, *ls = NULL, *ce = NULL;
  x->requires_grad = true;
  VT_OK(vox_op_softmax(x, -1, &s));
  VT_OK(vox_op_log_softmax(x, -1, &ls));
  float *sv = values(s), *lv = values(ls);
  for (int i = 0; i < 8; i++) cr_assert(isfinite(sv[i]) && isfinite(lv[i]), "element %d not finite", i);
  cr_assert_float_eq(sv[0], 0.5f, 1e-6);
  cr_assert_float_eq(lv[1], -2e4f - logf(2.0f), 1.0f);
  vox_tensor *t = vt_from_i32(VT_SHAPE(2), (int32_t[]){1, 3});
  VT_OK(vox_op_cross_entropy(x, t, -100, 0.1f, &ce));
  double loss;
  VT_OK(vox_tensor_item(ce, &loss));
  cr_assert(isfinite(loss) && loss > 1e3, "cross-entropy %g", loss);
  VT_OK(vox_backward(ce, NULL));
  float *g = values(x->grad);
  for (int i = 0; i < 8; i++) cr_assert(isfinite(g[i]), "gradient %d not finite", i);
  free(sv);
  free(lv);
  free(g);
  vox_tensor *objs[] = {x, s, ls, ce, t};
  for (int i = 0; i < 5; i++) vox_tensor_release(objs[i]);
}

Test(linear_ops, cross_entropy_hand_values) {
  /* Two equal logits: -log(1/2). With smoothing 0.2 and V = 2 the loss is still log 2 (all -log p_v equal). */
  vox_tensor *x = vt_from_f32(VT_SHAPE(1, 2), (float[]){3.0f, 3.0f}), *t = vt_from_i32(VT_SHAPE(1), (int32_t[]){1});
  vox_tensor *ce = NULL;
  double v;
  VT_OK(vox_op_cross_entropy(x, t, -1, 0.0f, &ce));
  VT_OK(vox_tensor_item(ce, &v));
  cr_assert_float_eq(v, log(2.0), 1e-6);
  vox_tensor_drop(&ce);
  /* logits [0, ln 3]: p = [1/4, 3/4]; target 0 -> ln 4; smoothing 0.5: 0.5 ln 4 + 0.5 (ln 4 + ln 4 - ln 3) / 2. */
  vox_tensor *x2 = vt_from_f32(VT_SHAPE(1, 2), (float[]){0.0f, (float)log(3.0)});
  VT_OK(vox_op_cross_entropy(x2, t, 1, 0.0f, &ce)); /* the only row is ignored: 0 */
  VT_OK(vox_tensor_item(ce, &v));
  cr_assert_float_eq(v, 0.0, 1e-9);
  vox_tensor_drop(&ce);
  vox_tensor *t0 = vt_from_i32(VT_SHAPE(1), (int32_t[]){0});
  VT_OK(vox_op_cross_entropy(x2, t0, -100, 0.5f, &ce));
  VT_OK(vox_tensor_item(ce, &v));
  cr_assert_float_eq(v, 0.5 * log(4.0) + 0.25 * (2 * log(4.0) - log(3.0)), 1e-6);
  vox_tensor *objs[] = {x, t, ce, x2, t0};
  for (int i = 0; i < 5; i++) vox_tensor_release(objs[i]);
}

/* Reference values from PyTorch 2.x:
 *   import torch
 *   logits = torch.tensor([[1.5, -0.3, 0.2, 2.0, -1.0], [0.0, 0.5, -2.0, 1.0, 3.0],
 *                          [-1.0, -1.5, 0.25, 0.75, 0.1], [2.5, 0.0, 0.0, -0.5, 1.25]], requires_grad=True)
 *   t = torch.tensor([3, 4, -100, 0])
 *   for eps in (0.0, 0.1):
 *       logits.grad = None
 *       l = torch.nn.functional.cross_entropy(logits, t, ignore_index=-100, label_smoothing=eps)
 *       l.backward(); print(eps, l.item(), logits.grad.flatten().tolist())
 */
static const float ce_logits[20] = {1.5f, -0.3f, 0.2f, 2.0f, -1.0f, 0.0f,  0.5f, -2.0f, 1.0f,  3.0f,
                                    -1.0f, -1.5f, 0.25f, 0.75f, 0.1f, 2.5f, 0.0f, 0.0f,  -0.5f, 1.25f};
static const float ce_grad_eps0[20] = {
    0.1051977127790451f, 0.017389066517353058f, 0.028669722378253937f, -0.15989165008068085f,
    0.008635153993964195f, 0.013027003966271877f, 0.021477898582816124f, 0.0017630127258598804f,
    0.03541106730699539f, -0.0716789960861206f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, -0.11117951571941376f,
    0.018235497176647186f, 0.018235497176647186f, 0.011060388758778572f, 0.06364814192056656f};
static const float ce_grad_eps01[20] = {
    0.09853103756904602f, 0.010722397826611996f, 0.02200305461883545f, -0.1332249641418457f,
    0.0019684864673763514f, 0.006360336672514677f, 0.014811229892075062f, -0.004903653636574745f,
    0.028744399547576904f, -0.04501232132315636f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, -0.0845128521323204f,
    0.011568828485906124f, 0.011568828485906124f, 0.00439372006803751f, 0.056981462985277176f};

Test(linear_ops, cross_entropy_matches_torch) {
  vt_mem_mark mark = vt_mem_now();
  float eps[2] = {0.0f, 0.1f};
  double want[2] = {0.4337310492992401, 0.6293976902961731};
  const float *grads[2] = {ce_grad_eps0, ce_grad_eps01};
  vox_tensor *t = vt_from_i32(VT_SHAPE(4), (int32_t[]){3, 4, -100, 0});
  for (int k = 0; k < 2; k++) {
    vox_tensor *x = vt_from_f32(VT_SHAPE(4, 5), ce_logits), *ce = NULL;
    x->requires_grad = true;
    VT_OK(vox_op_cross_entropy(x, t, -100, eps[k], &ce));
    double v;
    VT_OK(vox_tensor_item(ce, &v));
    cr_assert_float_eq(v, want[k], 1e-6, "eps %g: loss %.9g vs torch %.9g", eps[k], v, want[k]);
    VT_OK(vox_backward(ce, NULL));
    vt_assert_close_f32(x->grad, grads[k], 1e-7, 1e-5, "cross-entropy gradient vs torch");
    vox_tensor_release(ce);
    vox_tensor_release(x);
  }
  vox_tensor_release(t);
  vt_assert_mem_back_to(mark, "cross-entropy");
}

Test(linear_ops, indexing_forward_values) {
  vox_tensor *w = vt_randn(VT_SHAPE(5, 3), 1, 1, false), *ids = vt_from_i32(VT_SHAPE(2, 2), (int32_t[]){4, 0, 4, 2});
  vox_tensor *e = NULL;
  VT_OK(vox_op_embedding(w, ids, &e));
  float *wv = vox_tensor_f32(w), *ev = values(e);
  int32_t idv[4] = {4, 0, 4, 2};
  for (int i = 0; i < 4; i++)
    for (int d = 0; d < 3; d++) cr_assert_eq(ev[i * 3 + d], wv[idv[i] * 3 + d]);
  free(ev);
  /* gather / scatter_add along dim 1 of a [2, 3] tensor (torch docs' example layout). */
  vox_tensor *x = vt_from_f32(VT_SHAPE(2, 3), (float[]){1, 2, 3, 4, 5, 6});
  vox_tensor *idx = vt_from_i32(VT_SHAPE(2, 2), (int32_t[]){0, 0, 2, 1}), *g = NULL, *s = NULL;
  VT_OK(vox_op_gather(x, 1, idx, &g));
  vt_assert_close_f32(g, (float[]){1, 1, 6, 5}, 0, 0, "gather");
  vox_tensor *src = vt_from_f32(VT_SHAPE(2, 3), (float[]){10, 20, 30, 40, 50, 60});
  VT_OK(vox_op_scatter_add(x, 1, idx, src, &s));
  vt_assert_close_f32(s, (float[]){31, 2, 3, 4, 55, 46}, 0, 0, "scatter_add");
  /* pairwise squared distances against the direct formula */
  vox_tensor *px = vt_randn(VT_SHAPE(7, 5), 2, 1, false), *pc = vt_randn(VT_SHAPE(4, 5), 3, 1, false), *d = NULL;
  VT_OK(vox_op_pairwise_sqdist(px, pc, &d));
  float *xv = vox_tensor_f32(px), *cv = vox_tensor_f32(pc), ref[28];
  for (int n = 0; n < 7; n++)
    for (int k = 0; k < 4; k++) {
      double acc = 0;
      for (int j = 0; j < 5; j++) acc += (xv[n * 5 + j] - cv[k * 5 + j]) * (double)(xv[n * 5 + j] - cv[k * 5 + j]);
      ref[n * 4 + k] = (float)acc;
    }
  vt_assert_close_f32(d, ref, 1e-4, 1e-4, "pairwise_sqdist");
  vox_tensor *same = NULL; /* distance of a point set to itself: exactly >= 0 on the diagonal */
  VT_OK(vox_op_pairwise_sqdist(px, px, &same));
  float *sv = values(same);
  for (int n = 0; n < 7; n++) cr_assert(sv[n * 7 + n] >= 0.0f && sv[n * 7 + n] < 1e-4f);
  free(sv);
  vox_tensor *objs[] = {w, ids, e, x, idx, g, s, src, px, pc, d, same};
  for (int i = 0; i < 12; i++) vox_tensor_release(objs[i]);
}

/* Reads one case of tests/fixtures/mel_filters_ref.txt (written by mel_filters_ref.py). */
static float *read_mel_case(const char *name, int *sr, int *n_fft, int *n_mels, float *fmin, float *fmax,
                            int *slaney, char *kind, int *count) {
  FILE *f = fopen(vt_fixture("mel_filters_ref.txt"), "r");
  cr_assert(f, "cannot open %s", vt_fixture("mel_filters_ref.txt"));
  char nm[64];
  while (fscanf(f, "%63s %d %d %d %f %f %d %15s %d", nm, sr, n_fft, n_mels, fmin, fmax, slaney, kind, count) == 9) {
    float *v = malloc(sizeof(float) * (size_t)*count);
    for (int i = 0; i < *count; i++) cr_assert(fscanf(f, "%f", &v[i]) == 1);
    if (!strcmp(nm, name)) {
      fclose(f);
      return v;
    }
    free(v);
  }
  fclose(f);
  cr_assert_fail("mel case %s not in the fixture", name);
  return NULL;
}

Test(linear_ops, mel_filters_match_librosa) {
  const char *cases[] = {"slaney_small", "htk_small", "whisper80"};
  for (int c = 0; c < 3; c++) {
    int sr, n_fft, n_mels, slaney, count;
    float f_lo, f_hi;
    char kind[16];
    float *ref = read_mel_case(cases[c], &sr, &n_fft, &n_mels, &f_lo, &f_hi, &slaney, kind, &count);
    vox_tensor *m = NULL;
    VT_OK(vox_mel_filters_new(sr, n_fft, n_mels, f_lo, f_hi, slaney, &m));
    cr_assert(m->shape[0] == n_mels && m->shape[1] == n_fft / 2 + 1);
    float *mv = values(m);
    if (!strcmp(kind, "full")) {
      vt_assert_close_f32(m, ref, 1e-6, 1e-4, cases[c]);
    } else {
      int nf = n_fft / 2 + 1;
      for (int r = 0; r < n_mels; r++) {
        double sum = 0, mx = 0;
        for (int k = 0; k < nf; k++) {
          sum += mv[r * nf + k];
          mx = fmax(mx, mv[r * nf + k]);
        }
        cr_assert(fabs(sum - ref[r]) <= 1e-6 + 1e-4 * fabs(ref[r]), "%s row %d sum %g vs %g", cases[c], r, sum, ref[r]);
        cr_assert(fabs(mx - ref[n_mels + r]) <= 1e-6 + 1e-4 * ref[n_mels + r], "%s row %d max", cases[c], r);
      }
    }
    /* The filterbank op is spec @ filters^T. */
    vox_tensor *spec = vt_uniform(VT_SHAPE(2, n_fft / 2 + 1), 3, 0, 1, false), *mel = NULL;
    VT_OK(vox_op_mel_filterbank(spec, m, &mel));
    cr_assert(mel->ndim == 2 && mel->shape[1] == n_mels);
    float *sp = vox_tensor_f32(spec), *me = values(mel);
    int nf = n_fft / 2 + 1;
    for (int r = 0; r < n_mels; r++) {
      double acc = 0;
      for (int k = 0; k < nf; k++) acc += sp[nf + k] * (double)mv[r * nf + k];
      cr_assert(fabs(acc - me[n_mels + r]) <= 1e-5 + 1e-4 * fabs(acc), "mel_filterbank %s row %d", cases[c], r);
    }
    free(me);
    free(mv);
    free(ref);
    vox_tensor_release(spec);
    vox_tensor_release(mel);
    vox_tensor_release(m);
  }
}

#define EXPECT_ERROR(expr, code, ...)                                                                        \
  do {                                                                                                     \
    vox_status st_ = (expr);                                                                               \
    cr_assert_eq(st_, code, "%s gave %s (%s)", #expr, vox_status_name(st_), vox_last_error());             \
    const char *needles_[] = {__VA_ARGS__};                                                                \
    for (size_t i_ = 0; i_ < sizeof needles_ / sizeof *needles_; i_++)                                     \
      cr_assert(strstr(vox_last_error(), needles_[i_]), "error '%s' lacks '%s'", vox_last_error(), needles_[i_]); \
  } while (0)

Test(linear_ops, bad_inputs_give_clear_errors) {
  vt_mem_mark mark = vt_mem_now();
  vox_tensor *a = vt_randn(VT_SHAPE(2, 3), 1, 1, false), *b = vt_randn(VT_SHAPE(4, 5), 2, 1, false), *out = NULL;
  EXPECT_ERROR(vox_op_matmul(a, b, false, false, &out), VOX_ERR_SHAPE, "matmul", "f32[2,3]", "f32[4,5]", "inner dims 3 != 4");
  cr_assert_null(out);
  vox_tensor *b3 = vt_randn(VT_SHAPE(2, 3, 5), 3, 1, false), *a3 = vt_randn(VT_SHAPE(3, 2, 3), 4, 1, false);
  EXPECT_ERROR(vox_op_matmul(a3, b3, false, false, &out), VOX_ERR_SHAPE, "matmul", "f32[3,2,3]", "broadcast");
  vox_tensor *ints = vt_from_i32(VT_SHAPE(3, 2), (int32_t[]){1, 2, 3, 4, 5, 6});
  EXPECT_ERROR(vox_op_matmul(a, ints, false, false, &out), VOX_ERR_DTYPE, "matmul", "i32[3,2]");
  EXPECT_ERROR(vox_op_linear(a, b, NULL, &out), VOX_ERR_SHAPE, "linear", "f32[2,3]", "f32[4,5]");
  EXPECT_ERROR(vox_op_softmax(ints, -1, &out), VOX_ERR_DTYPE, "softmax", "i32[3,2]");
  EXPECT_ERROR(vox_op_softmax(a, 2, &out), VOX_ERR_INDEX, "softmax", "dim 2");

  vox_tensor *w = vt_randn(VT_SHAPE(5, 4), 5, 1, false);
  vox_tensor *ids = vt_from_i32(VT_SHAPE(2, 2), (int32_t[]){0, 1, 7, 2});
  EXPECT_ERROR(vox_op_embedding(w, ids, &out), VOX_ERR_INDEX, "embedding", "id 7", "position 2", "[0, 5)", "f32[5,4]");
  cr_assert_null(out);
  EXPECT_ERROR(vox_op_embedding(w, a, &out), VOX_ERR_DTYPE, "embedding", "f32[2,3]");

  vox_tensor *logits = vt_randn(VT_SHAPE(3, 4), 6, 1, false);
  vox_tensor *tgt = vt_from_i32(VT_SHAPE(3), (int32_t[]){0, 9, -100});
  EXPECT_ERROR(vox_op_cross_entropy(logits, tgt, -100, 0.0f, &out), VOX_ERR_INDEX, "cross_entropy", "target 9",
               "row 1", "f32[3,4]");
  vox_tensor *tgt2 = vt_from_i32(VT_SHAPE(2), (int32_t[]){0, 1});
  EXPECT_ERROR(vox_op_cross_entropy(logits, tgt2, -100, 0.0f, &out), VOX_ERR_SHAPE, "cross_entropy", "i32[2]");
  EXPECT_ERROR(vox_op_cross_entropy(logits, logits, -100, 0.0f, &out), VOX_ERR_DTYPE, "cross_entropy");

  vox_tensor *gidx = vt_from_i32(VT_SHAPE(2, 1), (int32_t[]){0, 3});
  EXPECT_ERROR(vox_op_gather(a, 1, gidx, &out), VOX_ERR_INDEX, "gather", "index 3", "dim 1");
  EXPECT_ERROR(vox_op_scatter_add(a, 1, gidx, a, &out), VOX_ERR_INDEX, "scatter_add", "index 3");
  EXPECT_ERROR(vox_op_pairwise_sqdist(a, b, &out), VOX_ERR_SHAPE, "pairwise_sqdist", "f32[2,3]", "f32[4,5]");
  cr_assert_null(out);
  vox_tensor *objs[] = {a, b, b3, a3, ints, w, ids, logits, tgt, tgt2, gidx};
  for (int i = 0; i < 11; i++) vox_tensor_release(objs[i]);
  vt_assert_mem_back_to(mark, "error paths");
}

Test(linear_ops, matmul_kernel_sums_into_broadcast_output) {
  /* An output batch dim of stride 0 receives the sum over that dim; beta applies once (here: 2 * old). */
  vox_tensor *a = vt_randn(VT_SHAPE(3, 4, 5), 1, 1, false), *b = vt_randn(VT_SHAPE(3, 5, 2), 2, 1, false);
  vox_tensor *full = NULL, *c = vt_randn(VT_SHAPE(4, 2), 3, 1, false), *view = NULL;
  VT_OK(vox_op_matmul(a, b, false, false, &full));
  float *fv = values(full), ref[8], *cv = vox_tensor_f32(c);
  for (int i = 0; i < 8; i++) ref[i] = 2 * cv[i] + fv[i] + fv[8 + i] + fv[16 + i];
  VT_OK(vox_tensor_view(c, 3, (int64_t[]){3, 4, 2}, (int64_t[]){0, 2, 1}, 0, &view));
  vox_matmul_params p = {.alpha = 1.0f, .beta = 2.0f};
  vox_kernel_args args = {.n_in = 2, .n_out = 1, .in = {a, b}, .out = {view}, .params = &p};
  VT_OK(vox_kernel_run("test", VOX_K_MATMUL, &args));
  vt_assert_close_f32(c, ref, 1e-5, 1e-5, "summed output");
  free(fv);
  vox_tensor *objs[] = {a, b, full, c, view};
  for (int i = 0; i < 5; i++) vox_tensor_release(objs[i]);
}

/* Forward + backward of every op here returns memory and autograd nodes to the baseline. */
static void run_and_free(vox_tensor *y, vox_tensor **leaves, int n) {
  vox_tensor *s = NULL;
  VT_OK(vox_op_sum(y, 0, NULL, false, &s));
  VT_OK(vox_backward(s, NULL));
  vox_tensor_release(s);
  vox_tensor_release(y);
  for (int i = 0; i < n; i++) {
    cr_assert(leaves[i]->grad, "leaf %d got no gradient", i);
    vox_tensor_drop(&leaves[i]->grad);
  }
}

Test(linear_ops, backward_frees_everything) {
  vox_tensor *a = vt_randn(VT_SHAPE(2, 3, 4), 1, 1, true), *b = vt_randn(VT_SHAPE(4, 5), 2, 1, true);
  vox_tensor *bb = vt_randn(VT_SHAPE(3, 1, 4, 5), 3, 1, true), *bias = vt_randn(VT_SHAPE(5), 4, 1, true);
  vox_tensor *w = vt_randn(VT_SHAPE(5, 4), 5, 1, true), *ids = vt_from_i32(VT_SHAPE(3), (int32_t[]){1, 1, 4});
  vox_tensor *idx = vt_from_i32(VT_SHAPE(2, 3, 2), (int32_t[]){0, 3, 1, 1, 2, 0, 3, 3, 0, 1, 2, 2});
  vox_tensor *cb = vt_randn(VT_SHAPE(3, 4), 7, 1, true);
  vox_tensor *src = vt_randn(VT_SHAPE(2, 3, 2), 6, 1, true), *tg = vt_from_i32(VT_SHAPE(2, 3), (int32_t[]){0, 3, -1, 2, 2, 1});
  vt_mem_mark mark = vt_mem_now();
  vox_tensor *y = NULL;
  VT_OK(vox_op_matmul(a, b, false, false, &y));
  run_and_free(y, (vox_tensor *[]){a, b}, 2);
  VT_OK(vox_op_matmul(a, bb, false, false, &y)); /* broadcast both ways: the sum_to path */
  run_and_free(y, (vox_tensor *[]){a, bb}, 2);
  VT_OK(vox_op_linear(a, w, bias, &y));
  run_and_free(y, (vox_tensor *[]){a, w, bias}, 3);
  VT_OK(vox_op_embedding(w, ids, &y));
  run_and_free(y, (vox_tensor *[]){w}, 1);
  VT_OK(vox_op_gather(a, 2, idx, &y));
  run_and_free(y, (vox_tensor *[]){a}, 1);
  VT_OK(vox_op_scatter_add(a, 2, idx, src, &y));
  run_and_free(y, (vox_tensor *[]){a, src}, 2);
  VT_OK(vox_op_pairwise_sqdist(w, cb, &y));
  run_and_free(y, (vox_tensor *[]){w, cb}, 2);
  VT_OK(vox_op_softmax(a, 1, &y));
  run_and_free(y, (vox_tensor *[]){a}, 1);
  VT_OK(vox_op_log_softmax(a, -1, &y));
  run_and_free(y, (vox_tensor *[]){a}, 1);
  VT_OK(vox_op_cross_entropy(a, tg, -1, 0.1f, &y));
  run_and_free(y, (vox_tensor *[]){a}, 1);
  VT_OK(vox_op_mse_loss(a, src, &y) == VOX_OK ? VOX_ERR_STATE : VOX_OK); /* shapes differ: an error */
  VT_OK(vox_op_l1_loss(b, w, &y) == VOX_OK ? VOX_ERR_STATE : VOX_OK);
  vt_assert_mem_back_to(mark, "forward + backward");
  vox_tensor *objs[] = {a, b, bb, bias, w, ids, idx, src, tg, cb};
  for (int i = 0; i < 10; i++) vox_tensor_release(objs[i]);
}

Test(linear_ops, bf16_softmax_cross_entropy_embedding) {
  vox_tensor *x = vt_randn(VT_SHAPE(3, 6), 1, 2, false), *xh = NULL, *xr = NULL;
  VT_OK(vox_tensor_to(x, VOX_CPU, VOX_BF16, &xh));
  VT_OK(vox_tensor_to(xh, VOX_CPU, VOX_F32, &xr));
  vox_tensor *s = NULL, *sr = NULL, *ce = NULL, *cer = NULL, *e = NULL, *er = NULL;
  VT_OK(vox_op_softmax(xh, -1, &s));
  VT_OK(vox_op_softmax(xr, -1, &sr));
  cr_assert_eq(s->dtype, VOX_BF16);
  vt_assert_close(s, sr, 4e-3, 1e-2, "bf16 softmax");
  vox_tensor *t = vt_from_i32(VT_SHAPE(3), (int32_t[]){5, 0, 2});
  VT_OK(vox_op_cross_entropy(xh, t, -100, 0.1f, &ce));
  VT_OK(vox_op_cross_entropy(xr, t, -100, 0.1f, &cer));
  vt_assert_close(ce, cer, 1e-5, 1e-5, "bf16 cross-entropy (f32 statistics)");
  vox_tensor *ids = vt_from_i32(VT_SHAPE(2), (int32_t[]){2, 0});
  VT_OK(vox_op_embedding(xh, ids, &e));
  VT_OK(vox_op_embedding(xr, ids, &er));
  vt_assert_close(e, er, 0, 0, "bf16 embedding");
  vox_tensor *objs[] = {x, xh, xr, s, sr, ce, cer, e, er, t, ids};
  for (int i = 0; i < 11; i++) vox_tensor_release(objs[i]);
}
