/* Parsing of the `model:` node: one function per part, each checking its keys against a schema (unknown keys are
 * errors with suggestions), reading typed values (errors name file:line and the key) and checking sizes. */
#include "models/model_config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "text/tokenizer.h"

const char *const vox_model_parts[6] = {"audio_encoder", "input_projector", "llm", "output_projector", "voice_lm",
                                        "duplex"};

/* Integer key into an int field, range-checked (must be >= lo). */
static vox_status get_int(const vox_config *n, const char *key, int dflt, int lo, int *out) {
  int64_t v;
  char b1[256], b2[256];
  VOX_TRY(vox_config_int(n, key, dflt, &v));
  if (v < lo || v > (1 << 30)) {
    const vox_config *k = vox_config_get(n, key);
    return vox_errorf(VOX_ERR_INVALID, "%s: %s = %lld must be >= %d", vox_config_where(k ? k : n, b1, sizeof b1),
                      k ? vox_config_path(k, b2, sizeof b2) : key, (long long)v, lo);
  }
  *out = (int)v;
  return VOX_OK;
}

static vox_status get_float(const vox_config *n, const char *key, double dflt, float *out) {
  double v;
  VOX_TRY(vox_config_float(n, key, dflt, &v));
  *out = (float)v;
  return VOX_OK;
}

/* An error about `key` in node n (or about n itself when the key is absent). */
static vox_status bad(const vox_config *n, const char *key, const char *msg) {
  char b1[256], b2[256];
  const vox_config *k = key ? vox_config_get(n, key) : NULL;
  if (!k) k = n;
  return vox_errorf(VOX_ERR_INVALID, "%s: %s: %s", vox_config_where(k, b1, sizeof b1), vox_config_path(k, b2, sizeof b2),
                    msg);
}

static vox_status get_pretrained(const vox_config *n, char *dst) {
  const char *s;
  VOX_TRY(vox_config_string(n, "pretrained", "", &s));
  if (*s && strncmp(s, "hf:", 3) && strncmp(s, "ckpt:", 5))
    return bad(n, "pretrained", "expected \"hf:DIR\" or \"ckpt:PATH\"");
  if (strlen(s) >= VOX_MC_PATH_MAX) return bad(n, "pretrained", "path too long");
  snprintf(dst, VOX_MC_PATH_MAX, "%s", s);
  return VOX_OK;
}

