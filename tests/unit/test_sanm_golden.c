/* SAN-M encoder against PyTorch goldens (tests/fixtures/sanm/make_golden.py, FunASR SenseVoiceEncoderSmall
 * semantics): weights loaded from the FunASR converter's output, hidden states of a padded batch and gradients of a
 * scalar loss for inputs and weights; also the explicit-softmax path, checkpointing, and loading errors. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/autograd.h"
#include "io/hf_config.h"
#include "io/npy.h"
#include "models/sanm_encoder.h"
#include <criterion/logging.h>

#include "vox_test.h"

/* ||a - b|| / ||b|| (L2 over the whole array; robust where single elements are near zero). */
static double rel_err(const float *a, const float *b, int64_t n) {
  double num = 0, den = 0;
  for (int64_t i = 0; i < n; i++) {
    double d = (double)a[i] - b[i];
    num += d * d;
    den += (double)b[i] * b[i];
  }
  return den > 0 ? sqrt(num / den) : sqrt(num);
}

static vox_tensor *load_npy(const char *model, const char *name) {
  char path[1024];
  snprintf(path, sizeof path, "%s/%s", vt_fixture(model), name);
  vox_npy a;
  VT_OK(vox_npy_load(path, &a));
  vox_tensor *t = NULL;
  VT_OK(vox_tensor_from_host(a.dtype == VOX_NPY_F32 ? VOX_F32 : VOX_I32, VOX_CPU, a.ndim, a.shape, a.data, &t));
  vox_npy_free(&a);
  return t;
}

static void expect_close(const vox_tensor *got, const vox_tensor *want, double tol, const char *what) {
  cr_assert_not_null(got, "%s: no tensor", what);
  cr_assert(vox_tensor_same_shape(got, want), "%s: shape differs", what);
  int64_t n = vox_tensor_numel(want);
  float *g = malloc((size_t)n * sizeof *g);
  VT_OK(vox_tensor_read_f32(got, g));
  double e = rel_err(g, vox_tensor_f32(want), n);
  cr_log_info("%s: rel err %.3g", what, e);
  cr_assert(e < tol, "%s: relative error %.3g exceeds %.1g", what, e, tol);
  free(g);
}

typedef struct golden {
  vox_params *reg;
  vox_sanm_encoder enc;
} golden;

static void golden_open(const char *model, const char *prefix, bool checkpoint, golden *g) {
  vox_hf_config *hf = NULL;
  vox_sanm_encoder_config cfg;
  VT_OK(vox_hf_config_load(vt_fixture(model), &hf));
  VT_OK(vox_sanm_encoder_config_from_hf(hf, &cfg));
  vox_hf_config_free(hf);
  cfg.checkpoint = checkpoint;
  VT_OK(vox_params_new(&g->reg));
  vox_rng rng = vox_rng_make(5);
  VT_OK(vox_sanm_encoder_init(&g->enc, g->reg, prefix, &cfg, &rng));
  VT_OK(vox_sanm_encoder_load_hf(&g->enc, g->reg, prefix, vt_fixture(model)));
}

static void golden_close(golden *g) {
  vox_sanm_encoder_release(&g->enc);
  vox_params_free(g->reg);
}

/* Forward (eval or training with the given rng), the loss sum(hidden * W), backward; compares hidden, olens, the
 * input gradient and every grad.encoder.*.npy of the fixture. */
