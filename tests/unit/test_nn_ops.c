/* Forward values of the nn ops (norms, RoPE, attention, conv1d, conv_transpose1d) against naive references
 * written here and against PyTorch fixtures (tests/fixtures/nn_ops_ref.py); plus stability and bad-input errors. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/backend.h"
#include "vox_test.h"

/* ---- helpers ------------------------------------------------------------------------------------------- */

static vox_tensor *load_fixture(const char *name, vox_dtype dtype, int ndim, const int64_t *shape) {
  int64_t n = 1;
  for (int i = 0; i < ndim; i++) n *= shape[i];
  void *buf = malloc((size_t)n * 4);
  FILE *f = fopen(vt_fixture(name), "rb");
  cr_assert(f != NULL, "cannot open fixture %s", vt_fixture(name));
  size_t got = fread(buf, 4, (size_t)n, f);
  fclose(f);
  cr_assert(got == (size_t)n, "fixture %s: %zu of %lld values", name, got, (long long)n);
  vox_tensor *t = NULL;
  VT_OK(vox_tensor_from_host(dtype, VOX_CPU, ndim, shape, buf, &t));
  free(buf);
  return t;
}
#define FIX_F32(name, ...) load_fixture("nn_ops/" name, VOX_F32, VT_SHAPE(__VA_ARGS__))
#define FIX_I32(name, ...) load_fixture("nn_ops/" name, VOX_I32, VT_SHAPE(__VA_ARGS__))

static float *host(const vox_tensor *t) {
  float *b = malloc(sizeof(float) * (size_t)vox_tensor_numel(t));
  VT_OK(vox_tensor_read_f32(t, b));
  return b;
}

/* Checks a failing call's status and that its message mentions every given fragment. */
static void expect_error(vox_status st, vox_status want, const char *frag1, const char *frag2) {
  cr_assert(st == want, "expected %s, got %s (%s)", vox_status_name(want), vox_status_name(st), vox_last_error());
  cr_assert(strstr(vox_last_error(), frag1), "error '%s' does not mention '%s'", vox_last_error(), frag1);
  if (frag2) cr_assert(strstr(vox_last_error(), frag2), "error '%s' does not mention '%s'", vox_last_error(), frag2);
}

/* ---- norms --------------------------------------------------------------------------------------------- */

Test(nn_ops, norms_match_torch) {
  vt_mem_mark m = vt_mem_now();
  vox_tensor *x = FIX_F32("norm_x.f32", 3, 16), *w = FIX_F32("norm_w.f32", 16), *b = FIX_F32("norm_b.f32", 16);
  vox_tensor *ln = FIX_F32("layer_norm_out.f32", 3, 16), *rms = FIX_F32("rms_norm_out.f32", 3, 16), *y = NULL;
  VT_OK(vox_op_layer_norm(x, w, b, 1e-5f, &y));
  vt_assert_close(y, ln, 1e-5, 1e-5, "layer_norm vs torch");
  vox_tensor_drop(&y);
  VT_OK(vox_op_rms_norm(x, w, 1e-6f, &y));
  vt_assert_close(y, rms, 1e-5, 1e-5, "rms_norm vs torch");
  vox_tensor_drop(&y);
  vox_tensor *objs[] = {x, w, b, ln, rms};
  for (int i = 0; i < 5; i++) vox_tensor_release(objs[i]);
  vt_assert_mem_back_to(m, "norms");
}

Test(nn_ops, norms_without_affine_and_strided_input) {
  /* x^T is a non-contiguous view; rows of the transposed view are normalised. */
  vox_tensor *x = vt_randn(VT_SHAPE(6, 5), 3, 2.0f, false), *xt = NULL, *y = NULL, *y2 = NULL;
  VT_OK(vox_tensor_view_permute(x, (int[]){1, 0}, &xt));
  float *xv = host(x), ref_ln[30], ref_rms[30];
  for (int r = 0; r < 5; r++) {
    double s = 0, ss = 0, v = 0;
    for (int j = 0; j < 6; j++) s += xv[j * 5 + r], ss += (double)xv[j * 5 + r] * xv[j * 5 + r];
    double mu = s / 6;
    for (int j = 0; j < 6; j++) v += (xv[j * 5 + r] - mu) * (xv[j * 5 + r] - mu);
    for (int j = 0; j < 6; j++) {
      ref_ln[r * 6 + j] = (float)((xv[j * 5 + r] - mu) / sqrt(v / 6 + 1e-5));
      ref_rms[r * 6 + j] = (float)(xv[j * 5 + r] / sqrt(ss / 6 + 1e-5));
    }
  }
  VT_OK(vox_op_layer_norm(xt, NULL, NULL, 1e-5f, &y));
  vt_assert_close_f32(y, ref_ln, 1e-5, 1e-5, "layer_norm of a transposed view");
  VT_OK(vox_op_rms_norm(xt, NULL, 1e-5f, &y2));
  vt_assert_close_f32(y2, ref_rms, 1e-5, 1e-5, "rms_norm of a transposed view");
  free(xv);
  vox_tensor_release(x), vox_tensor_release(xt), vox_tensor_release(y), vox_tensor_release(y2);
}

