/* PEFT export of LoRA adapters: adapter_model.safetensors with PEFT's tensor names and adapter_config.json, so
 * `PeftModel.from_pretrained(base, dir)` loads what vox trained. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "io/safetensors.h"
#include "nn/lora.h"

static vox_status write_text(const char *path, const char *text) {
  char tmp[4200];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  FILE *f = fopen(tmp, "wb");
  if (!f) return vox_errorf(VOX_ERR_IO, "lora: cannot write %s: %s", tmp, strerror(errno));
  bool ok = fputs(text, f) >= 0;
  ok = (fclose(f) == 0) && ok;
  if (!ok || rename(tmp, path) != 0) {
    remove(tmp);
    return vox_errorf(VOX_ERR_IO, "lora: cannot write %s", path);
  }
  return VOX_OK;
}

vox_status vox_lora_save_peft(const vox_params *reg, const char *prefix, const char *dir, const char *base_model,
                              vox_dtype on_disk) {
  vox_lora **ad = NULL;
  int n = 0;
  if (!prefix) prefix = "";
  size_t lp = strlen(prefix);
  VOX_TRY(vox_lora_list(reg, &ad, &n));
  int k = 0;
  for (int i = 0; i < n; i++)
    if (!strncmp(ad[i]->name, prefix, lp)) ad[k++] = ad[i];
  n = k;
  char **names = calloc((size_t)(2 * n + 1), sizeof *names);
  const vox_tensor **tensors = calloc((size_t)(2 * n + 1), sizeof *tensors);
  cJSON *cfg = NULL, *targets = NULL;
  char *json = NULL, path[4096];
  vox_status st = VOX_OK;
  if (!names || !tensors) {
    st = vox_errorf(VOX_ERR_NOMEM, "lora: out of memory");
    goto done;
  }
  if (n == 0) {
    st = vox_errorf(VOX_ERR_NOT_FOUND, "lora save: no adapter under '%s'", prefix);
    goto done;
  }
  for (int i = 1; i < n; i++)
    if (ad[i]->rank != ad[0]->rank || ad[i]->alpha != ad[0]->alpha || ad[i]->dropout != ad[0]->dropout) {
      st = vox_errorf(VOX_ERR_UNSUPPORTED, "lora save: '%s' (r %d, alpha %g) differs from '%s' (r %d, alpha %g); "
                      "one PEFT config holds one rank and alpha", ad[i]->name, ad[i]->rank, ad[i]->alpha,
                      ad[0]->name, ad[0]->rank, ad[0]->alpha);
      goto done;
    }
  if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
    st = vox_errorf(VOX_ERR_IO, "lora save: cannot create %s: %s", dir, strerror(errno));
    goto done;
  }
  targets = cJSON_CreateArray();
  for (int i = 0; i < n; i++) {
    const char *below = ad[i]->name + lp;
    for (int w = 0; w < 2; w++) {
      size_t len = strlen(below) + 64;
      names[2 * i + w] = malloc(len);
      if (!names[2 * i + w]) {
        st = vox_errorf(VOX_ERR_NOMEM, "lora: out of memory");
        goto done;
      }
      snprintf(names[2 * i + w], len, "base_model.model.%s.lora_%c.weight", below, w ? 'B' : 'A');
      tensors[2 * i + w] = w ? ad[i]->B : ad[i]->A;
    }
    const char *leaf = strrchr(below, '.');
    leaf = leaf ? leaf + 1 : below;
    bool seen = false;
    cJSON *it;
    cJSON_ArrayForEach(it, targets) seen |= !strcmp(it->valuestring, leaf);
    if (!seen) cJSON_AddItemToArray(targets, cJSON_CreateString(leaf));
  }
  snprintf(path, sizeof path, "%s/adapter_model.safetensors", dir);
  const char *mk[] = {"format"}, *mv[] = {"pt"};
  VOX_CHECK_GOTO(st, vox_safetensors_write(path, 2 * n, (const char *const *)names, tensors, on_disk, 1, mk, mv), done);
  cfg = cJSON_CreateObject();
  cJSON_AddStringToObject(cfg, "peft_type", "LORA");
  cJSON_AddStringToObject(cfg, "task_type", "CAUSAL_LM");
  cJSON_AddStringToObject(cfg, "base_model_name_or_path", base_model ? base_model : "");
  cJSON_AddNumberToObject(cfg, "r", ad[0]->rank);
  cJSON_AddNumberToObject(cfg, "lora_alpha", ad[0]->alpha);
  cJSON_AddNumberToObject(cfg, "lora_dropout", ad[0]->dropout);
  cJSON_AddItemToObject(cfg, "target_modules", targets);
  targets = NULL;
  cJSON_AddStringToObject(cfg, "bias", "none");
  cJSON_AddBoolToObject(cfg, "fan_in_fan_out", false);
  cJSON_AddBoolToObject(cfg, "inference_mode", true);
  cJSON_AddBoolToObject(cfg, "use_rslora", false);
  cJSON_AddNullToObject(cfg, "modules_to_save");
  json = cJSON_Print(cfg);
  if (!json) {
    st = vox_errorf(VOX_ERR_NOMEM, "lora: out of memory");
    goto done;
  }
  snprintf(path, sizeof path, "%s/adapter_config.json", dir);
  st = write_text(path, json);
done:
  if (names)
    for (int i = 0; i < 2 * n; i++) free(names[i]);
  free(names);
  free(tensors);
  free(ad);
  cJSON_Delete(cfg);
  cJSON_Delete(targets);
  free(json);
  return st;
}