static void run_golden(const char *model, golden *g, bool training, double tol) {
  static const char *const grads[] = {
      "encoders0.0.self_attn.fsmn_block.weight", "encoders0.0.self_attn.linear_q_k_v.weight", "encoders0.0.norm1.weight",
      "encoders.0.self_attn.fsmn_block.weight", "encoders.1.self_attn.fsmn_block.weight",
      "encoders.0.self_attn.linear_q_k_v.weight", "encoders.0.self_attn.linear_out.bias",
      "tp_encoders.0.self_attn.fsmn_block.weight", "tp_encoders.0.feed_forward.w_1.weight", "after_norm.weight",
      "tp_norm.bias"};
  vox_tensor *feats = load_npy(model, "feats.npy"), *lens = load_npy(model, "lengths.npy"),
             *w = load_npy(model, "loss_weight.npy"), *want = load_npy(model, "hidden.npy"),
             *want_dx = load_npy(model, "grad_feats.npy");
  feats->requires_grad = true;
  vox_tensor *hidden = NULL, *olens = NULL, *prod = NULL, *loss = NULL;
  vox_rng rng = vox_rng_make(11);
  VT_OK(vox_sanm_encoder_forward(&g->enc, feats, lens, training, &rng, &hidden, &olens));
  expect_close(hidden, want, tol, "hidden");
  int32_t ol[8], wl[8];
  VT_OK(vox_tensor_read_i32(olens, ol));
  VT_OK(vox_tensor_read_i32(lens, wl));
  for (int64_t b = 0; b < lens->shape[0]; b++) cr_assert_eq(ol[b], wl[b], "out_lengths[%lld]", (long long)b);
  VT_OK(vox_op_mul(hidden, w, &prod));
  VT_OK(vox_op_sum(prod, 0, NULL, false, &loss));
  VT_OK(vox_backward(loss, NULL));
  expect_close(feats->grad, want_dx, tol, "d loss / d feats");
  int checked = 0;
  for (size_t i = 0; i < sizeof grads / sizeof *grads; i++) {
    char path[1024], name[256];
    snprintf(path, sizeof path, "%s/grad.encoder.%s.npy", vt_fixture(model), grads[i]);
    FILE *f = fopen(path, "rb");
    if (!f) continue; /* each fixture stores a subset */
    fclose(f);
    snprintf(name, sizeof name, "grad.encoder.%s.npy", grads[i]);
    vox_tensor *gw = load_npy(model, name);
    snprintf(name, sizeof name, "%sencoder.%s", g->enc.prefix, grads[i]);
    vox_tensor *p = NULL;
    VT_OK(vox_params_find(g->reg, name, &p));
    expect_close(p->grad, gw, tol, name);
    vox_tensor_release(gw);
    checked++;
  }
  cr_assert(checked >= 3, "only %d weight gradients found in the fixture", checked);
  vox_params_zero_grad(g->reg);
  vox_tensor_release(feats);
  vox_tensor_release(lens);
  vox_tensor_release(w);
  vox_tensor_release(want);
  vox_tensor_release(want_dx);
  vox_tensor_release(hidden);
  vox_tensor_release(olens);
  vox_tensor_release(prod);
  vox_tensor_release(loss);
}

Test(sanm_golden, tiny_matches_pytorch) {
  vt_mem_mark mark = vt_mem_now();
  golden g;
  golden_open("sanm/tiny", "", false, &g);
  cr_assert_eq(g.enc.n_layers, 4);
  cr_assert_eq(vox_params_count(g.reg, false), 56);
  run_golden("sanm/tiny", &g, false, 1e-4);
  golden_close(&g);
  vt_assert_mem_back_to(mark, "tiny golden");
}

Test(sanm_golden, shifted_fsmn_matches_pytorch) {
  golden g;
  golden_open("sanm/shift", "audio.", false, &g); /* also a non-empty prefix */
  cr_assert_eq(g.enc.layers[0].left_pad, 2);
  cr_assert_eq(g.enc.layers[0].right_pad, 1);
  run_golden("sanm/shift", &g, false, 1e-4);
  golden_close(&g);
}

/* Training with the dropouts at (almost) zero takes the explicit softmax path for the attention (the fused op has
 * no dropout); it must agree with the golden too. p = 1e-7 keeps every element for this seed (scale 1 + 1e-7). */
Test(sanm_golden, explicit_attention_path_matches) {
  golden g;
  golden_open("sanm/tiny", "", false, &g);
  for (int i = 0; i < g.enc.n_layers; i++) {
    g.enc.layers[i].dropout = 0.0f;
    g.enc.layers[i].attention_dropout = 1e-7f;
  }
  run_golden("sanm/tiny", &g, true, 1e-4);
  golden_close(&g);
}