static vox_status parse_encoder(const vox_config *n, vox_mc_encoder *e, char *pretrained) {
  static const char *const keys[] = {"kind", "num_mel_bins", "d_model", "encoder_layers", "encoder_attention_heads",
                                     "encoder_ffn_dim", "max_source_positions", "input_size", "output_size",
                                     "attention_heads", "linear_units", "num_blocks", "tp_blocks", "kernel_size",
                                     "sanm_shfit", "dropout", "checkpoint", "pretrained", "ctc_alphabet", "ctc_tokens", "ctc_compress",
                                     "ctc_compress_threshold", "ctc_posterior", "ctc_posterior_temperature",
                                     NULL};
  VOX_TRY(vox_config_check_keys(n, keys));
  const char *kind, *alphabet;
  VOX_TRY(vox_config_string(n, "kind", "whisper", &kind));
  memset(e, 0, sizeof *e);
  if (!strcmp(kind, "whisper")) e->kind = VOX_ENCODER_WHISPER;
  else if (!strcmp(kind, "sanm")) e->kind = VOX_ENCODER_SANM;
  else return bad(n, "kind", "expected whisper or sanm");
  VOX_TRY(get_float(n, "dropout", 0.0, &e->dropout));
  VOX_TRY(vox_config_bool(n, "checkpoint", false, &e->checkpoint));
  VOX_TRY(get_pretrained(n, pretrained));
  VOX_TRY(vox_config_string(n, "ctc_alphabet", "", &alphabet));
  if (strlen(alphabet) >= sizeof e->ctc_alphabet) return bad(n, "ctc_alphabet", "is longer than 127 bytes");
  for (const char *c = alphabet; *c; c++)
    if ((unsigned char)*c < 0x20 || (unsigned char)*c > 0x7e || strchr(c + 1, *c))
      return bad(n, "ctc_alphabet", "must be printable ASCII symbols, each once");
  strcpy(e->ctc_alphabet, alphabet);
  VOX_TRY(vox_config_bool(n, "ctc_tokens", false, &e->ctc_tokens));
  if (e->ctc_tokens && alphabet[0]) return bad(n, "ctc_tokens", "excludes ctc_alphabet (one CTC head: tokens or symbols)");
  e->ctc_classes = alphabet[0] ? (int)strlen(alphabet) + 1 : 0; /* ctc_tokens: set once the llm is known */
  VOX_TRY(vox_config_bool(n, "ctc_compress", false, &e->ctc_compress));
  if (e->ctc_compress && !alphabet[0] && !e->ctc_tokens)
    return bad(n, "ctc_compress", "needs a CTC head (ctc_alphabet or ctc_tokens) to find the symbols");
  VOX_TRY(get_float(n, "ctc_compress_threshold", 0.0, &e->ctc_compress_threshold));
  if (e->ctc_compress_threshold < 0.0f || e->ctc_compress_threshold > 1.0f)
    return bad(n, "ctc_compress_threshold", "must be a blank probability in [0, 1] (0: best path)");
  if (e->ctc_compress_threshold > 0.0f && !e->ctc_compress)
    return bad(n, "ctc_compress_threshold", "needs ctc_compress");
  VOX_TRY(vox_config_bool(n, "ctc_posterior", false, &e->ctc_posterior));
  if (e->ctc_posterior && !(e->ctc_tokens && e->ctc_compress))
    return bad(n, "ctc_posterior",
               "needs ctc_tokens and ctc_compress (a posterior over the LLM's tokens per position)");
  VOX_TRY(get_float(n, "ctc_posterior_temperature", 1.0, &e->ctc_posterior_temperature));
  if (!(e->ctc_posterior_temperature > 0.0f)) return bad(n, "ctc_posterior_temperature", "must be > 0");
  if (vox_config_get(n, "ctc_posterior_temperature") && !e->ctc_posterior)
    return bad(n, "ctc_posterior_temperature", "needs ctc_posterior");
  static const char *const whisper_only[] = {"num_mel_bins", "d_model", "encoder_layers", "encoder_attention_heads",
                                             "encoder_ffn_dim", "max_source_positions", NULL};
  static const char *const sanm_only[] = {"input_size", "output_size", "attention_heads", "linear_units",
                                          "num_blocks", "tp_blocks", "kernel_size", "sanm_shfit", NULL};
  const char *const *other = e->kind == VOX_ENCODER_WHISPER ? sanm_only : whisper_only;
  for (int i = 0; other[i]; i++)
    if (vox_config_get(n, other[i])) return bad(n, other[i], e->kind == VOX_ENCODER_WHISPER
                                                                 ? "is a sanm key but kind is whisper"
                                                                 : "is a whisper key but kind is sanm");
  if (e->kind == VOX_ENCODER_WHISPER) {
    /* Defaults: whisper-small's encoder. */
    VOX_TRY(get_int(n, "num_mel_bins", 80, 1, &e->num_mel_bins));
    VOX_TRY(get_int(n, "d_model", 768, 1, &e->d_model));
    VOX_TRY(get_int(n, "encoder_layers", 12, 0, &e->encoder_layers));
    VOX_TRY(get_int(n, "encoder_attention_heads", 12, 1, &e->encoder_attention_heads));
    VOX_TRY(get_int(n, "encoder_ffn_dim", 4 * e->d_model, 1, &e->encoder_ffn_dim));
    VOX_TRY(get_int(n, "max_source_positions", 1500, 1, &e->max_source_positions));
    if (e->d_model % e->encoder_attention_heads) return bad(n, "encoder_attention_heads", "does not divide d_model");
  } else {
    /* Defaults: SenseVoice-Small's encoder. */
    VOX_TRY(get_int(n, "input_size", 560, 1, &e->input_size));
    VOX_TRY(get_int(n, "output_size", 512, 1, &e->output_size));
    VOX_TRY(get_int(n, "attention_heads", 4, 1, &e->attention_heads));
    VOX_TRY(get_int(n, "linear_units", 2048, 1, &e->linear_units));
    VOX_TRY(get_int(n, "num_blocks", 50, 1, &e->num_blocks));
    VOX_TRY(get_int(n, "tp_blocks", 20, 0, &e->tp_blocks));
    VOX_TRY(get_int(n, "kernel_size", 11, 1, &e->kernel_size));
    VOX_TRY(get_int(n, "sanm_shfit", 0, 0, &e->sanm_shfit));
    if (e->output_size % e->attention_heads) return bad(n, "attention_heads", "does not divide output_size");
  }
  return VOX_OK;
}