Test(nn_ops, layer_norm_stable_for_large_means) {
  /* x = 1e4 + N(0,1): a one-pass E[x^2]-E[x]^2 in f32 loses every digit of the variance. */
  enum { R = 4, D = 512 };
  vox_tensor *n = vt_randn(VT_SHAPE(R, D), 11, 1.0f, false), *x = NULL, *y = NULL, *g = NULL;
  float *nv = host(n), *xv = malloc(sizeof(float) * R * D), *ref = malloc(sizeof(float) * R * D);
  for (int i = 0; i < R * D; i++) xv[i] = 1e4f + nv[i];
  for (int r = 0; r < R; r++) {
    double mu = 0, v = 0;
    for (int j = 0; j < D; j++) mu += xv[r * D + j];
    mu /= D;
    for (int j = 0; j < D; j++) v += (xv[r * D + j] - mu) * (xv[r * D + j] - mu);
    for (int j = 0; j < D; j++) ref[r * D + j] = (float)((xv[r * D + j] - mu) / sqrt(v / D + 1e-5));
  }
  x = vt_from_f32(VT_SHAPE(R, D), xv);
  x->requires_grad = true;
  VT_OK(vox_op_layer_norm(x, NULL, NULL, 1e-5f, &y));
  vt_assert_close_f32(y, ref, 2e-3, 1e-3, "layer_norm of 1e4 + N(0,1)");
  /* The gradient of sum(y) is zero (y has zero mean per row); a large-mean error would leak through. */
  vox_tensor *ones = NULL;
  VT_OK(vox_tensor_full(VOX_F32, VOX_CPU, VT_SHAPE(R, D), 1.0, &ones));
  VT_OK(vox_backward(y, ones));
  float *gv = host(x->grad), zeros[R * D] = {0};
  vt_assert_close_f32(x->grad, zeros, 1e-2, 0, "d sum(layer_norm(x)) / dx");
  /* rms_norm of the same input: every output is near 1. */
  vox_tensor *r = NULL;
  VT_OK(vox_op_rms_norm(x, NULL, 1e-6f, &r));
  float *rv = host(r);
  for (int i = 0; i < R * D; i++)
    cr_assert(fabsf(rv[i] - xv[i] / sqrtf(1e8f)) < 1e-3f, "rms_norm large mean element %d: %g", i, rv[i]);
  free(nv), free(xv), free(ref), free(gv), free(rv);
  vox_tensor_release(n), vox_tensor_release(x), vox_tensor_release(y), vox_tensor_release(g);
  vox_tensor_release(ones), vox_tensor_release(r);
}

Test(nn_ops, norm_bad_inputs) {
  vox_tensor *x = vt_randn(VT_SHAPE(2, 8), 1, 1, false), *w = vt_randn(VT_SHAPE(7), 2, 1, false), *y = NULL;
  expect_error(vox_op_rms_norm(x, w, 1e-6f, &y), VOX_ERR_SHAPE, "rms_norm", "f32[7]");
  cr_assert(y == NULL);
  expect_error(vox_op_layer_norm(x, NULL, w, 1e-6f, &y), VOX_ERR_SHAPE, "layer_norm", "bias");
  vox_tensor_release(x), vox_tensor_release(w);
}

/* ---- rope ---------------------------------------------------------------------------------------------- */

Test(nn_ops, rope_matches_hf) {
  vt_mem_mark m = vt_mem_now();
  vox_tensor *x = FIX_F32("rope_x.f32", 2, 3, 5, 8), *pos = FIX_I32("rope_pos.i32", 2, 5), *y = NULL;
  vox_tensor *full = FIX_F32("rope_full_out.f32", 2, 3, 5, 8), *part = FIX_F32("rope_partial_out.f32", 2, 3, 5, 8);
  VT_OK(vox_op_rope(x, pos, 10000.0f, 0, &y));
  vt_assert_close(y, full, 2e-5, 1e-4, "rope rotary_dim = D vs HF");
  vox_tensor_drop(&y);
  VT_OK(vox_op_rope(x, pos, 1000000.0f, 4, &y));
  vt_assert_close(y, part, 2e-5, 1e-4, "rope rotary_dim 4 of 8 vs HF");
  vox_tensor_drop(&y);
  /* 1-D positions [T] broadcast over the batch: batch row 0 with positions row 0 must match. */
  vox_tensor *x0 = NULL, *f0 = NULL;
  int32_t pv[10];
  VT_OK(vox_tensor_read_i32(pos, pv));
  vox_tensor *p1 = vt_from_i32(VT_SHAPE(5), pv);
  VT_OK(vox_tensor_view_slice(x, 0, 0, 1, 1, &x0));
  VT_OK(vox_tensor_view_slice(full, 0, 0, 1, 1, &f0));
  VT_OK(vox_op_rope(x0, p1, 10000.0f, 0, &y));
  vt_assert_close(y, f0, 2e-5, 1e-4, "rope with [T] positions");
  vox_tensor_drop(&y);
  vox_tensor *objs[] = {x, pos, full, part, p1, x0, f0};
  for (int i = 0; i < 7; i++) vox_tensor_release(objs[i]);
  vt_assert_mem_back_to(m, "rope");
}

