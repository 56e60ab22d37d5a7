/* vox_op_ctc_loss against PyTorch (tests/fixtures/ctc/golden.json, from make_golden.py): per-row losses and the
 * logits gradient of sum(w * loss), plus the edge cases torch leaves undefined and the op's error messages. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vox_test.h"

static cJSON *load_golden(void) {
  FILE *f = fopen(vt_fixture("ctc/golden.json"), "rb");
  cr_assert(f, "cannot open %s", vt_fixture("ctc/golden.json"));
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *buf = malloc((size_t)n + 1);
  cr_assert(fread(buf, 1, (size_t)n, f) == (size_t)n);
  buf[n] = 0;
  fclose(f);
  cJSON *j = cJSON_Parse(buf);
  free(buf);
  cr_assert(j, "golden.json does not parse");
  return j;
}

static int64_t jint(const cJSON *c, const char *k) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(c, k);
  cr_assert(cJSON_IsNumber(v), "golden: %s missing", k);
  return (int64_t)v->valuedouble;
}

/* An array field as floats (n entries expected). */
static float *jfloats(const cJSON *c, const char *k, int64_t n) {
  const cJSON *a = cJSON_GetObjectItemCaseSensitive(c, k);
  cr_assert(cJSON_IsArray(a) && cJSON_GetArraySize(a) == n, "golden: %s should hold %lld values", k, (long long)n);
  float *v = malloc(sizeof(float) * (size_t)(n ? n : 1));
  int64_t i = 0;
  const cJSON *e;
  cJSON_ArrayForEach(e, a) v[i++] = (float)e->valuedouble;
  return v;
}

static int32_t *jints(const cJSON *c, const char *k, int64_t n) {
  float *f = jfloats(c, k, n);
  int32_t *v = malloc(sizeof(int32_t) * (size_t)(n ? n : 1));
  for (int64_t i = 0; i < n; i++) v[i] = (int32_t)f[i];
  free(f);
  return v;
}

Test(ctc, matches_torch_loss_and_gradient) {
  cJSON *root = load_golden();
  const cJSON *cases = cJSON_GetObjectItemCaseSensitive(root, "cases"), *c;
  cr_assert(cJSON_GetArraySize(cases) >= 3);
  cJSON_ArrayForEach(c, cases) {
    const char *name = cJSON_GetObjectItemCaseSensitive(c, "name")->valuestring;
    int64_t B = jint(c, "B"), T = jint(c, "T"), C = jint(c, "C"), S = jint(c, "S");
    int32_t blank = (int32_t)jint(c, "blank");
    float *x = jfloats(c, "logits", B * T * C), *w = jfloats(c, "weights", B), *loss = jfloats(c, "loss", B),
          *grad = jfloats(c, "grad", B * T * C);
    int32_t *tg = jints(c, "targets", B * S), *il = jints(c, "input_lens", B), *tl = jints(c, "target_lens", B);
    vt_mem_mark mark = vt_mem_now();
    vox_tensor *logits = vt_from_f32(VT_SHAPE(B, T, C), x), *targets = vt_from_i32(VT_SHAPE(B, S), tg),
               *in_lens = vt_from_i32(VT_SHAPE(B), il), *tg_lens = vt_from_i32(VT_SHAPE(B), tl),
               *wt = vt_from_f32(VT_SHAPE(B), w), *out = NULL;
    logits->requires_grad = true;
    VT_OK(vox_op_ctc_loss(logits, targets, in_lens, tg_lens, blank, &out));
    cr_assert(out->ndim == 1 && out->shape[0] == B && out->dtype == VOX_F32, "%s: loss must be f32 [B]", name);
    char what[128];
    snprintf(what, sizeof what, "%s: per-row loss", name);
    vt_assert_close_f32(out, loss, 1e-5, 1e-5, what);
    VT_OK(vox_backward(out, wt));
    cr_assert(logits->grad, "%s: no gradient", name);
    snprintf(what, sizeof what, "%s: d sum(w * loss) / d logits", name);
    vt_assert_close_f32(logits->grad, grad, 1e-5, 1e-5, what);
    vox_tensor_release(out);
    vox_tensor_release(logits);
    vox_tensor_release(targets);
    vox_tensor_release(in_lens);
    vox_tensor_release(tg_lens);
    vox_tensor_release(wt);
    vt_assert_mem_back_to(mark, name);
    free(x);
    free(w);
    free(loss);
    free(grad);
    free(tg);
    free(il);
    free(tl);
  }
  cJSON_Delete(root);
}