static int encoder_width(const vox_mc_encoder *e) {
  return e->kind == VOX_ENCODER_WHISPER ? e->d_model : e->output_size;
}

/* The Qwen2 keys shared by llm and voice_lm (HF config.json names). */
#define QWEN_KEYS                                                                                                    \
  "vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "intermediate_size", \
      "max_position_embeddings", "rope_theta", "rms_norm_eps", "initializer_range", "tie_word_embeddings",           \
      "attention_bias", "dropout", "checkpoint", "pretrained"

static vox_status parse_qwen(const vox_config *n, bool need_vocab, vox_qwen2_config *c) {
  *c = vox_qwen2_config_default();
  if (need_vocab) VOX_TRY(get_int(n, "vocab_size", c->vocab_size, 1, &c->vocab_size));
  VOX_TRY(get_int(n, "hidden_size", c->hidden_size, 1, &c->hidden_size));
  VOX_TRY(get_int(n, "num_hidden_layers", c->num_hidden_layers, 0, &c->num_hidden_layers));
  VOX_TRY(get_int(n, "num_attention_heads", c->num_attention_heads, 1, &c->num_attention_heads));
  VOX_TRY(get_int(n, "num_key_value_heads", c->num_attention_heads, 1, &c->num_key_value_heads));
  VOX_TRY(get_int(n, "intermediate_size", c->intermediate_size, 1, &c->intermediate_size));
  VOX_TRY(get_int(n, "max_position_embeddings", c->max_position_embeddings, 1, &c->max_position_embeddings));
  VOX_TRY(get_float(n, "rope_theta", c->rope_theta, &c->rope_theta));
  VOX_TRY(get_float(n, "rms_norm_eps", c->rms_norm_eps, &c->rms_norm_eps));
  VOX_TRY(get_float(n, "initializer_range", c->initializer_range, &c->initializer_range));
  VOX_TRY(get_float(n, "dropout", c->dropout, &c->dropout));
  VOX_TRY(vox_config_bool(n, "tie_word_embeddings", c->tie_word_embeddings, &c->tie_word_embeddings));
  VOX_TRY(vox_config_bool(n, "attention_bias", c->attention_bias, &c->attention_bias));
  VOX_TRY(vox_config_bool(n, "checkpoint", c->checkpoint, &c->checkpoint));
  if (c->hidden_size % c->num_attention_heads) return bad(n, "num_attention_heads", "does not divide hidden_size");
  if (c->num_attention_heads % c->num_key_value_heads)
    return bad(n, "num_key_value_heads", "does not divide num_attention_heads");
  if ((c->hidden_size / c->num_attention_heads) % 2) return bad(n, "hidden_size", "head dim must be even for RoPE");
  return VOX_OK;
}