Test(nn_ops, rope_bad_inputs) {
  vox_tensor *x = vt_randn(VT_SHAPE(1, 2, 3, 8), 1, 1, false), *y = NULL;
  vox_tensor *pos = vt_from_i32(VT_SHAPE(4), (int32_t[]){0, 1, 2, 3});
  expect_error(vox_op_rope(x, pos, 10000.0f, 0, &y), VOX_ERR_SHAPE, "rope", "i32[4]");
  vox_tensor *pos3 = vt_from_i32(VT_SHAPE(3), (int32_t[]){0, 1, 2});
  expect_error(vox_op_rope(x, pos3, 10000.0f, 5, &y), VOX_ERR_INVALID, "rope", "rotary_dim 5");
  vox_tensor_release(x), vox_tensor_release(pos), vox_tensor_release(pos3);
}

/* ---- attention ----------------------------------------------------------------------------------------- */

typedef struct attn_case {
  int B, Hq, Hkv, T, S, D, Dv;
  bool causal;
  int64_t offset, chunk;
  const int32_t *lens;  /* [B] or NULL */
  bool bias;            /* a [B, 1, T, S] bias */
} attn_case;

/* softmax(q k^T * scale + bias) v over the visible keys, written out with explicit loops in double. */
static void naive_attention(const attn_case *c, const float *q, const float *k, const float *v, const float *bias,
                            float scale, float *out) {
  double *p = malloc(sizeof(double) * (size_t)c->S);
  for (int b = 0; b < c->B; b++)
    for (int h = 0; h < c->Hq; h++)
      for (int t = 0; t < c->T; t++) {
        int hk = h / (c->Hq / c->Hkv);
        double m = -INFINITY;
        for (int s = 0; s < c->S; s++) {
          int64_t tp = t + c->offset;
          bool vis = !c->lens || s < c->lens[b];
          if (c->chunk > 0) vis = vis && s / c->chunk <= tp / c->chunk;
          else if (c->causal) vis = vis && s <= tp;
          p[s] = -INFINITY;
          if (!vis) continue;
          double dot = 0;
          for (int j = 0; j < c->D; j++)
            dot += (double)q[((b * c->Hq + h) * c->T + t) * c->D + j] * k[((b * c->Hkv + hk) * c->S + s) * c->D + j];
          p[s] = dot * scale + (bias ? bias[(b * c->T + t) * c->S + s] : 0);
          if (p[s] > m) m = p[s];
        }
        double sum = 0;
        for (int s = 0; s < c->S; s++) sum += p[s] == -INFINITY ? 0 : exp(p[s] - m);
        for (int j = 0; j < c->Dv; j++) {
          double o = 0;
          for (int s = 0; s < c->S && m > -INFINITY; s++)
            if (p[s] > -INFINITY) o += exp(p[s] - m) / sum * v[((b * c->Hkv + hk) * c->S + s) * c->Dv + j];
          out[((b * c->Hq + h) * c->T + t) * c->Dv + j] = (float)o;
        }
      }
  free(p);
}

static void check_attention_case(const attn_case *c, const char *what) {
  vox_tensor *q = vt_randn(VT_SHAPE(c->B, c->Hq, c->T, c->D), 21, 1.0f, false);
  vox_tensor *k = vt_randn(VT_SHAPE(c->B, c->Hkv, c->S, c->D), 22, 1.0f, false);
  vox_tensor *v = vt_randn(VT_SHAPE(c->B, c->Hkv, c->S, c->Dv), 23, 1.0f, false);
  vox_tensor *bias = c->bias ? vt_randn(VT_SHAPE(c->B, 1, c->T, c->S), 24, 1.0f, false) : NULL;
  vox_tensor *lens = c->lens ? vt_from_i32(VT_SHAPE(c->B), c->lens) : NULL, *o = NULL;
  vox_attention_mask mask = {.causal = c->causal, .causal_offset = c->offset, .chunk_size = c->chunk,
                             .kv_lens = lens, .bias = bias};
  VT_OK(vox_op_attention(q, k, v, &mask, 0.0f, &o));
  cr_assert(o->ndim == 4 && o->shape[0] == c->B && o->shape[1] == c->Hq && o->shape[2] == c->T &&
            o->shape[3] == c->Dv);
  float *qv = host(q), *kv = host(k), *vv = host(v), *bv = bias ? host(bias) : NULL;
  float *ref = malloc(sizeof(float) * (size_t)vox_tensor_numel(o));
  naive_attention(c, qv, kv, vv, bv, 1.0f / sqrtf((float)c->D), ref);
  vt_assert_close_f32(o, ref, 1e-5, 1e-4, what);
  free(qv), free(kv), free(vv), free(bv), free(ref);
  vox_tensor *objs[] = {q, k, v, bias, lens, o};
  for (int i = 0; i < 6; i++) vox_tensor_release(objs[i]);
}

