/* SAN-M encoder against PyTorch goldens (tests/fixtures/sanm/make_golden.py, FunASR SenseVoiceEncoderSmall
 * semantics): weights loaded from the FunASR converter's output, hidden states of a padded batch and gradients of a
 * scalar loss for inputs and weights; also the explicit-softmax path, checkpointing, and loading errors. */
#define _GNU_SOURCE /* mkdtemp, symlink */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/autograd.h"
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
  VT_OK(vox_params_new(&g->reg));
  VT_OK(vox_sanm_encoder_load_hf(&g->enc, g->reg, prefix, vt_fixture(model)));
  vox_sanm_encoder_set_checkpoint(&g->enc, checkpoint);
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

static void write_file(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  cr_assert_not_null(f, "cannot write %s", path);
  fputs(text, f);
  fclose(f);
}

Test(sanm_golden, load_errors_name_the_problem) {
  char dir[] = "/tmp/vox_sanm_XXXXXX", path[512], target[512];
  cr_assert_not_null(mkdtemp(dir));
  snprintf(path, sizeof path, "%s/model.safetensors", dir);
  snprintf(target, sizeof target, "%s/model.safetensors", vt_fixture("sanm/tiny"));
  cr_assert_eq(symlink(target, path), 0);
  /* a config.json whose sizes disagree with the weights: the mis-shaped tensors are named */
  snprintf(path, sizeof path, "%s/config.json", dir);
  write_file(path, "{\"model_type\": \"sensevoice\", \"input_size\": 40, \"output_size\": 32, "
                   "\"attention_heads\": 4, \"linear_units\": 48, \"num_blocks\": 3, \"tp_blocks\": 1, "
                   "\"kernel_size\": 5}");
  vox_params *reg = NULL;
  vox_sanm_encoder enc;
  VT_OK(vox_params_new(&reg));
  cr_assert_neq(vox_sanm_encoder_load_hf(&enc, reg, "", dir), VOX_OK);
  cr_assert(strstr(vox_last_error(), "feed_forward.w_1.weight") != NULL, "message: %s", vox_last_error());
  vox_params_free(reg);
  /* one block fewer than the file holds: its tensors are unexpected */
  write_file(path, "{\"model_type\": \"sensevoice\", \"input_size\": 40, \"output_size\": 32, "
                   "\"attention_heads\": 4, \"linear_units\": 32, \"num_blocks\": 2, \"tp_blocks\": 1, "
                   "\"kernel_size\": 5}");
  VT_OK(vox_params_new(&reg));
  cr_assert_neq(vox_sanm_encoder_load_hf(&enc, reg, "", dir), VOX_OK);
  cr_assert(strstr(vox_last_error(), "encoder.encoders.1.") != NULL, "message: %s", vox_last_error());
  vox_params_free(reg);
  /* another model type */
  write_file(path, "{\"model_type\": \"whisper\", \"d_model\": 32}");
  VT_OK(vox_params_new(&reg));
  cr_assert_neq(vox_sanm_encoder_load_hf(&enc, reg, "", dir), VOX_OK);
  cr_assert(strstr(vox_last_error(), "sensevoice") != NULL, "message: %s", vox_last_error());
  vox_params_free(reg);
  snprintf(path, sizeof path, "rm -rf '%s'", dir);
  cr_assert_eq(system(path), 0);

  /* a registry shared with other modules under the same (empty) prefix: only the encoder's parameters are
   * required from the file, and the others are left untouched */
  VT_OK(vox_params_new(&reg));
  vox_tensor *other = NULL;
  VT_OK(vox_params_create(reg, "model.embed_tokens.weight", VOX_CPU, 2, (int64_t[]){3, 4}, &other));
  VT_OK(vox_init_constant(other, 7.0));
  VT_OK(vox_sanm_encoder_load_hf(&enc, reg, "", vt_fixture("sanm/tiny")));
  cr_assert_eq(vox_tensor_f32(other)[5], 7.0f);
  vox_sanm_encoder_release(&enc);
  vox_params_free(reg);
}

/* save_hf writes what load_hf reads: same config, same outputs (f32 exactly; bf16 to its rounding). */
Test(sanm_golden, save_and_reload_round_trip) {
  golden g;
  golden_open("sanm/shift", "audio.", false, &g);
  char dir[] = "/tmp/vox_sanm_XXXXXX", cmd[512];
  cr_assert_not_null(mkdtemp(dir));
  VT_OK(vox_params_create(g.reg, "audio.projector.weight", VOX_CPU, 1, (int64_t[]){2}, NULL)); /* not saved */
  VT_OK(vox_sanm_encoder_save_hf(&g.enc, g.reg, dir, VOX_F32));
  vox_params *reg2 = NULL;
  vox_sanm_encoder enc2;
  VT_OK(vox_params_new(&reg2));
  VT_OK(vox_sanm_encoder_load_hf(&enc2, reg2, "", dir));
  cr_assert_eq(enc2.cfg.sanm_shfit, 1);
  cr_assert_eq(enc2.cfg.kernel_size, 4);
  cr_assert_eq(vox_params_count(reg2, false), vox_params_count(g.reg, false) - 1);
  vox_tensor *feats = load_npy("sanm/shift", "feats.npy"), *lens = load_npy("sanm/shift", "lengths.npy");
  vox_tensor *h1 = NULL, *h2 = NULL;
  vox_no_grad_begin();
  VT_OK(vox_sanm_encoder_forward(&g.enc, feats, lens, false, NULL, &h1, NULL));
  VT_OK(vox_sanm_encoder_forward(&enc2, feats, lens, false, NULL, &h2, NULL));
  vox_no_grad_end();
  vt_assert_close(h2, h1, 0.0, 0.0, "reloaded f32 encoder");
  vox_tensor_release(h2);
  vox_sanm_encoder_release(&enc2);
  vox_params_free(reg2);
  /* bf16 on disk: the values round, the encoder still loads and stays close */
  VT_OK(vox_sanm_encoder_save_hf(&g.enc, g.reg, dir, VOX_BF16));
  VT_OK(vox_params_new(&reg2));
  VT_OK(vox_sanm_encoder_load_hf(&enc2, reg2, "", dir));
  vox_no_grad_begin();
  VT_OK(vox_sanm_encoder_forward(&enc2, feats, lens, false, NULL, &h2, NULL));
  vox_no_grad_end();
  expect_close(h2, h1, 3e-2, "reloaded bf16 encoder");
  vox_tensor_release(h1);
  vox_tensor_release(h2);
  vox_tensor_release(feats);
  vox_tensor_release(lens);
  vox_sanm_encoder_release(&enc2);
  vox_params_free(reg2);
  golden_close(&g);
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  cr_assert_eq(system(cmd), 0);
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
