/* The Whisper encoder against Hugging Face semantics: a tiny WhisperForConditionalGeneration checkpoint
 * (tests/fixtures/hf/make_golden.py; "model.encoder.*" names, decoder tensors to skip) loaded with
 * vox_whisper_encoder_load_hf; the conv stem + positions, each block, the final hidden state, gradients of
 * sum(hidden * W) and a shorter input (26 frames, which HF refuses) must match the float64 reference. */
#include <string.h>
#include <unistd.h>

#include "core/autograd.h"
#include "hf_golden.h"
#include "io/hf_config.h"
#include "io/hf_weights.h"
#include "models/whisper_encoder.h"

#define ATOL 1e-4
#define RTOL 1e-4
#define REL 1e-5
#define DIR "whisper"

/* W.flat[i] = sin(0.37 i + 0.1), as make_golden.py's loss_weights(). */
static vox_tensor *loss_weights(const vox_tensor *like) {
  int64_t n = vox_tensor_numel(like);
  float *w = malloc((size_t)n * sizeof *w);
  for (int64_t i = 0; i < n; i++) w[i] = (float)sin(0.37 * (double)i + 0.1);
  vox_tensor *t = NULL;
  VT_OK(vox_tensor_from_host(VOX_F32, VOX_CPU, like->ndim, like->shape, w, &t));
  free(w);
  return t;
}

/* The conv stem and positions with the public modules (HF's hidden_states[0]). */
static vox_tensor *stem(const vox_whisper_encoder *m, vox_tensor *feats) {
  vox_tensor *xt = NULL, *xc = NULL, *c1 = NULL, *g1 = NULL, *c2 = NULL, *g2 = NULL, *h = NULL, *pos = NULL, *out = NULL;
  VT_OK(vox_op_transpose(feats, 1, 2, &xt));
  VT_OK(vox_op_contiguous(xt, &xc));
  VT_OK(vox_conv1d_forward(&m->conv1, xc, &c1));
  VT_OK(vox_op_gelu(c1, false, &g1));
  VT_OK(vox_conv1d_forward(&m->conv2, g1, &c2));
  VT_OK(vox_op_gelu(c2, false, &g2));
  VT_OK(vox_op_transpose(g2, 1, 2, &h));
  VT_OK(vox_op_slice(m->embed_positions, 0, 0, h->shape[1], 1, &pos));
  VT_OK(vox_op_add(h, pos, &out));
  vox_tensor *objs[] = {xt, xc, c1, g1, c2, g2, h, pos};
  for (size_t i = 0; i < sizeof objs / sizeof *objs; i++) vox_tensor_release(objs[i]);
  return out;
}