Test(nn_ops, attention_masks_vs_naive) {
  vt_mem_mark m = vt_mem_now();
  /* T and S above the kernel's 64-row query block, so block edges are covered. */
  check_attention_case(&(attn_case){2, 2, 2, 70, 70, 16, 16, .causal = false}, "attention, no mask");
  check_attention_case(&(attn_case){2, 2, 2, 70, 70, 16, 8, .causal = true}, "attention, causal");
  check_attention_case(&(attn_case){1, 2, 1, 3, 80, 8, 8, .causal = true, .offset = 77},
                       "attention, causal with KV-cache offset");
  check_attention_case(&(attn_case){3, 2, 2, 9, 12, 8, 8, .lens = (int32_t[]){12, 5, 1}}, "attention, kv_lens");
  check_attention_case(&(attn_case){2, 2, 2, 67, 67, 8, 8, .chunk = 16}, "attention, chunk 16");
  check_attention_case(&(attn_case){2, 2, 2, 10, 20, 8, 8, .causal = true, .offset = 10, .chunk = 4},
                       "attention, chunk 4 with offset");
  check_attention_case(&(attn_case){2, 2, 2, 9, 11, 8, 8, .bias = true}, "attention, bias");
  check_attention_case(&(attn_case){2, 4, 2, 9, 11, 8, 5, .causal = true, .lens = (int32_t[]){11, 7}, .bias = true},
                       "attention, GQA + causal + kv_lens + bias");
  check_attention_case(&(attn_case){2, 8, 1, 5, 6, 8, 8, .causal = false}, "attention, multi-query (Hkv = 1)");
  vt_assert_mem_back_to(m, "attention cases");
}

Test(nn_ops, attention_fully_masked_rows_are_zero) {
  /* Batch row 1 has no valid keys; with causal offset -1, query 0 of row 0 sees nothing either. */
  vox_tensor *q = vt_randn(VT_SHAPE(2, 2, 3, 4), 1, 1, true), *k = vt_randn(VT_SHAPE(2, 2, 4, 4), 2, 1, true);
  vox_tensor *v = vt_randn(VT_SHAPE(2, 2, 4, 4), 3, 1, true), *lens = vt_from_i32(VT_SHAPE(2), (int32_t[]){4, 0});
  vox_attention_mask mask = {.causal = true, .causal_offset = -1, .kv_lens = lens};
  vox_tensor *o = NULL;
  VT_OK(vox_op_attention(q, k, v, &mask, 0, &o));
  float *ov = host(o);
  for (int i = 0; i < 2 * 2 * 3 * 4; i++) {
    bool dead = i >= 2 * 3 * 4 || (i / 4) % 3 == 0;
    cr_assert(isfinite(ov[i]), "element %d is not finite", i);
    if (dead) cr_assert(ov[i] == 0.0f, "fully masked row element %d is %g", i, ov[i]);
  }
  vox_tensor *g = vt_randn(VT_SHAPE(2, 2, 3, 4), 9, 1, false);
  VT_OK(vox_backward(o, g));
  float *dq = host(q->grad), *dk = host(k->grad), *dv = host(v->grad);
  for (int i = 0; i < 2 * 2 * 3 * 4; i++) {
    bool dead = i >= 2 * 3 * 4 || (i / 4) % 3 == 0;
    cr_assert(isfinite(dq[i]));
    if (dead) cr_assert(dq[i] == 0.0f, "dq of a fully masked row element %d is %g", i, dq[i]);
  }
  for (int i = 2 * 4 * 4; i < 2 * 2 * 4 * 4; i++)
    cr_assert(dk[i] == 0.0f && dv[i] == 0.0f, "dk/dv of the empty batch row element %d", i);
  free(ov), free(dq), free(dk), free(dv);
  vox_tensor *objs[] = {q, k, v, lens, o, g};
  for (int i = 0; i < 6; i++) vox_tensor_release(objs[i]);
}