static vox_status parse_llm(const vox_config *n, vox_qwen2_config *c, char *pretrained, char *vocab_subset) {
  static const char *const keys[] = {QWEN_KEYS, "vocab_subset", NULL};
  VOX_TRY(vox_config_check_keys(n, keys));
  VOX_TRY(get_pretrained(n, pretrained));
  const char *subset;
  VOX_TRY(vox_config_string(n, "vocab_subset", "", &subset));
  if (*subset) {
    /* Relative to the file that names it, as recipes' other paths are. */
    const vox_config *k = vox_config_get(n, "vocab_subset");
    const char *slash = k->file && subset[0] != '/' ? strrchr(k->file, '/') : NULL;
    int dir = slash ? (int)(slash - k->file) + 1 : 0;
    if (dir + strlen(subset) >= VOX_MC_PATH_MAX) return bad(n, "vocab_subset", "path too long");
    snprintf(vocab_subset, VOX_MC_PATH_MAX, "%.*s%s", dir, dir ? k->file : "", subset);
  }
  return parse_qwen(n, true, c);
}

/* Maps the LLM onto its vocabulary subset: vocab_size becomes the kept count, the audio placeholder its index. */
static vox_status apply_vocab_subset(const vox_config *node, vox_model_config *m) {
  const vox_config *k = vox_config_get(vox_config_get(node, "llm"), "vocab_subset");
  char b1[256];
  int32_t *ids, n;
  vox_status st = vox_vocab_subset_read(m->vocab_subset, &ids, &n);
  if (st != VOX_OK) return vox_error_context(st, "%s: model.llm.vocab_subset: ", vox_config_where(k, b1, sizeof b1));
  if (ids[n - 1] >= m->llm.vocab_size) {
    st = vox_errorf(VOX_ERR_INVALID, "%s: model.llm.vocab_subset: %s holds id %d, past llm.vocab_size %d",
                    vox_config_where(k, b1, sizeof b1), m->vocab_subset, ids[n - 1], m->llm.vocab_size);
  }
  int32_t audio = -1;
  for (int32_t i = 0; st == VOX_OK && i < n; i++)
    if (ids[i] == m->audio_token_id) audio = i;
  if (st == VOX_OK && m->has_encoder && audio < 0)
    st = vox_errorf(VOX_ERR_INVALID, "%s: model.llm.vocab_subset: %s lacks the audio placeholder's id %d (%s; "
                    "`vox tokenize --add-special '%s=%d' --subset-out` keeps it)", vox_config_where(k, b1, sizeof b1),
                    m->vocab_subset, m->audio_token_id, m->audio_token_text, m->audio_token_text, m->audio_token_id);
  free(ids);
  if (st != VOX_OK) return st;
  m->vocab_source_size = m->llm.vocab_size;
  m->llm.vocab_size = n;
  if (audio >= 0) m->audio_token_id = audio;
  return VOX_OK;
}

static vox_status parse_voice_lm(const vox_config *n, vox_mc_voice_lm *v, char *pretrained) {
  static const char *const keys[] = {QWEN_KEYS, "speech_vocab", "mix_ratio", NULL};
  VOX_TRY(vox_config_check_keys(n, keys));
  if (vox_config_get(n, "vocab_size"))
    return bad(n, "vocab_size", "is derived (speech_vocab + 4 special tokens); set speech_vocab instead");
  VOX_TRY(get_pretrained(n, pretrained));
  VOX_TRY(parse_qwen(n, false, &v->lm));
  VOX_TRY(get_int(n, "speech_vocab", 6561, 1, &v->speech_vocab)); /* CosyVoice2's S3 tokenizer: 6561 codes */
  v->lm.vocab_size = v->speech_vocab + 4;
  v->mix_text = 5;
  v->mix_speech = 15;
  const vox_config *r = vox_config_get(n, "mix_ratio");
  if (r) {
    if (r->kind != VOX_CONFIG_SEQ || r->n_items != 2) return bad(n, "mix_ratio", "expected [text, speech], e.g. [5, 15]");
    VOX_TRY(get_int(r, "0", 5, 1, &v->mix_text));
    VOX_TRY(get_int(r, "1", 15, 1, &v->mix_speech));
  }
  return VOX_OK;
}

