/* Loading one part of the composite from HF safetensors (through io/hf_weights, with the part's name mapping) or
 * from a vox HDF5 checkpoint's /params group, all-or-nothing: every tensor is read and checked before any
 * parameter is overwritten. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/checkpoint.h"
#include "io/hf_weights.h"
#include "models/speech_llm_internal.h"
#include "text/tokenizer.h"

static int part_index(const char *part) {
  for (int i = 0; i < 6; i++)
    if (!strcmp(vox_model_parts[i], part)) return i;
  return -1;
}

static bool part_present(const vox_speech_llm *m, int i) {
  const vox_model_config *c = &m->cfg;
  bool has[6] = {c->has_encoder, c->has_input_projector, c->has_llm, c->has_output_projector, c->has_voice_lm,
                 c->has_duplex};
  return has[i];
}

static bool is_lora(const char *name) { return strstr(name, ".lora_A.weight") || strstr(name, ".lora_B.weight"); }

/* Whisper files: WhisperForConditionalGeneration/WhisperModel name the encoder "model.encoder.*", a bare
 * WhisperEncoder "encoder.*"; everything else (decoder, proj_out) is not ours. */
static const char *whisper_rename(const char *file_name, char *buf, size_t cap, void *ctx) {
  (void)ctx;
  if (!strncmp(file_name, "model.encoder.", 14)) return snprintf(buf, cap, "%s", file_name + 6), buf;
  if (!strncmp(file_name, "encoder.", 8)) return file_name;
  return NULL;
}

/* SenseVoice files (data_tools/convert_funasr.py): the encoder is "encoder.*"; ctc.*, embed.* are not ours. */
static const char *sanm_rename(const char *file_name, char *buf, size_t cap, void *ctx) {
  (void)buf, (void)cap, (void)ctx;
  return strncmp(file_name, "encoder.", 8) ? NULL : file_name;
}

static vox_status load_hf(vox_speech_llm *m, int part, const char *prefix, const char *dir) {
  static const char *const lora_globs[] = {"*.lora_A.weight", "*.lora_B.weight", NULL};
  static const char *const llm_missing[] = {"*.lora_A.weight", "*.lora_B.weight", NULL};
  static const char *const tied_unexpected[] = {"lm_head.weight", NULL};
  vox_hf_load_opts o = {.strict = true, .ignore_missing = lora_globs};
  static const char *const vocab_rows[] = {"model.embed_tokens.weight", "lm_head.weight", NULL};
  int32_t *rows = NULL;
  if (part == 2 || part == 4) {
    o.ignore_missing = llm_missing;
    const vox_qwen2_config *q = part == 2 ? &m->cfg.llm : &m->cfg.voice_lm.lm;
    if (q->tie_word_embeddings) o.ignore_unexpected = tied_unexpected; /* some tied checkpoints still write it */
  }
  if (part == 2 && m->cfg.vocab_subset[0]) { /* the kept tokens' rows of the full embedding and LM head */
    VOX_TRY(vox_vocab_subset_read(m->cfg.vocab_subset, &rows, &o.n_rows));
    o.rows = rows;
    o.row_globs = vocab_rows;
  }
  /* A CTC head is ours (its alphabet is the recipe's): HF/FunASR files never hold it, it stays as initialised. */
  static const char *const encoder_missing[] = {"*.lora_A.weight", "*.lora_B.weight", "ctc.ctc_lo.*", NULL};
  if (part == 0) {
    o.rename = m->cfg.encoder.kind == VOX_ENCODER_WHISPER ? whisper_rename : sanm_rename;
    o.ignore_missing = encoder_missing;
  }
  vox_status st = vox_hf_load_params(m->params, prefix, dir, &o);
  free(rows);
  return st;
}

