/* Qwen2 against Hugging Face semantics: tiny Qwen2ForCausalLM checkpoints (tests/fixtures/hf/make_golden.py, untied
 * with rope_theta 1e4 and tied with 1e6) loaded with vox_qwen2_load_hf; embeddings, every block's output, the final
 * hidden state, logits of a right-padded batch, the loss and weight gradients must match the float64 reference
 * (f32 here: 1e-4 elementwise, 1e-5 norm-relative). Also: config/weight disagreement and save/reload. */
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/autograd.h"
#include "hf_golden.h"
#include "io/hf_config.h"
#include "models/qwen2.h"

#define ATOL 1e-4
#define RTOL 1e-4
#define REL 1e-5

static void golden_case(const char *dir, const char *prefix) {
  vox_params *reg = NULL;
  VT_OK(vox_params_new(&reg));
  /* another module's parameters in the same registry must neither be loaded nor be reported missing */
  VT_OK(vox_params_create(reg, "encoder.other.weight", VOX_CPU, VT_SHAPE(4), NULL));
  if (*prefix) VT_OK(vox_params_create(reg, "llm.extra.weight", VOX_CPU, VT_SHAPE(4), NULL));
  vox_qwen2 m;
  VT_OK(vox_qwen2_load_hf(&m, reg, prefix, golden_dir(dir)));
  vox_tensor *ids = golden_load(dir, "ids"), *lens = golden_load(dir, "lens"), *tg = golden_load(dir, "targets");
  int64_t T = ids->shape[1];
  vox_tensor *e = NULL, *h = NULL, *lg = NULL, *loss = NULL;
  VT_OK(vox_qwen2_embed(&m, ids, &e));
  VT_OK(vox_qwen2_forward_embeds(&m, e, NULL, lens, NULL, false, NULL, &h));
  VT_OK(vox_qwen2_logits(&m, h, &lg));
  vox_tensor *ref = golden_load(dir, "embeds");
  golden_check(e, ref, ATOL, RTOL, REL, "embeddings");
  vox_tensor_release(ref);
  /* block by block, as HF's hidden_states (before the final norm) */
  {
    vox_no_grad_begin();
    int32_t pos[64];
    for (int t = 0; t < T; t++) pos[t] = t;
    vox_tensor *tp = vt_from_i32(VT_SHAPE(T), pos), *x = vox_tensor_retain(e);
    vox_attention_mask mask = {.causal = true, .kv_lens = lens};
    for (int i = 0; i < m.cfg.num_hidden_layers; i++) {
      vox_tensor *y = NULL;
      VT_OK(vox_block_forward(&m.layers[i], x, tp, &mask, NULL, false, NULL, &y));
      char name[32];
      snprintf(name, sizeof name, "layer_%d", i);
      ref = golden_load(dir, name);
      golden_check(y, ref, ATOL, RTOL, REL, name);
      vox_tensor_release(ref);
      vox_tensor_release(x);
      x = y;
    }
    vox_tensor_release(x);
    vox_tensor_release(tp);
    vox_no_grad_end();
  }
  ref = golden_load(dir, "hidden");
  golden_check(h, ref, ATOL, RTOL, REL, "hidden (after model.norm)");
  vox_tensor_release(ref);
  ref = golden_load(dir, "logits");
  golden_check(lg, ref, ATOL, RTOL, REL, "logits");
  vox_tensor_release(ref);
  /* loss and gradients */
  VT_OK(vox_op_cross_entropy(lg, tg, -100, 0.0f, &loss));
  VT_OK(vox_backward(loss, NULL));
  double lv, lr;
  vox_tensor *lref = golden_load(dir, "loss");
  VT_OK(vox_tensor_item(loss, &lv));
  VT_OK(vox_tensor_read_f32(lref, (float[1]){0}));
  lr = vox_tensor_f32(lref)[0];
  cr_log_info("%s: loss vox %.7f reference %.7f", dir, lv, lr);
  cr_assert_lt(fabs(lv - lr), 1e-5 * fabs(lr) + 1e-6, "loss %.7f vs %.7f", lv, lr);
  vox_tensor_release(lref);
  const char *grads[] = {"model.layers.0.self_attn.q_proj.weight", "model.layers.0.input_layernorm.weight",
                         "model.layers.1.self_attn.k_proj.bias", "model.norm.weight",
                         m.cfg.tie_word_embeddings ? "model.embed_tokens.weight" : "lm_head.weight",
                         m.cfg.tie_word_embeddings ? NULL : "model.layers.1.mlp.down_proj.weight"};
  for (size_t i = 0; i < sizeof grads / sizeof *grads && grads[i]; i++) {
    char pname[256], fname[256];
    snprintf(pname, sizeof pname, "%s%s", prefix, grads[i]);
    snprintf(fname, sizeof fname, "grad.%s", grads[i]);
    vox_tensor *p = vox_params_get(reg, pname);
    cr_assert_not_null(p, "%s", pname);
    cr_assert_not_null(p->grad, "%s has no gradient", pname);
    ref = golden_load(dir, fname);
    golden_check(p->grad, ref, ATOL, RTOL, REL, fname);
    vox_tensor_release(ref);
  }
  vox_tensor *objs[] = {ids, lens, tg, e, h, lg, loss};
  for (size_t i = 0; i < sizeof objs / sizeof *objs; i++) vox_tensor_release(objs[i]);
  vox_qwen2_release(&m);
  vox_params_free(reg);
}