static vox_status parse_projector(const vox_config *n, vox_projector_config *p, char *pretrained) {
  static const char *const keys[] = {"kind", "n_layers", "n_heads", "d_ff", "conv_kernel", "conv_stride", "hidden", "k",
                                     "dropout", "checkpoint", "pretrained", NULL};
  VOX_TRY(vox_config_check_keys(n, keys));
  memset(p, 0, sizeof *p);
  const char *kind;
  VOX_TRY(vox_config_string(n, "kind", "minmo", &kind));
  if (vox_projector_kind_parse(kind, &p->kind) != VOX_OK) return bad(n, "kind", "expected minmo, mlp or linear");
  VOX_TRY(get_int(n, "n_layers", 0, 0, &p->n_layers));
  VOX_TRY(get_int(n, "n_heads", 0, 0, &p->n_heads));
  VOX_TRY(get_int(n, "d_ff", 0, 0, &p->d_ff));
  VOX_TRY(get_int(n, "conv_kernel", 0, 0, &p->conv_kernel));
  VOX_TRY(get_int(n, "conv_stride", 0, 0, &p->conv_stride));
  VOX_TRY(get_int(n, "hidden", 0, 0, &p->hidden));
  VOX_TRY(get_int(n, "k", 0, 0, &p->k));
  VOX_TRY(get_float(n, "dropout", 0.0, &p->dropout));
  VOX_TRY(vox_config_bool(n, "checkpoint", false, &p->checkpoint));
  VOX_TRY(get_pretrained(n, pretrained));
  return VOX_OK;
}

static vox_status parse_duplex(const vox_config *n, vox_duplex_config *d, char *pretrained) {
  static const char *const keys[] = {"d_model", "n_heads", "n_kv_heads", "d_ff", "n_classes", "rope_theta", "dropout",
                                     "pretrained", NULL};
  VOX_TRY(vox_config_check_keys(n, keys));
  memset(d, 0, sizeof *d);
  VOX_TRY(get_int(n, "d_model", 0, 0, &d->d_model));
  VOX_TRY(get_int(n, "n_heads", 0, 0, &d->n_heads));
  VOX_TRY(get_int(n, "n_kv_heads", 0, 0, &d->n_kv_heads));
  VOX_TRY(get_int(n, "d_ff", 0, 0, &d->d_ff));
  VOX_TRY(get_int(n, "n_classes", 4, 2, &d->n_classes));
  VOX_TRY(get_float(n, "rope_theta", 0.0, &d->rope_theta));
  VOX_TRY(get_float(n, "dropout", 0.0, &d->dropout));
  VOX_TRY(get_pretrained(n, pretrained));
  return VOX_OK;
}

static vox_status parse_output_projector(const vox_config *n, char *pretrained) {
  static const char *const keys[] = {"pretrained", NULL};
  VOX_TRY(vox_config_check_keys(n, keys));
  return get_pretrained(n, pretrained);
}

static vox_status parse_audio_token(const vox_config *n, vox_model_config *m) {
  static const char *const keys[] = {"text", "id", NULL};
  VOX_TRY(vox_config_check_keys(n, keys));
  const char *text;
  VOX_TRY(vox_config_string(n, "text", "<|audio|>", &text));
  if (!*text || strlen(text) >= sizeof m->audio_token_text) return bad(n, "text", "must be 1..63 bytes");
  snprintf(m->audio_token_text, sizeof m->audio_token_text, "%s", text);
  int id;
  VOX_TRY(get_int(n, "id", 151669, 0, &id));
  m->audio_token_id = id;
  return VOX_OK;
}

