/* The SAN-M encoder in Hugging Face form: config.json (model_type "sensevoice", as data_tools/convert_funasr.py
 * writes it) -> vox_sanm_encoder_config, and loading / saving the encoder's "encoder.*" tensors as safetensors. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "io/hf_config.h"
#include "io/hf_weights.h"
#include "models/sanm_encoder.h"

vox_status vox_sanm_encoder_config_from_hf(const vox_hf_config *hf, vox_sanm_encoder_config *out) {
  const char *type = NULL, *path = vox_hf_config_path(hf);
  *out = (vox_sanm_encoder_config){0};
  VOX_TRY(vox_hf_config_string(hf, "model_type", "", &type));
  if (strcmp(type, "sensevoice") != 0)
    return vox_errorf(VOX_ERR_INVALID, "%s: model_type \"%s\" is not a SenseVoice SAN-M encoder (expected \"sensevoice\")",
                      path, type);
  static const char *const req[] = {"input_size", "output_size", "attention_heads", "linear_units",
                                    "num_blocks", "tp_blocks", "kernel_size"};
  int *dst[] = {&out->input_size, &out->output_size, &out->attention_heads, &out->linear_units,
                &out->num_blocks, &out->tp_blocks, &out->kernel_size};
  for (size_t i = 0; i < sizeof req / sizeof *req; i++) {
    int64_t v;
    VOX_TRY(vox_hf_config_int_req(hf, req[i], &v));
    if (v < 0 || v > 1 << 24)
      return vox_errorf(VOX_ERR_PARSE, "%s: \"%s\" = %lld is out of range", path, req[i], (long long)v);
    *dst[i] = (int)v;
  }
  int64_t shift;
  double drop, adrop, eps;
  VOX_TRY(vox_hf_config_int(hf, "sanm_shfit", 0, &shift));
  VOX_TRY(vox_hf_config_float(hf, "dropout_rate", 0.1, &drop));
  VOX_TRY(vox_hf_config_float(hf, "attention_dropout_rate", 0.1, &adrop));
  VOX_TRY(vox_hf_config_float(hf, "layer_norm_eps", 1e-5, &eps));
  if (shift < 0 || shift > 1 << 16)
    return vox_errorf(VOX_ERR_PARSE, "%s: \"sanm_shfit\" = %lld is out of range", path, (long long)shift);
  out->sanm_shfit = (int)shift;
  out->dropout_rate = (float)drop;
  out->attention_dropout_rate = (float)adrop;
  out->norm_eps = (float)eps;
  return VOX_OK;
}

/* Only "encoder.*" tensors belong to the encoder; a full SenseVoice save's ctc.* / embed.* are skipped. */
static const char *rename_encoder(const char *file_name, char *buf, size_t cap, void *ctx) {
  (void)buf, (void)cap, (void)ctx;
  return strncmp(file_name, "encoder.", 8) == 0 ? file_name : NULL;
}

/* A scratch registry retaining just this encoder's parameters (prefix + "encoder."): loads and saves then concern
 * them alone, whatever else shares the registry and the prefix (an LLM, a projector). */
static vox_status own_params(const vox_sanm_encoder *m, const vox_params *reg, vox_params **out) {
  char own[VOX_PARAM_NAME_MAX];
  snprintf(own, sizeof own, "%sencoder.", m->prefix);
  size_t n = strlen(own);
  VOX_TRY(vox_params_new(out));
  for (int i = 0; i < reg->count; i++) {
    if (strncmp(reg->items[i].name, own, n) != 0) continue;
    vox_status st = vox_params_add(*out, reg->items[i].name, reg->items[i].tensor);
    if (st != VOX_OK) {
      vox_params_free(*out);
      *out = NULL;
      return st;
    }
  }
  return VOX_OK;
}

vox_status vox_sanm_encoder_load_hf(vox_sanm_encoder *m, vox_params *reg, const char *prefix, const char *dir) {
  vox_hf_config *hf = NULL;
  vox_params *sub = NULL;
  vox_sanm_encoder_config cfg;
  *m = (vox_sanm_encoder){0};
  vox_status st;
  VOX_CHECK_GOTO(st, vox_hf_config_load(dir, &hf), done);
  VOX_CHECK_GOTO(st, vox_sanm_encoder_config_from_hf(hf, &cfg), done);
  vox_rng rng = vox_rng_make(0); /* every value is overwritten by the load */
  VOX_CHECK_GOTO(st, vox_sanm_encoder_init(m, reg, prefix, &cfg, &rng), done);
  VOX_CHECK_GOTO(st, own_params(m, reg, &sub), done);
  vox_hf_load_opts opts = {.strict = true, .rename = rename_encoder};
  st = vox_hf_load_params(sub, m->prefix, dir, &opts);
done:
  if (st != VOX_OK) {
    vox_sanm_encoder_release(m);
    vox_error_context(st, "sanm encoder from %s: ", dir);
  }
  vox_params_free(sub);
  vox_hf_config_free(hf);
  return st;
}

vox_status vox_sanm_encoder_save_hf(const vox_sanm_encoder *m, const vox_params *reg, const char *dir,
                                    vox_dtype on_disk) {
  if (mkdir(dir, 0777) != 0 && errno != EEXIST)
    return vox_errorf(VOX_ERR_IO, "sanm encoder: cannot create %s: %s", dir, strerror(errno));
  char path[4096];
  snprintf(path, sizeof path, "%s/config.json", dir);
  FILE *f = fopen(path, "w");
  if (!f) return vox_errorf(VOX_ERR_IO, "sanm encoder: cannot write %s: %s", path, strerror(errno));
  const vox_sanm_encoder_config *c = &m->cfg;
  fprintf(f,
          "{\n  \"model_type\": \"sensevoice\",\n  \"architectures\": [\"SenseVoiceEncoderSmall\"],\n"
          "  \"input_size\": %d,\n  \"output_size\": %d,\n  \"attention_heads\": %d,\n  \"linear_units\": %d,\n"
          "  \"num_blocks\": %d,\n  \"tp_blocks\": %d,\n  \"kernel_size\": %d,\n  \"sanm_shfit\": %d,\n"
          "  \"dropout_rate\": %.9g,\n  \"attention_dropout_rate\": %.9g,\n  \"layer_norm_eps\": %.9g,\n"
          "  \"torch_dtype\": \"%s\"\n}\n",
          c->input_size, c->output_size, c->attention_heads, c->linear_units, c->num_blocks, c->tp_blocks,
          c->kernel_size, c->sanm_shfit, (double)c->dropout_rate, (double)c->attention_dropout_rate,
          (double)c->norm_eps, on_disk == VOX_BF16 ? "bfloat16" : "float32");
  if (fclose(f) != 0) return vox_errorf(VOX_ERR_IO, "sanm encoder: writing %s failed: %s", path, strerror(errno));
  vox_params *sub = NULL;
  VOX_TRY(own_params(m, reg, &sub));
  vox_status st = vox_hf_save_params(sub, m->prefix, dir, on_disk, 0);
  vox_params_free(sub);
  return st == VOX_OK ? st : vox_error_context(st, "sanm encoder to %s: ", dir);
}