Test(whisper_golden, encoder_matches_reference) {
  vox_params *reg = NULL;
  VT_OK(vox_params_new(&reg));
  VT_OK(vox_params_create(reg, "model.layers.0.other.weight", VOX_CPU, VT_SHAPE(3), NULL)); /* someone else's */
  vox_whisper_encoder m;
  VT_OK(vox_whisper_encoder_load_hf(&m, reg, "", golden_dir(DIR)));
  cr_assert_null(vox_params_get(reg, "decoder.layer_norm.weight"));
  cr_assert(!m.embed_positions->requires_grad);
  vox_tensor *feats = golden_load(DIR, "feats"), *h = NULL, *ol = NULL, *ref = NULL;
  /* stem and blocks, no grad */
  vox_no_grad_begin();
  vox_tensor *x = stem(&m, feats);
  ref = golden_load(DIR, "embeds");
  golden_check(x, ref, ATOL, RTOL, REL, "conv stem + embed_positions");
  vox_tensor_release(ref);
  for (int i = 0; i < m.cfg.encoder_layers; i++) {
    vox_tensor *y = NULL;
    VT_OK(vox_block_forward(&m.layers[i], x, NULL, NULL, NULL, false, NULL, &y));
    char name[32];
    snprintf(name, sizeof name, "layer_%d", i);
    ref = golden_load(DIR, name);
    golden_check(y, ref, ATOL, RTOL, REL, name);
    vox_tensor_release(ref);
    vox_tensor_release(x);
    x = y;
  }
  vox_tensor_release(x);
  vox_no_grad_end();
  /* the whole forward (with lengths = all frames: the masks must change nothing), loss and gradients */
  vox_tensor *lens = vt_from_i32(VT_SHAPE(1), (int32_t[]){(int32_t)feats->shape[1]});
  VT_OK(vox_whisper_encoder_forward(&m, feats, lens, NULL, true, NULL, &h, &ol));
  ref = golden_load(DIR, "hidden");
  golden_check(h, ref, ATOL, RTOL, REL, "hidden (after encoder.layer_norm)");
  vox_tensor_release(ref);
  cr_assert_eq(vox_tensor_i32(ol)[0], 20);
  vox_tensor *w = loss_weights(h), *hw = NULL, *loss = NULL;
  VT_OK(vox_op_mul(h, w, &hw));
  VT_OK(vox_op_sum(hw, 0, NULL, false, &loss));
  VT_OK(vox_backward(loss, NULL));
  double lv;
  VT_OK(vox_tensor_item(loss, &lv));
  vox_tensor *lref = golden_load(DIR, "loss");
  double lr = vox_tensor_f32(lref)[0];
  cr_log_info("whisper: loss vox %.7f reference %.7f", lv, lr);
  cr_assert_lt(fabs(lv - lr), 1e-4 * fabs(lr) + 1e-5, "loss %.7f vs %.7f", lv, lr);
  const char *grads[] = {"encoder.conv1.weight", "encoder.conv2.bias", "encoder.layers.0.self_attn.q_proj.weight",
                         "encoder.layers.0.self_attn.k_proj.weight", "encoder.layers.1.fc1.weight",
                         "encoder.layers.1.self_attn_layer_norm.bias", "encoder.layer_norm.weight"};
  for (size_t i = 0; i < sizeof grads / sizeof *grads; i++) {
    char fname[256];
    snprintf(fname, sizeof fname, "grad.%s", grads[i]);
    vox_tensor *p = vox_params_get(reg, grads[i]);
    cr_assert_not_null(p, "%s", grads[i]);
    cr_assert_not_null(p->grad, "%s has no gradient", grads[i]);
    ref = golden_load(DIR, fname);
    golden_check(p->grad, ref, ATOL, RTOL, REL, fname);
    vox_tensor_release(ref);
  }
  cr_assert_null(m.embed_positions->grad);
  vox_tensor *objs[] = {feats, h, ol, lens, w, hw, loss, lref};
  for (size_t i = 0; i < sizeof objs / sizeof *objs; i++) vox_tensor_release(objs[i]);
  vox_whisper_encoder_release(&m);
  vox_params_free(reg);
}

/* 26 frames -> 13 outputs using embed_positions[:13] (HF insists on exactly 2 * max_source_positions). */
Test(whisper_golden, any_frame_count) {
  vox_params *reg = NULL;
  VT_OK(vox_params_new(&reg));
  vox_whisper_encoder m;
  VT_OK(vox_whisper_encoder_load_hf(&m, reg, "audio.", golden_dir(DIR)));
  cr_assert_not_null(vox_params_get(reg, "audio.encoder.conv1.weight"));
  vox_tensor *feats = golden_load(DIR, "feats_short"), *h = NULL, *ref = golden_load(DIR, "hidden_short");
  VT_OK(vox_whisper_encoder_forward(&m, feats, NULL, NULL, false, NULL, &h, NULL));
  golden_check(h, ref, ATOL, RTOL, REL, "hidden, 26 frames");
  vox_tensor_release(feats);
  vox_tensor_release(h);
  vox_tensor_release(ref);
  vox_whisper_encoder_release(&m);
  vox_params_free(reg);
}