/* Torch reads uninitialised memory for input length 0; vox defines it: with no labels the only path is the empty
 * one (loss 0), with labels the row is infeasible (loss 0 by zero_infinity). Either way no gradient. A single
 * frame with no labels gives -log softmax(blank). */
Test(ctc, zero_length_rows_and_single_frame) {
  vox_tensor *logits = vt_randn(VT_SHAPE(3, 2, 4), 5, 1.0f, true);
  vox_tensor *targets = vt_from_i32(VT_SHAPE(3, 1), (int32_t[]){2, 1, 0});
  vox_tensor *il = vt_from_i32(VT_SHAPE(3), (int32_t[]){0, 0, 1}), *tl = vt_from_i32(VT_SHAPE(3), (int32_t[]){0, 1, 0});
  vox_tensor *out = NULL;
  VT_OK(vox_op_ctc_loss(logits, targets, il, tl, 3, &out));
  float l[3], x[24];
  VT_OK(vox_tensor_read_f32(out, l));
  VT_OK(vox_tensor_read_f32(logits, x));
  double m = -INFINITY, s = 0;
  for (int c = 0; c < 4; c++) m = fmax(m, x[16 + c]);
  for (int c = 0; c < 4; c++) s += exp(x[16 + c] - m);
  double expect = -(x[16 + 3] - (m + log(s)));
  cr_assert(l[0] == 0.0f && l[1] == 0.0f, "rows with no frames: loss %g %g, expected 0 0", l[0], l[1]);
  cr_assert(fabs(l[2] - expect) < 1e-5, "single frame, no labels: loss %g, expected %g", l[2], expect);
  vox_tensor *ones = vt_from_f32(VT_SHAPE(3), (float[]){1, 1, 1});
  VT_OK(vox_backward(out, ones));
  vox_tensor_release(ones);
  float g[24];
  VT_OK(vox_tensor_read_f32(logits->grad, g));
  for (int i = 0; i < 16; i++) cr_assert(g[i] == 0.0f, "grad[%d] = %g, expected 0 (no frames)", i, g[i]);
  for (int i = 20; i < 24; i++) cr_assert(g[i] == 0.0f, "grad[%d] = %g, expected 0 (frame past input_len)", i, g[i]);
  double sum = 0;
  for (int c = 0; c < 4; c++) sum += g[16 + c];
  cr_assert(fabs(sum) < 1e-6 && g[16 + 3] < 0, "single frame gradient is softmax - onehot(blank)");
  vox_tensor_release(out);
  vox_tensor_release(logits);
  vox_tensor_release(targets);
  vox_tensor_release(il);
  vox_tensor_release(tl);
}

/* The op must fail with VOX_ERR_* `code` and a message containing `needle`. */
static void expect_error(vox_status st, vox_status code, const char *needle, const char *what) {
  cr_assert(st == code, "%s: status %s, expected %s (%s)", what, vox_status_name(st), vox_status_name(code),
            vox_last_error());
  cr_assert(strstr(vox_last_error(), needle), "%s: message \"%s\" does not mention \"%s\"", what, vox_last_error(),
            needle);
}