Test(nn_ops, attention_matches_torch) {
  vt_mem_mark m = vt_mem_now();
  vox_tensor *q = FIX_F32("attn_q.f32", 2, 4, 5, 8), *k = FIX_F32("attn_k.f32", 2, 2, 7, 8);
  vox_tensor *v = FIX_F32("attn_v.f32", 2, 2, 7, 6), *bias = FIX_F32("attn_bias.f32", 2, 1, 5, 7);
  vox_tensor *lens = vt_from_i32(VT_SHAPE(2), (int32_t[]){7, 4}), *o = NULL, *ref = NULL;
  q->requires_grad = k->requires_grad = v->requires_grad = true;

  vox_attention_mask causal = {.causal = true, .causal_offset = 2};
  VT_OK(vox_op_attention(q, k, v, &causal, 0, &o));
  ref = FIX_F32("attn_causal_out.f32", 2, 4, 5, 6);
  vt_assert_close(o, ref, 1e-5, 1e-4, "attention causal offset 2 vs torch");
  vox_tensor *w = FIX_F32("attn_causal_w.f32", 2, 4, 5, 6);
  VT_OK(vox_backward(o, w));
  vox_tensor *dq = FIX_F32("attn_causal_dq.f32", 2, 4, 5, 8), *dk = FIX_F32("attn_causal_dk.f32", 2, 2, 7, 8),
             *dv = FIX_F32("attn_causal_dv.f32", 2, 2, 7, 6);
  vt_assert_close(q->grad, dq, 1e-5, 1e-4, "attention dq vs torch");
  vt_assert_close(k->grad, dk, 1e-5, 1e-4, "attention dk (GQA sum) vs torch");
  vt_assert_close(v->grad, dv, 1e-5, 1e-4, "attention dv (GQA sum) vs torch");
  vox_tensor_drop(&o), vox_tensor_drop(&ref);

  vox_no_grad_begin();
  vox_attention_mask pad = {.kv_lens = lens, .bias = bias};
  VT_OK(vox_op_attention(q, k, v, &pad, 0, &o));
  ref = FIX_F32("attn_pad_bias_out.f32", 2, 4, 5, 6);
  vt_assert_close(o, ref, 1e-5, 1e-4, "attention kv_lens + bias vs torch");
  vox_tensor_drop(&o), vox_tensor_drop(&ref);

  vox_attention_mask chunk = {.causal = true, .causal_offset = 2, .chunk_size = 3};
  VT_OK(vox_op_attention(q, k, v, &chunk, 0, &o));
  ref = FIX_F32("attn_chunk_out.f32", 2, 4, 5, 6);
  vt_assert_close(o, ref, 1e-5, 1e-4, "attention chunk 3 vs torch");
  vox_tensor_drop(&o), vox_tensor_drop(&ref);
  vox_no_grad_end();

  vox_tensor *objs[] = {q, k, v, bias, lens, w, dq, dk, dv};
  for (int i = 0; i < 9; i++) {
    vox_tensor_drop(&objs[i]->grad);
    vox_tensor_release(objs[i]);
  }
  vt_assert_mem_back_to(m, "attention vs torch");
}

Test(nn_ops, attention_strided_qkv) {
  /* q/k/v as permuted views of [B, T, H, D] (what a fused projection gives) must match contiguous inputs. */
  vox_tensor *qb = vt_randn(VT_SHAPE(2, 6, 4, 8), 5, 1, false), *kb = vt_randn(VT_SHAPE(2, 7, 2, 8), 6, 1, false);
  vox_tensor *vb = vt_randn(VT_SHAPE(2, 7, 2, 8), 7, 1, false), *q, *k, *v, *qc, *kc, *vc, *o1 = NULL, *o2 = NULL;
  const int perm[4] = {0, 2, 1, 3};
  VT_OK(vox_tensor_view_permute(qb, perm, &q));
  VT_OK(vox_tensor_view_permute(kb, perm, &k));
  VT_OK(vox_tensor_view_permute(vb, perm, &v));
  VT_OK(vox_tensor_clone(q, &qc));
  VT_OK(vox_tensor_clone(k, &kc));
  VT_OK(vox_tensor_clone(v, &vc));
  vox_attention_mask mask = {.causal = true, .causal_offset = 1};
  VT_OK(vox_op_attention(q, k, v, &mask, 0.3f, &o1));
  VT_OK(vox_op_attention(qc, kc, vc, &mask, 0.3f, &o2));
  vt_assert_close(o1, o2, 1e-6, 1e-5, "attention on strided views");
  vox_tensor *objs[] = {qb, kb, vb, q, k, v, qc, kc, vc, o1, o2};
  for (int i = 0; i < 11; i++) vox_tensor_release(objs[i]);
}