Test(qwen2_golden, untied_theta_1e4) { golden_case("qwen2_untied", ""); }
Test(qwen2_golden, tied_theta_1e6) { golden_case("qwen2_tied", ""); }
Test(qwen2_golden, untied_under_prefix_in_shared_registry) { golden_case("qwen2_untied", "llm."); }

Test(qwen2_golden, config_reads_hf_keys) {
  vox_hf_config *hf = NULL;
  VT_OK(vox_hf_config_load(golden_dir("qwen2_tied"), &hf));
  vox_qwen2_config c;
  VT_OK(vox_qwen2_config_from_hf(hf, &c));
  cr_assert_eq(c.vocab_size, 64);
  cr_assert_eq(c.hidden_size, 32);
  cr_assert_eq(c.num_hidden_layers, 2);
  cr_assert_eq(c.num_attention_heads, 4);
  cr_assert_eq(c.num_key_value_heads, 2);
  cr_assert_eq(c.intermediate_size, 32);
  cr_assert_eq(c.max_position_embeddings, 64);
  cr_assert_float_eq(c.rope_theta, 1e6f, 1.0f);
  cr_assert_float_eq(c.rms_norm_eps, 1e-6f, 1e-12f);
  cr_assert(c.tie_word_embeddings);
  cr_assert(c.attention_bias);
  vox_hf_config_free(hf);
  /* unsupported features are refused by name */
  const char *bad[][2] = {{"{\"model_type\": \"llama\", \"vocab_size\": 8}", "llama"},
                          {"{\"vocab_size\": 8, \"hidden_size\": 8, \"num_hidden_layers\": 1, \"num_attention_heads\": 2,"
                           " \"intermediate_size\": 8, \"rope_scaling\": {\"type\": \"yarn\"}}", "rope_scaling"},
                          {"{\"vocab_size\": 8, \"use_sliding_window\": true}", "use_sliding_window"},
                          {"{\"vocab_size\": 8, \"hidden_size\": 8, \"num_hidden_layers\": 1, \"num_attention_heads\": 2,"
                           " \"intermediate_size\": 8, \"hidden_act\": \"gelu\"}", "hidden_act"},
                          {"{\"hidden_size\": 8}", "vocab_size"}};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    VT_OK(vox_hf_config_parse(bad[i][0], "<test>", &hf));
    cr_assert_neq(vox_qwen2_config_from_hf(hf, &c), VOX_OK, "%s accepted", bad[i][0]);
    cr_assert(strstr(vox_last_error(), bad[i][1]), "'%s' not in: %s", bad[i][1], vox_last_error());
    vox_hf_config_free(hf);
  }
}

static void write_file(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  cr_assert_not_null(f, "%s", path);
  fputs(text, f);
  fclose(f);
}

/* A config saying intermediate_size 40 over weights of 32: the load fails naming the mis-shaped tensors, and a
 * config with one layer more names the missing ones. */