/* A part node must be a map (or empty, for parts without keys). */
static const vox_config *part(const vox_config *node, const char *name, vox_status *st) {
  const vox_config *p = vox_config_get(node, name);
  *st = VOX_OK;
  if (p && p->kind == VOX_CONFIG_NULL) return NULL; /* "duplex: null" (or an override) removes the part */
  if (p && p->kind != VOX_CONFIG_MAP) {
    char b1[256], b2[256];
    *st = vox_errorf(VOX_ERR_PARSE, "%s: %s must be a mapping", vox_config_where(p, b1, sizeof b1),
                     vox_config_path(p, b2, sizeof b2));
  }
  return p;
}

vox_status vox_model_config_parse(const vox_config *node, vox_model_config *out) {
  static const char *const keys[] = {"audio_encoder", "input_projector", "llm", "output_projector", "voice_lm",
                                     "duplex", "audio_token", NULL};
  char b1[256];
  memset(out, 0, sizeof *out);
  snprintf(out->audio_token_text, sizeof out->audio_token_text, "<|audio|>");
  out->audio_token_id = 151669;
  if (!node) return vox_errorf(VOX_ERR_NOT_FOUND, "model config: no `model` node");
  VOX_TRY(vox_config_check_keys(node, keys));
  vox_status st;
  const vox_config *n;
  if ((n = part(node, "audio_encoder", &st)), st != VOX_OK) return st;
  if (n) {
    out->has_encoder = true;
    VOX_TRY(parse_encoder(n, &out->encoder, out->pretrained[0]));
  }
  if ((n = part(node, "llm", &st)), st != VOX_OK) return st;
  if (n) {
    out->has_llm = true;
    VOX_TRY(parse_llm(n, &out->llm, out->pretrained[2], out->vocab_subset));
  }
  if ((n = part(node, "input_projector", &st)), st != VOX_OK) return st;
  if (n) {
    out->has_input_projector = true;
    VOX_TRY(parse_projector(n, &out->input_projector, out->pretrained[1]));
    if (!out->has_encoder || !out->has_llm)
      return vox_errorf(VOX_ERR_INVALID, "%s: model.input_projector needs both audio_encoder and llm",
                        vox_config_where(n, b1, sizeof b1));
    out->input_projector.in_dim = encoder_width(&out->encoder);
    out->input_projector.out_dim = out->llm.hidden_size;
    /* The posterior embeddings are added position by position to the projector's output. */
    const vox_projector_config *pc = &out->input_projector;
    bool odd_kernel = pc->conv_kernel == 0 || pc->conv_kernel % 2; /* 0: the default 3 */
    bool keeps_length = pc->kind == VOX_PROJ_MLP || (pc->kind == VOX_PROJ_LINEAR && pc->k == 1) ||
                        (pc->kind == VOX_PROJ_MINMO && pc->conv_stride == 1 && odd_kernel);
    if (out->encoder.ctc_posterior && !keeps_length)
      return vox_errorf(VOX_ERR_INVALID, "%s: model.audio_encoder.ctc_posterior adds to the input projector's output "
                        "position by position: the projector must keep the length (minmo with conv_stride 1 and an odd "
                        "conv_kernel, mlp, or linear with k 1)", vox_config_where(n, b1, sizeof b1));
  }
  if (out->has_encoder && out->encoder.ctc_posterior && !out->has_input_projector)
    return vox_errorf(VOX_ERR_INVALID, "%s: model.audio_encoder.ctc_posterior needs an input_projector",
                      vox_config_where(node, b1, sizeof b1));
  if ((n = part(node, "voice_lm", &st)), st != VOX_OK) return st;
  if (n) {
    out->has_voice_lm = true;
    VOX_TRY(parse_voice_lm(n, &out->voice_lm, out->pretrained[4]));
  }
  if ((n = part(node, "output_projector", &st)), st != VOX_OK) return st;
  if (n) {
    out->has_output_projector = true;
    VOX_TRY(parse_output_projector(n, out->pretrained[3]));
    if (!out->has_llm || !out->has_voice_lm)
      return vox_errorf(VOX_ERR_INVALID, "%s: model.output_projector needs both llm and voice_lm",
                        vox_config_where(n, b1, sizeof b1));
    out->output_projector_in = out->llm.hidden_size;
    out->output_projector_out = out->voice_lm.lm.hidden_size;
  }
  if ((n = part(node, "duplex", &st)), st != VOX_OK) return st;
  if (n) {
    out->has_duplex = true;
    VOX_TRY(parse_duplex(n, &out->duplex, out->pretrained[5]));
    if (!out->has_llm)
      return vox_errorf(VOX_ERR_INVALID, "%s: model.duplex needs an llm", vox_config_where(n, b1, sizeof b1));
    if (out->has_encoder && out->encoder.ctc_compress)
      return vox_errorf(VOX_ERR_INVALID, "%s: model.duplex labels every projector frame, which "
                        "model.audio_encoder.ctc_compress removes", vox_config_where(n, b1, sizeof b1));
    out->duplex.in_dim = out->llm.hidden_size;
  }
  if ((n = part(node, "audio_token", &st)), st != VOX_OK) return st;
  if (n) VOX_TRY(parse_audio_token(n, out));
  out->audio_token_source_id = out->audio_token_id;
  if (out->has_llm) out->vocab_source_size = out->llm.vocab_size;
  if (out->vocab_subset[0]) VOX_TRY(apply_vocab_subset(node, out));
  if (out->has_encoder && out->encoder.ctc_tokens) {
    if (!out->has_llm) {
      const vox_config *a = vox_config_get(node, "audio_encoder");
      return vox_errorf(VOX_ERR_INVALID, "%s: model.audio_encoder.ctc_tokens: the head is over the LLM's tokens, and "
                        "the model has no llm", vox_config_where(vox_config_get(a, "ctc_tokens"), b1, sizeof b1));
    }
    out->encoder.ctc_classes = out->llm.vocab_size + 1;
  }
  /* Without an encoder a subset need not keep the placeholder, which then goes unused. */
  if (out->has_llm && (out->has_encoder || !out->vocab_subset[0]) && out->audio_token_id >= out->llm.vocab_size) {
    const vox_config *w = vox_config_get(node, "audio_token");
    return vox_errorf(VOX_ERR_INVALID, "%s: model.audio_token.id %d must be < llm.vocab_size %d",
                      vox_config_where(w ? w : node, b1, sizeof b1), out->audio_token_id, out->llm.vocab_size);
  }
  return VOX_OK;
}