Test(nn_ops, attention_bad_inputs) {
  vox_tensor *q = vt_randn(VT_SHAPE(2, 3, 4, 8), 1, 1, false), *k = vt_randn(VT_SHAPE(2, 2, 5, 8), 2, 1, false);
  vox_tensor *v = vt_randn(VT_SHAPE(2, 2, 5, 8), 3, 1, false), *o = NULL;
  expect_error(vox_op_attention(q, k, v, NULL, 0, &o), VOX_ERR_SHAPE, "attention", "f32[2,3,4,8]");
  cr_assert(o == NULL);
  vox_tensor *q4 = vt_randn(VT_SHAPE(2, 4, 4, 8), 1, 1, false);
  vox_tensor *lens = vt_from_i32(VT_SHAPE(3), (int32_t[]){1, 2, 3});
  vox_attention_mask m1 = {.kv_lens = lens};
  expect_error(vox_op_attention(q4, k, v, &m1, 0, &o), VOX_ERR_SHAPE, "kv_lens", "i32[3]");
  vox_tensor *bias = vt_randn(VT_SHAPE(3, 5), 1, 1, false);
  vox_attention_mask m2 = {.bias = bias};
  expect_error(vox_op_attention(q4, k, v, &m2, 0, &o), VOX_ERR_SHAPE, "attention: bias", "f32[3,5]");
  vox_tensor *k6 = vt_randn(VT_SHAPE(2, 2, 5, 6), 2, 1, false);
  expect_error(vox_op_attention(q4, k6, v, NULL, 0, &o), VOX_ERR_SHAPE, "attention", "head dims");
  vox_tensor *objs[] = {q, k, v, q4, lens, bias, k6};
  for (int i = 0; i < 7; i++) vox_tensor_release(objs[i]);
}

/* ---- conv ---------------------------------------------------------------------------------------------- */

/* Direct loops for conv1d: y[b, co, lo] = sum_{ci in group, k} w[co, ci, k] * x[b, g*cig + ci, lo*s - p + k*d]. */
static void naive_conv1d(const float *x, const float *w, int B, int Cin, int L, int Cout, int K, int s, int p, int d,
                         int g, int Lout, float *y) {
  int cig = Cin / g, cog = Cout / g;
  for (int b = 0; b < B; b++)
    for (int co = 0; co < Cout; co++)
      for (int lo = 0; lo < Lout; lo++) {
        double acc = 0;
        int grp = co / cog;
        for (int ci = 0; ci < cig; ci++)
          for (int k = 0; k < K; k++) {
            int l = lo * s - p + k * d;
            if (l >= 0 && l < L) acc += (double)w[(co * cig + ci) * K + k] * x[(b * Cin + grp * cig + ci) * L + l];
          }
        y[(b * Cout + co) * Lout + lo] = (float)acc;
      }
}

/* conv_transpose1d by scattering: y[b, g*cog + co, l*s - p + k*d] += x[b, ci, l] * w[ci, co, k]. */
static void naive_conv_transpose1d(const float *x, const float *w, int B, int Cin, int L, int Cout, int K, int s,
                                   int p, int d, int g, int Lout, float *y) {
  int cig = Cin / g, cog = Cout / g;
  memset(y, 0, sizeof(float) * (size_t)(B * Cout * Lout));
  for (int b = 0; b < B; b++)
    for (int ci = 0; ci < Cin; ci++)
      for (int co = 0; co < cog; co++)
        for (int k = 0; k < K; k++)
          for (int l = 0; l < L; l++) {
            int lo = l * s - p + k * d, grp = ci / cig;
            if (lo >= 0 && lo < Lout) y[(b * Cout + grp * cog + co) * Lout + lo] += x[(b * Cin + ci) * L + l] * w[(ci * cog + co) * K + k];
          }
}

