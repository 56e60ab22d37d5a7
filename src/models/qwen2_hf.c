/* Qwen2 in Hugging Face form: config.json <-> vox_qwen2_config (HF key names and defaults, unsupported features
 * refused by name), loading model.safetensors (or shards) into the model's registry subtree, and saving both. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "io/hf_config.h"
#include "io/hf_weights.h"
#include "models/hf_model_io.h"
#include "models/qwen2.h"

static vox_status get_int(const vox_hf_config *hf, const char *key, bool required, int dflt, int *out) {
  int64_t v = dflt;
  VOX_TRY(required ? vox_hf_config_int_req(hf, key, &v) : vox_hf_config_int(hf, key, dflt, &v));
  if (v < 0 || v > 0x7fffffff)
    return vox_errorf(VOX_ERR_PARSE, "%s: \"%s\" = %lld is out of range", vox_hf_config_path(hf), key, (long long)v);
  *out = (int)v;
  return VOX_OK;
}

static vox_status get_float(const vox_hf_config *hf, const char *key, double dflt, float *out) {
  double v;
  VOX_TRY(vox_hf_config_float(hf, key, dflt, &v));
  *out = (float)v;
  return VOX_OK;
}

vox_status vox_qwen2_config_from_hf(const vox_hf_config *hf, vox_qwen2_config *out) {
  const char *path = vox_hf_config_path(hf), *s = NULL;
  vox_qwen2_config c = vox_qwen2_config_default();
  VOX_TRY(vox_hf_config_string(hf, "model_type", "qwen2", &s));
  if (strcmp(s, "qwen2") != 0)
    return vox_errorf(VOX_ERR_INVALID, "%s: model_type \"%s\" is not a Qwen2 decoder (expected \"qwen2\")", path, s);
  VOX_TRY(vox_hf_config_string(hf, "hidden_act", "silu", &s));
  if (strcmp(s, "silu") != 0)
    return vox_errorf(VOX_ERR_INVALID, "%s: hidden_act \"%s\" is not supported (Qwen2 uses \"silu\")", path, s);
  if (vox_hf_config_has(hf, "rope_scaling"))
    return vox_errorf(VOX_ERR_INVALID, "%s: rope_scaling is set; only the default RoPE is supported", path);
  bool sliding = false;
  VOX_TRY(vox_hf_config_bool(hf, "use_sliding_window", false, &sliding));
  if (sliding)
    return vox_errorf(VOX_ERR_INVALID, "%s: use_sliding_window true is not supported (full attention only)", path);
  VOX_TRY(get_int(hf, "vocab_size", true, 0, &c.vocab_size));
  VOX_TRY(get_int(hf, "hidden_size", true, 0, &c.hidden_size));
  VOX_TRY(get_int(hf, "num_hidden_layers", true, 0, &c.num_hidden_layers));
  VOX_TRY(get_int(hf, "num_attention_heads", true, 0, &c.num_attention_heads));
  VOX_TRY(get_int(hf, "num_key_value_heads", false, c.num_attention_heads, &c.num_key_value_heads));
  VOX_TRY(get_int(hf, "intermediate_size", true, 0, &c.intermediate_size));
  VOX_TRY(get_int(hf, "max_position_embeddings", false, c.max_position_embeddings, &c.max_position_embeddings));
  VOX_TRY(get_float(hf, "rope_theta", 10000.0, &c.rope_theta));
  VOX_TRY(get_float(hf, "rms_norm_eps", 1e-6, &c.rms_norm_eps));
  VOX_TRY(get_float(hf, "initializer_range", 0.02, &c.initializer_range));
  VOX_TRY(vox_hf_config_bool(hf, "tie_word_embeddings", false, &c.tie_word_embeddings));
  /* Qwen2 always has q/k/v biases; a config may still say so explicitly (Llama-style key) */
  VOX_TRY(vox_hf_config_bool(hf, "attention_bias", true, &c.attention_bias));
  double attn_drop = 0;
  VOX_TRY(vox_hf_config_float(hf, "attention_dropout", 0.0, &attn_drop));
  if (attn_drop != 0)
    vox_log_warn("%s: attention_dropout %g is not applied (vox drops on the residual branches: cfg.dropout)", path,
                 attn_drop);
  int head_dim = 0;
  VOX_TRY(get_int(hf, "head_dim", false, 0, &head_dim));
  if (c.num_attention_heads > 0 && head_dim && head_dim * c.num_attention_heads != c.hidden_size)
    return vox_errorf(VOX_ERR_INVALID, "%s: head_dim %d differs from hidden_size %d / num_attention_heads %d", path,
                      head_dim, c.hidden_size, c.num_attention_heads);
  *out = c;
  return VOX_OK;
}

/* Tensors a Qwen2 checkpoint may hold that are no parameters here. */
static const char *const k_ignore_always[] = {"*.rotary_emb.inv_freq", NULL};
static const char *const k_ignore_tied[] = {"*.rotary_emb.inv_freq", "lm_head.weight", NULL};