Test(sanm_golden, checkpointed_layers_match) {
  vt_mem_mark mark = vt_mem_now();
  golden g;
  golden_open("sanm/tiny", "", true, &g);
  run_golden("sanm/tiny", &g, false, 1e-4);
  golden_close(&g);
  vt_assert_mem_back_to(mark, "checkpointed golden");
}

/* Training-mode dropout with checkpointing replays the same masks in the recompute: gradients equal the plain
 * run's for the same rng seed. */
Test(sanm_golden, checkpoint_replays_dropout) {
  vox_tensor *feats = load_npy("sanm/tiny", "feats.npy"), *lens = load_npy("sanm/tiny", "lengths.npy");
  float *gw[2] = {NULL, NULL};
  double loss_v[2];
  int64_t n = 0;
  for (int ck = 0; ck < 2; ck++) {
    golden g;
    golden_open("sanm/tiny", "", ck == 1, &g);
    vox_tensor *hidden = NULL, *loss = NULL, *sq = NULL;
    vox_rng rng = vox_rng_make(2024);
    VT_OK(vox_sanm_encoder_forward(&g.enc, feats, lens, true, &rng, &hidden, NULL));
    VT_OK(vox_op_square(hidden, &sq));
    VT_OK(vox_op_sum(sq, 0, NULL, false, &loss));
    VT_OK(vox_tensor_item(loss, &loss_v[ck]));
    VT_OK(vox_backward(loss, NULL));
    vox_tensor *p = vox_params_get(g.reg, "encoder.encoders.0.self_attn.linear_q_k_v.weight");
    cr_assert_not_null(p->grad);
    n = vox_tensor_numel(p->grad);
    gw[ck] = malloc((size_t)n * sizeof(float));
    VT_OK(vox_tensor_read_f32(p->grad, gw[ck]));
    vox_tensor_release(hidden);
    vox_tensor_release(sq);
    vox_tensor_release(loss);
    golden_close(&g);
  }
  cr_assert(fabs(loss_v[0] - loss_v[1]) <= 1e-5 * fabs(loss_v[0]), "loss %g vs %g", loss_v[0], loss_v[1]);
  double e = rel_err(gw[1], gw[0], n);
  cr_assert(e < 1e-5, "checkpointed dropout gradient differs: rel %g", e);
  free(gw[0]);
  free(gw[1]);
  vox_tensor_release(feats);
  vox_tensor_release(lens);
}

/* Padding does not leak: a padded row's valid frames equal that row encoded alone. */
Test(sanm_golden, padded_row_equals_row_alone) {
  golden g;
  golden_open("sanm/tiny", "", false, &g);
  vox_tensor *feats = load_npy("sanm/tiny", "feats.npy"), *lens = load_npy("sanm/tiny", "lengths.npy");
  int32_t l1 = vox_tensor_i32(lens)[1];
  vox_tensor *row = NULL, *rowc = NULL, *h = NULL, *h1 = NULL;
  VT_OK(vox_tensor_view_slice(feats, 0, 1, 2, 1, &row));
  vox_tensor *rv = NULL;
  VT_OK(vox_tensor_view_slice(row, 1, 0, l1, 1, &rv));
  VT_OK(vox_tensor_contiguous(rv, &rowc));
  vox_no_grad_begin();
  VT_OK(vox_sanm_encoder_forward(&g.enc, feats, lens, false, NULL, &h, NULL));
  VT_OK(vox_sanm_encoder_forward(&g.enc, rowc, NULL, false, NULL, &h1, NULL));
  vox_no_grad_end();
  vox_tensor *hv = NULL, *hvv = NULL, *hc = NULL;
  VT_OK(vox_tensor_view_slice(h, 0, 1, 2, 1, &hv));
  VT_OK(vox_tensor_view_slice(hv, 1, 0, l1, 1, &hvv));
  VT_OK(vox_tensor_contiguous(hvv, &hc));
  vt_assert_close(hc, h1, 1e-5, 1e-4, "padded row vs alone");
  vox_tensor *all[] = {feats, lens, row, rv, rowc, h, h1, hv, hvv, hc};
  for (size_t i = 0; i < sizeof all / sizeof *all; i++) vox_tensor_release(all[i]);
  golden_close(&g);
}