Test(nn_ops, conv1d_vs_direct_loops) {
  vt_mem_mark m = vt_mem_now();
  const int cfg[][9] = {/* B, Cin, L, Cout, K, s, p, d, g */
                        {2, 3, 17, 5, 3, 1, 1, 1, 1}, {3, 4, 20, 6, 5, 2, 2, 1, 2}, {2, 6, 16, 6, 3, 1, 2, 2, 3},
                        {1, 4, 9, 8, 1, 1, 0, 1, 1},  {9, 4, 33, 4, 4, 3, 0, 2, 4}, {2, 2, 5, 3, 5, 1, 0, 1, 1}};
  for (size_t c = 0; c < sizeof cfg / sizeof cfg[0]; c++) {
    const int *f = cfg[c];
    int B = f[0], Cin = f[1], L = f[2], Cout = f[3], K = f[4], s = f[5], p = f[6], d = f[7], g = f[8];
    int Lout = (L + 2 * p - d * (K - 1) - 1) / s + 1;
    vox_tensor *x = vt_randn(VT_SHAPE(B, Cin, L), 100 + c, 1, false), *w = vt_randn(VT_SHAPE(Cout, Cin / g, K), 200 + c, 1, false);
    vox_tensor *y = NULL, *yt = NULL;
    VT_OK(vox_op_conv1d(x, w, NULL, s, p, d, g, &y));
    cr_assert(y->shape[2] == Lout, "config %zu: length %lld vs %d", c, (long long)y->shape[2], Lout);
    float *xv = host(x), *wv = host(w), *ref = malloc(sizeof(float) * (size_t)(B * Cout * Lout));
    naive_conv1d(xv, wv, B, Cin, L, Cout, K, s, p, d, g, Lout, ref);
    char what[64];
    snprintf(what, sizeof what, "conv1d config %zu", c);
    vt_assert_close_f32(y, ref, 1e-5, 1e-5, what);
    /* The transpose with the same weight read as [Cin_t = Cout, Cout_t / g = Cin / g, K]. */
    VT_OK(vox_op_conv_transpose1d(y, w, NULL, s, p, 0, d, g, &yt));
    int Lt = (Lout - 1) * s - 2 * p + d * (K - 1) + 1;
    cr_assert(yt->shape[1] == Cin && yt->shape[2] == Lt);
    float *yv = host(y), *ref2 = malloc(sizeof(float) * (size_t)(B * Cin * Lt));
    naive_conv_transpose1d(yv, wv, B, Cout, Lout, Cin, K, s, p, d, g, Lt, ref2);
    snprintf(what, sizeof what, "conv_transpose1d config %zu", c);
    vt_assert_close_f32(yt, ref2, 1e-4, 1e-5, what);
    free(xv), free(wv), free(ref), free(yv), free(ref2);
    vox_tensor_release(x), vox_tensor_release(w), vox_tensor_release(y), vox_tensor_release(yt);
  }
  vt_assert_mem_back_to(m, "conv configs");
}

Test(nn_ops, conv_matches_torch) {
  vox_tensor *x = FIX_F32("conv_x.f32", 2, 4, 11), *w = FIX_F32("conv_w.f32", 6, 2, 3), *b = FIX_F32("conv_b.f32", 6);
  vox_tensor *ref = FIX_F32("conv_out.f32", 2, 6, 5), *y = NULL;
  VT_OK(vox_op_conv1d(x, w, b, 2, 1, 2, 2, &y));
  vt_assert_close(y, ref, 1e-5, 1e-5, "conv1d stride 2 pad 1 dil 2 groups 2 vs torch");
  vox_tensor *xt = FIX_F32("convt_x.f32", 2, 4, 5), *wt = FIX_F32("convt_w.f32", 4, 3, 3), *bt = FIX_F32("convt_b.f32", 6);
  vox_tensor *reft = FIX_F32("convt_out.f32", 2, 6, 10), *yt = NULL;
  VT_OK(vox_op_conv_transpose1d(xt, wt, bt, 2, 1, 1, 1, 2, &yt));
  vt_assert_close(yt, reft, 1e-5, 1e-5, "conv_transpose1d output_padding 1 groups 2 vs torch");
  vox_tensor *objs[] = {x, w, b, ref, y, xt, wt, bt, reft, yt};
  for (int i = 0; i < 10; i++) vox_tensor_release(objs[i]);
}

Test(nn_ops, conv_bad_inputs) {
  vox_tensor *x = vt_randn(VT_SHAPE(2, 6, 10), 1, 1, false), *w = vt_randn(VT_SHAPE(4, 4, 3), 2, 1, false), *y = NULL;
  expect_error(vox_op_conv1d(x, w, NULL, 1, 0, 1, 1, &y), VOX_ERR_SHAPE, "conv1d", "f32[4,4,3]");
  expect_error(vox_op_conv1d(x, w, NULL, 1, 0, 1, 4, &y), VOX_ERR_SHAPE, "conv1d", "groups 4");
  vox_tensor *w2 = vt_randn(VT_SHAPE(4, 3, 3), 2, 1, false), *b = vt_randn(VT_SHAPE(5), 3, 1, false);
  expect_error(vox_op_conv1d(x, w2, b, 1, 0, 1, 2, &y), VOX_ERR_SHAPE, "conv1d: bias", "f32[5]");
  expect_error(vox_op_conv1d(x, w2, NULL, 0, 0, 1, 2, &y), VOX_ERR_INVALID, "conv1d", "stride 0");
  vox_tensor *wl = vt_randn(VT_SHAPE(4, 3, 11), 2, 1, false);
  expect_error(vox_op_conv1d(x, wl, NULL, 1, 0, 1, 2, &y), VOX_ERR_SHAPE, "conv1d", "kernel span");
  vox_tensor *wt = vt_randn(VT_SHAPE(6, 2, 3), 2, 1, false);
  expect_error(vox_op_conv_transpose1d(x, wt, NULL, 2, 0, 2, 1, 2, &y), VOX_ERR_INVALID, "conv_transpose1d",
               "output_padding 2");
  expect_error(vox_op_conv_transpose1d(x, w, NULL, 2, 0, 0, 1, 1, &y), VOX_ERR_SHAPE, "conv_transpose1d",
               "f32[4,4,3]");
  cr_assert(y == NULL);
  vox_tensor *objs[] = {x, w, w2, b, wl, wt};
  for (int i = 0; i < 6; i++) vox_tensor_release(objs[i]);
}