vox_status vox_qwen2_load_hf(vox_qwen2 *m, vox_params *reg, const char *prefix, const char *hf_dir) {
  vox_hf_config *hf = NULL;
  vox_qwen2_config cfg;
  const char **foreign = NULL;
  if (!prefix) prefix = "";
  *m = (vox_qwen2){0};
  vox_status st;
  VOX_CHECK_GOTO(st, vox_hf_config_load(hf_dir, &hf), done);
  VOX_CHECK_GOTO(st, vox_qwen2_config_from_hf(hf, &cfg), done);
  vox_rng rng = vox_rng_make(0); /* every value is overwritten by the load */
  VOX_CHECK_GOTO(st, vox_qwen2_init(m, reg, prefix, &cfg, &rng), done);
  VOX_CHECK_GOTO(st, vox_hf_model_foreign_names(reg, prefix, m->param_first, m->param_count, &foreign), done);
  vox_hf_load_opts opts = {.strict = true, .ignore_missing = foreign,
                           .ignore_unexpected = cfg.tie_word_embeddings ? k_ignore_tied : k_ignore_always};
  st = vox_hf_load_params(reg, prefix, hf_dir, &opts);
done:
  if (st != VOX_OK) {
    vox_qwen2_release(m);
    vox_error_context(st, "qwen2 from %s: ", hf_dir);
  }
  free(foreign);
  vox_hf_config_free(hf);
  return st;
}

static vox_status write_text(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  if (!f) return vox_errorf(VOX_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
  bool ok = fputs(text, f) >= 0 && fputc('\n', f) != EOF;
  if (fclose(f) != 0) ok = false;
  return ok ? VOX_OK : vox_errorf(VOX_ERR_IO, "%s: write failed", path);
}

/* f32 values as JSON numbers that read back to the same float (1e-06, not 9.99999997e-07). */
static void add_float(cJSON *o, const char *key, float v) {
  char buf[32];
  for (int prec = 1; prec <= 9; prec++) {
    snprintf(buf, sizeof buf, "%.*g", prec, (double)v);
    if ((float)strtod(buf, NULL) == v) break;
  }
  cJSON_AddRawToObject(o, key, buf);
}

vox_status vox_qwen2_save_hf(const vox_qwen2 *m, const vox_params *reg, const char *dir, vox_dtype on_disk,
                             size_t shard_bytes) {
  const vox_qwen2_config *c = &m->cfg;
  VOX_TRY(vox_hf_model_check_exclusive(reg, m->prefix, m->param_first, m->param_count, "qwen2 save"));
  /* the weights first: vox_hf_save_params creates dir */
  VOX_TRY(vox_hf_save_params(reg, m->prefix, dir, on_disk, shard_bytes));
  cJSON *o = cJSON_CreateObject();
  if (!o) return vox_errorf(VOX_ERR_NOMEM, "qwen2 save: out of memory");
  cJSON *arch = cJSON_AddArrayToObject(o, "architectures");
  cJSON_AddItemToArray(arch, cJSON_CreateString("Qwen2ForCausalLM"));
  cJSON_AddStringToObject(o, "model_type", "qwen2");
  cJSON_AddNumberToObject(o, "vocab_size", c->vocab_size);
  cJSON_AddNumberToObject(o, "hidden_size", c->hidden_size);
  cJSON_AddNumberToObject(o, "intermediate_size", c->intermediate_size);
  cJSON_AddNumberToObject(o, "num_hidden_layers", c->num_hidden_layers);
  cJSON_AddNumberToObject(o, "num_attention_heads", c->num_attention_heads);
  cJSON_AddNumberToObject(o, "num_key_value_heads", c->num_key_value_heads);
  cJSON_AddNumberToObject(o, "max_position_embeddings", c->max_position_embeddings);
  cJSON_AddStringToObject(o, "hidden_act", "silu");
  add_float(o, "rope_theta", c->rope_theta);
  add_float(o, "rms_norm_eps", c->rms_norm_eps);
  add_float(o, "initializer_range", c->initializer_range);
  cJSON_AddBoolToObject(o, "tie_word_embeddings", c->tie_word_embeddings);
  if (!c->attention_bias) cJSON_AddBoolToObject(o, "attention_bias", false); /* vox extension; HF Qwen2 has biases */
  cJSON_AddBoolToObject(o, "use_sliding_window", false);
  cJSON_AddNullToObject(o, "rope_scaling");
  cJSON_AddNumberToObject(o, "attention_dropout", 0.0);
  cJSON_AddStringToObject(o, "torch_dtype", on_disk == VOX_BF16 ? "bfloat16" : "float32");
  char *text = cJSON_Print(o);
  cJSON_Delete(o);
  if (!text) return vox_errorf(VOX_ERR_NOMEM, "qwen2 save: out of memory");
  char path[4096];
  snprintf(path, sizeof path, "%s/config.json", dir);
  vox_status st = write_text(path, text);
  free(text);
  return st;
}
