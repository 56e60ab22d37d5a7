/* The Whisper encoder in Hugging Face form: WhisperConfig keys -> vox_whisper_config, and loading the encoder's
 * tensors from WhisperModel / WhisperForConditionalGeneration safetensors (renaming "model.encoder.*", skipping
 * the decoder). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "io/hf_config.h"
#include "io/hf_weights.h"
#include "models/hf_model_io.h"
#include "models/whisper_encoder.h"

static vox_status get_int(const vox_hf_config *hf, const char *key, bool required, int dflt, int *out) {
  int64_t v = dflt;
  VOX_TRY(required ? vox_hf_config_int_req(hf, key, &v) : vox_hf_config_int(hf, key, dflt, &v));
  if (v < 0 || v > 0x7fffffff)
    return vox_errorf(VOX_ERR_PARSE, "%s: \"%s\" = %lld is out of range", vox_hf_config_path(hf), key, (long long)v);
  *out = (int)v;
  return VOX_OK;
}

vox_status vox_whisper_config_from_hf(const vox_hf_config *hf, vox_whisper_config *out) {
  const char *path = vox_hf_config_path(hf), *s = NULL;
  vox_whisper_config c = vox_whisper_config_default();
  VOX_TRY(vox_hf_config_string(hf, "model_type", "whisper", &s));
  if (strcmp(s, "whisper") != 0)
    return vox_errorf(VOX_ERR_INVALID, "%s: model_type \"%s\" is not a Whisper model (expected \"whisper\")", path, s);
  VOX_TRY(vox_hf_config_string(hf, "activation_function", "gelu", &s));
  if (strcmp(s, "gelu") != 0)
    return vox_errorf(VOX_ERR_INVALID, "%s: activation_function \"%s\" is not supported (Whisper uses \"gelu\")",
                      path, s);
  VOX_TRY(get_int(hf, "num_mel_bins", false, c.num_mel_bins, &c.num_mel_bins));
  VOX_TRY(get_int(hf, "d_model", true, 0, &c.d_model));
  VOX_TRY(get_int(hf, "encoder_layers", true, 0, &c.encoder_layers));
  VOX_TRY(get_int(hf, "encoder_attention_heads", true, 0, &c.encoder_attention_heads));
  VOX_TRY(get_int(hf, "encoder_ffn_dim", true, 0, &c.encoder_ffn_dim));
  VOX_TRY(get_int(hf, "max_source_positions", false, c.max_source_positions, &c.max_source_positions));
  double v;
  VOX_TRY(vox_hf_config_float(hf, "dropout", 0.0, &v));
  c.dropout = (float)v;
  const char *const unapplied[] = {"attention_dropout", "activation_dropout", "encoder_layerdrop"};
  for (int i = 0; i < 3; i++) {
    double p;
    VOX_TRY(vox_hf_config_float(hf, unapplied[i], 0.0, &p));
    if (p != 0) vox_log_warn("%s: %s %g is not applied (only \"dropout\" is)", path, unapplied[i], p);
  }
  VOX_TRY(vox_hf_config_float(hf, "init_std", 0.02, &v));
  c.init_std = (float)v;
  *out = c;
  return VOX_OK;
}

static bool starts_with(const char *s, const char *p) { return strncmp(s, p, strlen(p)) == 0; }

/* file name -> name below the prefix: "model.encoder.X" -> "encoder.X"; decoder tensors and proj_out skipped
 * (NULL); anything else unchanged, so a stray tensor is still reported as unexpected. */
static const char *rename_encoder(const char *file_name, char *buf, size_t cap, void *ctx) {
  (void)ctx;
  if (starts_with(file_name, "model.decoder.") || starts_with(file_name, "decoder.") ||
      strcmp(file_name, "proj_out.weight") == 0)
    return NULL;
  if (starts_with(file_name, "model.encoder.")) {
    snprintf(buf, cap, "%s", file_name + strlen("model."));
    return buf;
  }
  return file_name;
}

vox_status vox_whisper_encoder_load_hf(vox_whisper_encoder *m, vox_params *reg, const char *prefix,
                                       const char *hf_dir) {
  vox_hf_config *hf = NULL;
  vox_whisper_config cfg;
  const char **foreign = NULL;
  if (!prefix) prefix = "";
  *m = (vox_whisper_encoder){0};
  vox_status st;
  VOX_CHECK_GOTO(st, vox_hf_config_load(hf_dir, &hf), done);
  VOX_CHECK_GOTO(st, vox_whisper_config_from_hf(hf, &cfg), done);
  vox_rng rng = vox_rng_make(0); /* every value is overwritten by the load */
  VOX_CHECK_GOTO(st, vox_whisper_encoder_init(m, reg, prefix, &cfg, &rng), done);
  VOX_CHECK_GOTO(st, vox_hf_model_foreign_names(reg, prefix, m->param_first, m->param_count, &foreign), done);
  vox_hf_load_opts opts = {.strict = true, .ignore_missing = foreign, .rename = rename_encoder};
  st = vox_hf_load_params(reg, prefix, hf_dir, &opts);
done:
  if (st != VOX_OK) {
    vox_whisper_encoder_release(m);
    vox_error_context(st, "whisper encoder from %s: ", hf_dir);
  }
  free(foreign);
  vox_hf_config_free(hf);
  return st;
}