Test(qwen2_golden, config_weight_disagreement_names_the_tensor) {
  char dir[] = "/tmp/vox_qwen2_bad_XXXXXX", path[1100], cfg[2048];
  cr_assert_not_null(mkdtemp(dir));
  snprintf(path, sizeof path, "%s/model.safetensors", dir);
  char src[1100];
  snprintf(src, sizeof src, "%s/model.safetensors", golden_dir("qwen2_untied"));
  cr_assert_eq(symlink(src, path), 0);
  const char *base = "{\"model_type\": \"qwen2\", \"vocab_size\": 64, \"hidden_size\": 32, \"num_attention_heads\": 4,"
                     " \"num_key_value_heads\": 2, \"tie_word_embeddings\": false, ";
  snprintf(path, sizeof path, "%s/config.json", dir);
  snprintf(cfg, sizeof cfg, "%s\"num_hidden_layers\": 2, \"intermediate_size\": 40}", base);
  write_file(path, cfg);
  vox_params *reg = NULL;
  VT_OK(vox_params_new(&reg));
  vox_qwen2 m;
  cr_assert_eq(vox_qwen2_load_hf(&m, reg, "", dir), VOX_ERR_SHAPE);
  cr_log_info("%s", vox_last_error());
  cr_assert(strstr(vox_last_error(), "model.layers.0.mlp.gate_proj.weight"), "%s", vox_last_error());
  cr_assert(strstr(vox_last_error(), "f32[40,32]"), "%s", vox_last_error());
  cr_assert_null(m.layers);
  vox_params_free(reg);
  snprintf(cfg, sizeof cfg, "%s\"num_hidden_layers\": 3, \"intermediate_size\": 32}", base);
  write_file(path, cfg);
  VT_OK(vox_params_new(&reg));
  cr_assert_eq(vox_qwen2_load_hf(&m, reg, "", dir), VOX_ERR_NOT_FOUND);
  cr_assert(strstr(vox_last_error(), "model.layers.2.self_attn.q_proj.weight"), "%s", vox_last_error());
  vox_params_free(reg);
  /* tied in the config but the file has lm_head.weight: ignored, and the tied head is the embedding */
  snprintf(cfg, sizeof cfg,
           "{\"model_type\": \"qwen2\", \"vocab_size\": 64, \"hidden_size\": 32, \"num_attention_heads\": 4,"
           " \"num_key_value_heads\": 2, \"num_hidden_layers\": 2, \"intermediate_size\": 32,"
           " \"tie_word_embeddings\": true}");
  write_file(path, cfg);
  VT_OK(vox_params_new(&reg));
  VT_OK(vox_qwen2_load_hf(&m, reg, "", dir));
  cr_assert_null(vox_params_get(reg, "lm_head.weight"));
  cr_assert_eq(m.lm_head, m.embed.weight);
  vox_qwen2_release(&m);
  vox_params_free(reg);
  unlink(path);
  snprintf(path, sizeof path, "%s/model.safetensors", dir);
  unlink(path);
  rmdir(dir);
}

/* save_hf then load_hf gives the same logits; bf16 on disk stays close. */
Test(qwen2_golden, save_and_reload) {
  vox_params *reg = NULL, *reg2 = NULL;
  VT_OK(vox_params_new(&reg));
  vox_qwen2 m, m2;
  VT_OK(vox_qwen2_load_hf(&m, reg, "lm.", golden_dir("qwen2_tied")));
  char dir[] = "/tmp/vox_qwen2_save_XXXXXX", path[512];
  cr_assert_not_null(mkdtemp(dir));
  VT_OK(vox_qwen2_save_hf(&m, reg, dir, VOX_F32, 0));
  VT_OK(vox_params_new(&reg2));
  VT_OK(vox_qwen2_load_hf(&m2, reg2, "", dir));
  cr_assert_eq(reg2->count, m.param_count);
  cr_assert_float_eq(m2.cfg.rope_theta, 1e6f, 1.0f);
  cr_assert_float_eq(m2.cfg.rms_norm_eps, 1e-6f, 1e-12f);
  cr_assert(m2.cfg.tie_word_embeddings);
  vox_tensor *ids = golden_load("qwen2_tied", "ids"), *a = NULL, *b = NULL;
  VT_OK(vox_qwen2_forward(&m, ids, NULL, false, NULL, &a, NULL));
  VT_OK(vox_qwen2_forward(&m2, ids, NULL, false, NULL, &b, NULL));
  vt_assert_close(a, b, 0, 0, "reloaded logits");
  /* a registry where another module shares the prefix refuses to save by prefix */
  VT_OK(vox_params_create(reg, "lm.adapter.weight", VOX_CPU, VT_SHAPE(2), NULL));
  cr_assert_eq(vox_qwen2_save_hf(&m, reg, dir, VOX_F32, 0), VOX_ERR_INVALID);
  cr_assert(strstr(vox_last_error(), "lm.adapter.weight"), "%s", vox_last_error());
  vox_tensor_release(ids);
  vox_tensor_release(a);
  vox_tensor_release(b);
  vox_qwen2_release(&m);
  vox_qwen2_release(&m2);
  vox_params_free(reg);
  vox_params_free(reg2);
  snprintf(path, sizeof path, "rm -rf '%s'", dir);
  cr_assert_eq(system(path), 0);
}