static vox_status load_ckpt(vox_speech_llm *m, const char *prefix, const char *path) {
  char b1[96], b2[96];
  vox_ckpt_reader *r = NULL;
  VOX_TRY(vox_ckpt_reader_open(path, &r));
  size_t lp = strlen(prefix);
  vox_params *reg = m->params;
  vox_tensor **staged = calloc((size_t)(reg->count ? reg->count : 1), sizeof *staged);
  char *report = calloc(1, 4096);
  size_t rlen = 0;
  int n_bad = 0, n_loaded = 0;
  vox_status st = VOX_OK;
  if (!staged || !report) {
    st = vox_errorf(VOX_ERR_NOMEM, "speech_llm load: out of memory");
    goto done;
  }
  for (int i = 0; i < reg->count; i++) {
    const char *name = reg->items[i].name;
    vox_tensor *p = reg->items[i].tensor;
    if (strncmp(name, prefix, lp)) continue;
    if (!vox_ckpt_has(r, "params", name)) {
      if (is_lora(name)) continue;
      n_bad++;
      if (rlen < 3800) rlen += (size_t)snprintf(report + rlen, 4096 - rlen, "\n  missing: %s %s", name,
                                                vox_tensor_describe(p, b1, sizeof b1));
      continue;
    }
    vox_tensor *t = NULL;
    vox_status rs = vox_ckpt_read_tensor(r, "params", name, &t);
    if (rs != VOX_OK) {
      st = rs;
      goto done;
    }
    if (!vox_tensor_same_shape(t, p)) {
      n_bad++;
      if (rlen < 3800)
        rlen += (size_t)snprintf(report + rlen, 4096 - rlen, "\n  shape: %s is %s in the file, the model has %s", name,
                                 vox_tensor_describe(t, b1, sizeof b1), vox_tensor_describe(p, b2, sizeof b2));
      vox_tensor_release(t);
      continue;
    }
    staged[i] = t;
  }
  if (n_bad) {
    st = vox_errorf(VOX_ERR_SHAPE, "speech_llm load '%s' from %s: %d tensor(s) missing or mis-shaped, nothing loaded:%s",
                    prefix, path, n_bad, report);
    goto done;
  }
  for (int i = 0; i < reg->count; i++)
    if (staged[i]) {
      VOX_CHECK_GOTO(st, vox_tensor_copy_(reg->items[i].tensor, staged[i]), done);
      n_loaded++;
    }
  if (!n_loaded) st = vox_errorf(VOX_ERR_NOT_FOUND, "speech_llm load: %s holds no parameter under '%s'", path, prefix);
done:
  if (staged)
    for (int i = 0; i < reg->count; i++) vox_tensor_release(staged[i]);
  free(staged);
  free(report);
  vox_ckpt_reader_close(r);
  return st;
}

vox_status vox_speech_llm_load_part(vox_speech_llm *m, const char *part, const char *source) {
  int i = part_index(part);
  if (i < 0)
    return vox_errorf(VOX_ERR_INVALID, "speech_llm load: unknown part '%s' (audio_encoder, input_projector, llm, "
                      "output_projector, voice_lm, duplex)", part);
  if (!part_present(m, i)) return vox_errorf(VOX_ERR_STATE, "speech_llm load: the model has no %s", part);
  char prefix[64];
  snprintf(prefix, sizeof prefix, "%s.", part);
  vox_status st;
  if (!strncmp(source, "hf:", 3)) st = load_hf(m, i, prefix, source + 3);
  else if (!strncmp(source, "ckpt:", 5)) st = load_ckpt(m, prefix, source + 5);
  else return vox_errorf(VOX_ERR_INVALID, "speech_llm load %s: source '%s' must be hf:DIR or ckpt:PATH", part, source);
  if (st != VOX_OK) return vox_error_context(st, "loading %s from %s: ", part, source);
  return VOX_OK;
}

vox_status vox_speech_llm_load_pretrained(vox_speech_llm *m) {
  for (int i = 0; i < 6; i++)
    if (part_present(m, i) && m->cfg.pretrained[i][0])
      VOX_TRY(vox_speech_llm_load_part(m, vox_model_parts[i], m->cfg.pretrained[i]));
  return VOX_OK;
}