Test(whisper_golden, config_reads_hf_keys) {
  vox_hf_config *hf = NULL;
  VT_OK(vox_hf_config_load(golden_dir(DIR), &hf));
  vox_whisper_config c;
  VT_OK(vox_whisper_config_from_hf(hf, &c));
  cr_assert_eq(c.num_mel_bins, 16);
  cr_assert_eq(c.d_model, 24);
  cr_assert_eq(c.encoder_layers, 2);
  cr_assert_eq(c.encoder_attention_heads, 4);
  cr_assert_eq(c.encoder_ffn_dim, 48);
  cr_assert_eq(c.max_source_positions, 20);
  vox_hf_config_free(hf);
  /* large-v3 style: 128 mels, defaults for the rest */
  VT_OK(vox_hf_config_parse("{\"model_type\": \"whisper\", \"num_mel_bins\": 128, \"d_model\": 1280, "
                            "\"encoder_layers\": 32, \"encoder_attention_heads\": 20, \"encoder_ffn_dim\": 5120}",
                            "<large-v3>", &hf));
  VT_OK(vox_whisper_config_from_hf(hf, &c));
  cr_assert_eq(c.num_mel_bins, 128);
  cr_assert_eq(c.max_source_positions, 1500);
  vox_hf_config_free(hf);
  VT_OK(vox_hf_config_parse("{\"model_type\": \"qwen2\", \"d_model\": 8}", "<t>", &hf));
  cr_assert_neq(vox_whisper_config_from_hf(hf, &c), VOX_OK);
  cr_assert(strstr(vox_last_error(), "qwen2"), "%s", vox_last_error());
  vox_hf_config_free(hf);
  VT_OK(vox_hf_config_parse("{\"d_model\": 8, \"encoder_layers\": 1, \"encoder_attention_heads\": 2, "
                            "\"encoder_ffn_dim\": 8, \"activation_function\": \"relu\"}", "<t>", &hf));
  cr_assert_neq(vox_whisper_config_from_hf(hf, &c), VOX_OK);
  cr_assert(strstr(vox_last_error(), "activation_function"), "%s", vox_last_error());
  vox_hf_config_free(hf);
}

/* An encoder tensor the model does not have is reported by name (only the decoder's are skipped), and a config
 * with more layers than the file names the missing tensors. */
Test(whisper_golden, stray_and_missing_tensors_are_named) {
  vox_params *reg = NULL;
  VT_OK(vox_params_new(&reg));
  vox_whisper_encoder m;
  VT_OK(vox_whisper_encoder_load_hf(&m, reg, "", golden_dir(DIR)));
  vox_tensor *adapter = NULL;
  VT_OK(vox_params_create(reg, "encoder.adapter.weight", VOX_CPU, VT_SHAPE(2), &adapter));
  VT_OK(vox_init_constant(adapter, 0.5)); /* created uninitialised; it is written to a file below */
  char dir[] = "/tmp/vox_whisper_bad_XXXXXX", cmd[2300];
  cr_assert_not_null(mkdtemp(dir));
  VT_OK(vox_hf_save_params(reg, "", dir, VOX_F32, 0));
  snprintf(cmd, sizeof cmd, "cp '%s/config.json' '%s/'", golden_dir(DIR), dir);
  cr_assert_eq(system(cmd), 0);
  vox_params *reg2 = NULL;
  VT_OK(vox_params_new(&reg2));
  vox_whisper_encoder m2;
  cr_assert_neq(vox_whisper_encoder_load_hf(&m2, reg2, "", dir), VOX_OK);
  cr_assert(strstr(vox_last_error(), "encoder.adapter.weight"), "%s", vox_last_error());
  vox_params_free(reg2);
  snprintf(cmd, sizeof cmd, "sed -i 's/\"encoder_layers\": 2/\"encoder_layers\": 3/' '%s/config.json'", dir);
  cr_assert_eq(system(cmd), 0);
  VT_OK(vox_params_new(&reg2));
  cr_assert_eq(vox_whisper_encoder_load_hf(&m2, reg2, "", dir), VOX_ERR_NOT_FOUND);
  cr_assert(strstr(vox_last_error(), "encoder.layers.2.self_attn_layer_norm.weight"), "%s", vox_last_error());
  vox_params_free(reg2);
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  cr_assert_eq(system(cmd), 0);
  vox_whisper_encoder_release(&m);
  vox_params_free(reg);
}