Test(sanm_golden, load_errors_name_the_problem) {
  /* sizes that disagree with config.json */
  vox_hf_config *hf = NULL;
  vox_sanm_encoder_config cfg;
  VT_OK(vox_hf_config_load(vt_fixture("sanm/tiny"), &hf));
  VT_OK(vox_sanm_encoder_config_from_hf(hf, &cfg));
  vox_hf_config_free(hf);
  cfg.linear_units = 48;
  vox_params *reg = NULL;
  VT_OK(vox_params_new(&reg));
  vox_rng rng = vox_rng_make(1);
  vox_sanm_encoder enc;
  VT_OK(vox_sanm_encoder_init(&enc, reg, "", &cfg, &rng));
  cr_assert_neq(vox_sanm_encoder_load_hf(&enc, reg, "", vt_fixture("sanm/tiny")), VOX_OK);
  cr_assert(strstr(vox_last_error(), "units") != NULL, "message: %s", vox_last_error());
  cr_assert_neq(vox_sanm_encoder_load_hf(&enc, reg, "x.", vt_fixture("sanm/tiny")), VOX_OK);
  cr_assert(strstr(vox_last_error(), "prefix") != NULL, "message: %s", vox_last_error());
  vox_sanm_encoder_release(&enc);
  vox_params_free(reg);
  /* a registry shared with other modules: only the encoder's own parameters are required from the file */
  VT_OK(vox_params_new(&reg));
  VT_OK(vox_params_create(reg, "model.embed_tokens.weight", VOX_CPU, 2, (int64_t[]){3, 4}, NULL));
  cfg.linear_units = 32;
  VT_OK(vox_sanm_encoder_init(&enc, reg, "", &cfg, &rng));
  VT_OK(vox_sanm_encoder_load_hf(&enc, reg, "", vt_fixture("sanm/tiny")));
  vox_sanm_encoder_release(&enc);
  vox_params_free(reg);
  /* a config of another model type */
  VT_OK(vox_hf_config_parse("{\"model_type\": \"whisper\"}", "<inline>", &hf));
  cr_assert_neq(vox_sanm_encoder_config_from_hf(hf, &cfg), VOX_OK);
  cr_assert(strstr(vox_last_error(), "sensevoice") != NULL, "message: %s", vox_last_error());
  vox_hf_config_free(hf);
}

Test(sanm_golden, presets_and_parameter_count) {
  vox_sanm_encoder_config s = vox_sanm_encoder_config_small();
  cr_assert_eq(s.input_size, 560);
  cr_assert_eq(s.output_size, 512);
  cr_assert_eq(s.num_blocks + s.tp_blocks, 70);
  /* SenseVoice-Small's encoder: count the registered elements at a reduced depth and scale per layer. */
  s.num_blocks = 2;
  s.tp_blocks = 1;
  vox_params *reg = NULL;
  VT_OK(vox_params_new(&reg));
  vox_rng rng = vox_rng_make(3);
  vox_sanm_encoder enc;
  VT_OK(vox_sanm_encoder_init(&enc, reg, "", &s, &rng));
  int64_t d = 512, u = 2048, k = 11, in = 560;
  int64_t layer = 3 * d * d + 3 * d + d * d + d + d * k + 2 * d * u + u + d + 4 * d;
  int64_t layer0 = 3 * d * in + 3 * d + d * d + d + d * k + 2 * d * u + u + d + 2 * in + 2 * d;
  cr_assert_eq(vox_params_numel(reg, false), layer0 + 2 * layer + 4 * d);
  cr_log_info("SenseVoice-Small encoder: %.1f M parameters", (layer0 + 69 * layer + 4 * d) / 1e6);
  vox_sanm_encoder_release(&enc);
  vox_params_free(reg);
}