/* ---- threaded paths ------------------------------------------------------------------------------------ */

typedef vox_status (*grads_fn)(vox_tensor *const *in, vox_tensor **out);

static vox_status attn_big(vox_tensor *const *in, vox_tensor **out) {
  vox_attention_mask m = {.causal = true, .causal_offset = 3, .kv_lens = in[3]};
  return vox_op_attention(in[0], in[1], in[2], &m, 0, out);
}
static vox_status conv_big(vox_tensor *const *in, vox_tensor **out) {
  return vox_op_conv1d(in[0], in[1], in[2], 2, 3, 2, 2, out);
}
static vox_status convt_big(vox_tensor *const *in, vox_tensor **out) {
  return vox_op_conv_transpose1d(in[0], in[1], in[2], 2, 1, 1, 1, 2, out);
}

static vox_status ln_big(vox_tensor *const *in, vox_tensor **out) {
  return vox_op_layer_norm(in[0], in[1], in[2], 1e-5f, out);
}
static vox_status rms_big(vox_tensor *const *in, vox_tensor **out) { return vox_op_rms_norm(in[0], in[1], 1e-6f, out); }

/* Output and input gradients with `threads` worker threads; results[i] owned by the caller. */
static void run_with_threads(int threads, grads_fn fn, int n, vox_tensor *const *in, vox_tensor **results) {
  vox_set_num_threads(threads);
  vox_tensor *o = NULL;
  VT_OK(fn(in, &o));
  vox_tensor *g = vt_randn(o->ndim, o->shape, 99, 1, false);
  VT_OK(vox_backward(o, g));
  results[0] = o;
  for (int i = 0; i < n; i++) {
    results[i + 1] = in[i]->grad;
    in[i]->grad = NULL;
  }
  vox_tensor_release(g);
}

static void check_threads_agree(const char *what, grads_fn fn, int n, vox_tensor *const *in) {
  int saved = vox_num_threads();
  vox_tensor *one[5] = {0}, *many[5] = {0};
  run_with_threads(1, fn, n, in, one);
  run_with_threads(saved > 1 ? saved : 2, fn, n, in, many);
  vox_set_num_threads(saved);
  for (int i = 0; i <= n; i++) {
    if (!one[i]) continue;
    char msg[96];
    snprintf(msg, sizeof msg, "%s: %s with 1 vs several threads", what, i ? "gradient" : "output");
    vt_assert_close(many[i], one[i], 1e-5, 1e-4, msg);
    vox_tensor_release(one[i]), vox_tensor_release(many[i]);
  }
}

Test(nn_ops, threaded_kernels_match_single_thread) {
  vt_mem_mark m = vt_mem_now();
  vox_tensor *attn[4] = {vt_randn(VT_SHAPE(3, 4, 130, 32), 1, 1, true), vt_randn(VT_SHAPE(3, 2, 133, 32), 2, 1, true),
                         vt_randn(VT_SHAPE(3, 2, 133, 16), 3, 1, true),
                         vt_from_i32(VT_SHAPE(3), (int32_t[]){133, 70, 0})};
  check_threads_agree("attention", attn_big, 4, attn);
  vox_tensor *conv[3] = {vt_randn(VT_SHAPE(8, 16, 300), 4, 1, true), vt_randn(VT_SHAPE(24, 8, 5), 5, 1, true),
                         vt_randn(VT_SHAPE(24), 6, 1, true)};
  check_threads_agree("conv1d", conv_big, 3, conv);
  vox_tensor *convt[3] = {vt_randn(VT_SHAPE(8, 16, 300), 7, 1, true), vt_randn(VT_SHAPE(16, 12, 4), 8, 1, true),
                          vt_randn(VT_SHAPE(24), 9, 1, true)};
  check_threads_agree("conv_transpose1d", convt_big, 3, convt);
  vox_tensor *norm[3] = {vt_randn(VT_SHAPE(96, 512), 10, 1, true), vt_randn(VT_SHAPE(512), 11, 1, true),
                         vt_randn(VT_SHAPE(512), 12, 1, true)};
  check_threads_agree("layer_norm", ln_big, 3, norm);
  check_threads_agree("rms_norm", rms_big, 2, norm);
  for (int i = 0; i < 3; i++) vox_tensor_release(norm[i]);
  for (int i = 0; i < 4; i++) vox_tensor_release(attn[i]);
  for (int i = 0; i < 3; i++) vox_tensor_release(conv[i]), vox_tensor_release(convt[i]);
  vt_assert_mem_back_to(m, "threaded kernels");
}