/* ---- parameter counts ------------------------------------------------------------------------------------- */

static int64_t linear_n(int64_t in, int64_t out, bool bias) { return in * out + (bias ? out : 0); }

int64_t vox_qwen2_config_numel(const vox_qwen2_config *c) {
  int64_t H = c->hidden_size, hd = H / c->num_attention_heads, q = c->num_attention_heads * hd;
  int64_t kv = (int64_t)(c->num_key_value_heads ? c->num_key_value_heads : c->num_attention_heads) * hd;
  bool b = c->attention_bias;
  int64_t layer = 2 * H + linear_n(H, q, b) + 2 * linear_n(H, kv, b) + linear_n(q, H, false) +
                  3 * H * (int64_t)c->intermediate_size;
  return (int64_t)c->vocab_size * H * (c->tie_word_embeddings ? 1 : 2) + c->num_hidden_layers * layer + H;
}

int64_t vox_qwen2_lora_numel(const vox_qwen2_config *c, int rank, const char *const *targets) {
  int64_t H = c->hidden_size, hd = H / c->num_attention_heads, q = c->num_attention_heads * hd;
  int64_t kv = (int64_t)(c->num_key_value_heads ? c->num_key_value_heads : c->num_attention_heads) * hd;
  int64_t I = c->intermediate_size, per = 0;
  for (int i = 0; targets[i]; i++) {
    const char *t = targets[i];
    int64_t in = 0, out = 0;
    if (!strcmp(t, "q_proj")) in = H, out = q;
    else if (!strcmp(t, "k_proj") || !strcmp(t, "v_proj")) in = H, out = kv;
    else if (!strcmp(t, "o_proj")) in = q, out = H;
    else if (!strcmp(t, "gate_proj") || !strcmp(t, "up_proj")) in = H, out = I;
    else if (!strcmp(t, "down_proj")) in = I, out = H;
    per += rank * (in + out);
  }
  return per * c->num_hidden_layers;
}