Test(ctc, errors_name_what_was_wrong) {
  vox_tensor *logits = vt_randn(VT_SHAPE(2, 5, 4), 1, 1.0f, false), *logits2d = vt_randn(VT_SHAPE(10, 4), 2, 1, false);
  vox_tensor *targets = vt_from_i32(VT_SHAPE(2, 2), (int32_t[]){1, 2, 3, 0});
  vox_tensor *targets_bad_b = vt_from_i32(VT_SHAPE(3, 2), (int32_t[]){1, 2, 3, 1, 1, 1});
  vox_tensor *targets_blank = vt_from_i32(VT_SHAPE(2, 2), (int32_t[]){1, 0, 3, 0});
  vox_tensor *targets_range = vt_from_i32(VT_SHAPE(2, 2), (int32_t[]){1, 2, 4, 0});
  vox_tensor *targets_f32 = vt_from_f32(VT_SHAPE(2, 2), (float[]){1, 2, 3, 0});
  vox_tensor *il = vt_from_i32(VT_SHAPE(2), (int32_t[]){5, 4}), *tl = vt_from_i32(VT_SHAPE(2), (int32_t[]){2, 1});
  vox_tensor *il_long = vt_from_i32(VT_SHAPE(2), (int32_t[]){5, 6}), *il_3 = vt_from_i32(VT_SHAPE(3), (int32_t[]){5, 4, 4});
  vox_tensor *tl_long = vt_from_i32(VT_SHAPE(2), (int32_t[]){2, 3}), *tl_neg = vt_from_i32(VT_SHAPE(2), (int32_t[]){-1, 1});
  vox_tensor *out = NULL;
  VT_OK(vox_op_ctc_loss(logits, targets, il, tl, 0, &out)); /* the baseline is valid */
  vox_tensor_release(out);

  expect_error(vox_op_ctc_loss(logits2d, targets, il, tl, 0, &out), VOX_ERR_SHAPE, "[B, T, C]", "2-D logits");
  cr_assert(strstr(vox_last_error(), "logits f32[10,4]"), "shape named: %s", vox_last_error());
  expect_error(vox_op_ctc_loss(logits, targets_bad_b, il, tl, 0, &out), VOX_ERR_SHAPE, "targets", "targets batch");
  expect_error(vox_op_ctc_loss(logits, targets_f32, il, tl, 0, &out), VOX_ERR_DTYPE, "targets", "f32 targets");
  expect_error(vox_op_ctc_loss(logits, targets, il_3, tl, 0, &out), VOX_ERR_SHAPE, "input_lens", "input_lens shape");
  expect_error(vox_op_ctc_loss(logits, targets_blank, il, tl, 0, &out), VOX_ERR_INDEX, "blank", "label == blank");
  cr_assert(strstr(vox_last_error(), "targets[0, 1]"), "position named: %s", vox_last_error());
  expect_error(vox_op_ctc_loss(logits, targets_range, il, tl, 0, &out), VOX_ERR_INDEX, "outside [0, C=4)",
               "label out of range");
  expect_error(vox_op_ctc_loss(logits, targets, il_long, tl, 0, &out), VOX_ERR_INDEX, "input_lens[1] = 6",
               "input_len > T");
  cr_assert(strstr(vox_last_error(), "T=5"), "T named: %s", vox_last_error());
  expect_error(vox_op_ctc_loss(logits, targets, il, tl_long, 0, &out), VOX_ERR_INDEX, "target_lens[1] = 3",
               "target_len > S");
  expect_error(vox_op_ctc_loss(logits, targets, il, tl_neg, 0, &out), VOX_ERR_INDEX, "target_lens[0] = -1",
               "negative target_len");
  expect_error(vox_op_ctc_loss(logits, targets, il, tl, 4, &out), VOX_ERR_INVALID, "blank 4", "blank >= C");
  expect_error(vox_op_ctc_loss(logits, targets, il, tl, -1, &out), VOX_ERR_INVALID, "blank -1", "blank < 0");
  cr_assert(out == NULL, "no output on failure");

  vox_tensor *ts[] = {logits, logits2d, targets, targets_bad_b, targets_blank, targets_range, targets_f32,
                      il, tl, il_long, il_3, tl_long, tl_neg};
  for (size_t i = 0; i < sizeof ts / sizeof *ts; i++) vox_tensor_release(ts[i]);
}