/* Pre-norm block with LayerNorms (weight + bias) and a GELU MLP with biases; attention biases as given. */
static int64_t ln_block_n(int64_t d, int64_t ff, int n_attn_bias) {
  return 4 * d + 4 * d * d + n_attn_bias * d + linear_n(d, ff, true) + linear_n(ff, d, true);
}

void vox_model_config_numel(const vox_model_config *c, int64_t n[6]) {
  memset(n, 0, 6 * sizeof *n);
  if (c->has_encoder) {
    const vox_mc_encoder *e = &c->encoder;
    if (e->kind == VOX_ENCODER_WHISPER) {
      int64_t d = e->d_model;
      n[0] = e->num_mel_bins * d * 3 + d + d * d * 3 + d + (int64_t)e->max_source_positions * d +
             e->encoder_layers * ln_block_n(d, e->encoder_ffn_dim, 3) + 2 * d;
    } else {
      int64_t d = e->output_size, u = e->linear_units;
      int n_layers = e->num_blocks + e->tp_blocks;
      for (int i = 0; i < n_layers; i++) {
        int64_t in = i == 0 ? e->input_size : d;
        n[0] += 2 * in + linear_n(in, 3 * d, true) + d * e->kernel_size + linear_n(d, d, true) + 2 * d +
                linear_n(d, u, true) + linear_n(u, d, true);
      }
      n[0] += 2 * d + (e->tp_blocks > 0 ? 2 * d : 0);
    }
    if (e->ctc_classes) n[0] += linear_n(encoder_width(e), e->ctc_classes, true);
  }
  if (c->has_input_projector) {
    const vox_projector_config *p = &c->input_projector;
    int64_t in = p->in_dim, out = p->out_dim;
    if (p->kind == VOX_PROJ_MINMO) {
      int layers = p->n_layers ? p->n_layers : 2, k = p->conv_kernel ? p->conv_kernel : 3;
      int64_t ff = p->d_ff ? p->d_ff : 4 * in;
      n[1] = layers * ln_block_n(in, ff, 3) + out * in * k + out;
    } else {
      int64_t k = p->kind == VOX_PROJ_LINEAR ? (p->k ? p->k : 5) : 1;
      int64_t h = p->hidden ? p->hidden : (p->kind == VOX_PROJ_LINEAR ? 2048 : out);
      n[1] = linear_n(k * in, h, true) + linear_n(h, out, true);
    }
  }
  if (c->has_llm) n[2] = vox_qwen2_config_numel(&c->llm);
  if (c->has_output_projector) n[3] = linear_n(c->output_projector_in, c->output_projector_out, true);
  if (c->has_voice_lm) n[4] = vox_qwen2_config_numel(&c->voice_lm.lm);
  if (c->has_duplex) {
    const vox_duplex_config *d = &c->duplex;
    int64_t dm = d->d_model ? d->d_model : d->in_dim, nh = d->n_heads ? d->n_heads : (dm >= 64 ? dm / 64 : 1);
    int64_t nkv = d->n_kv_heads ? d->n_kv_heads : nh, hd = dm / nh, ff = d->d_ff ? d->d_ff : 4 * dm;
    int64_t cls = d->n_classes ? d->n_classes : 4;
    n[5] = (dm != d->in_dim ? linear_n(d->in_dim, dm, true) : 0) + 2 * dm + linear_n(dm, nh * hd, true) +
           2 * linear_n(dm, nkv * hd, true) + linear_n(nh * hd, dm, false) + 3 * dm * ff + dm + linear_n(dm, cls, true);
  }
}
