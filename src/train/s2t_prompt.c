/* Builds the ChatML stream of a speech-to-text sample and checks that the audio appears exactly once, so a
 * malformed manifest fails here with its line rather than as a shape error deep in the model. */
#include "train/s2t_prompt.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "models/speech_llm.h"

vox_s2t_prompts vox_s2t_prompts_default(void) {
  return (vox_s2t_prompts){.system = "You are a helpful assistant.",
                           .asr_instruction = "Transcribe the speech.",
                           .audio_token = "<|audio|>"};
}

void vox_s2t_encoded_free(vox_s2t_encoded *e) {
  if (!e) return;
  vox_token_ids_free(&e->ids);
  free(e->labels);
  free(e->reference);
  free(e->answer);
  memset(e, 0, sizeof *e);
}

/* Messages of a sample: owned strings in msgs[i].role/content (freed by free_messages). */
typedef struct messages {
  vox_chat_message *items;
  int n;
} messages;

static void free_messages(messages *m) {
  for (int i = 0; i < m->n; i++) {
    free((char *)m->items[i].role);
    free((char *)m->items[i].content);
  }
  free(m->items);
  m->items = NULL;
  m->n = 0;
}

static vox_status push(messages *m, const char *role, const char *content) {
  vox_chat_message *grown = realloc(m->items, sizeof *grown * (size_t)(m->n + 1));
  if (!grown) return vox_errorf(VOX_ERR_NOMEM, "s2t prompt: messages");
  m->items = grown;
  m->items[m->n].role = strdup(role);
  m->items[m->n].content = strdup(content);
  m->n++;
  if (!m->items[m->n - 1].role || !m->items[m->n - 1].content) return vox_errorf(VOX_ERR_NOMEM, "s2t prompt: messages");
  return VOX_OK;
}

static vox_status asr_messages(const vox_s2t_prompts *p, const vox_sample *s, const char *where, messages *m,
                               char **reference) {
  if (!s->text) return vox_errorf(VOX_ERR_PARSE, "%s: asr sample \"%s\" has no text", where, s->key);
  if (p->system && p->system[0]) VOX_TRY(push(m, "system", p->system));
  size_t n = strlen(p->audio_token) + strlen(p->asr_instruction ? p->asr_instruction : "") + 2;
  char *user = malloc(n);
  if (!user) return vox_errorf(VOX_ERR_NOMEM, "s2t prompt: user turn");
  snprintf(user, n, "%s%s%s", p->audio_token, p->asr_instruction && p->asr_instruction[0] ? "\n" : "",
           p->asr_instruction ? p->asr_instruction : "");
  vox_status st = push(m, "user", user);
  free(user);
  VOX_TRY(st);
  VOX_TRY(push(m, "assistant", s->text));
  *reference = strdup(s->text);
  return *reference ? VOX_OK : vox_errorf(VOX_ERR_NOMEM, "s2t prompt: reference");
}

/* Chat samples carry their own messages; the final assistant turn is the reference. */
static vox_status chat_messages(const vox_s2t_prompts *p, const vox_sample *s, const char *where, messages *m,
                                char **reference, char **answer) {
  if (!s->messages_json) return vox_errorf(VOX_ERR_PARSE, "%s: s2t_chat sample \"%s\" has no messages", where, s->key);
  cJSON *arr = cJSON_Parse(s->messages_json);
  vox_status st = VOX_OK;
  if (!cJSON_IsArray(arr)) st = vox_errorf(VOX_ERR_PARSE, "%s: messages: expected an array", where);
  const cJSON *e;
  bool has_system = false;
  cJSON_ArrayForEach(e, arr) {
    if (st != VOX_OK) break;
    const cJSON *role = cJSON_GetObjectItemCaseSensitive(e, "role"), *content = cJSON_GetObjectItemCaseSensitive(e, "content");
    if (!cJSON_IsString(role) || !cJSON_IsString(content)) {
      st = vox_errorf(VOX_ERR_PARSE, "%s: messages: each entry needs string \"role\" and \"content\"", where);
      break;
    }
    has_system |= strcmp(role->valuestring, "system") == 0;
    if (m->n == 0 && !has_system && p->system && p->system[0]) st = push(m, "system", p->system);
    if (st == VOX_OK) st = push(m, role->valuestring, content->valuestring);
  }
  cJSON_Delete(arr);
  VOX_TRY(st);
  if (m->n == 0 || strcmp(m->items[m->n - 1].role, "assistant") != 0)
    return vox_errorf(VOX_ERR_PARSE, "%s: messages: the last turn must be the assistant's answer", where);
  *reference = strdup(m->items[m->n - 1].content);
  cJSON *extra = cJSON_Parse(s->extra_json);
  const cJSON *ans = cJSON_GetObjectItemCaseSensitive(extra, "answer");
  if (cJSON_IsString(ans)) *answer = strdup(ans->valuestring);
  cJSON_Delete(extra);
  return *reference ? VOX_OK : vox_errorf(VOX_ERR_NOMEM, "s2t prompt: reference");
}

/* What the audio of a sample says: an asr sample's `text`; an s2t_chat sample's `transcript`, else `question`. */
static vox_status spoken_text(const vox_sample *s, const char *where, char **out) {
  if (strcmp(s->task, "asr") == 0) {
    *out = s->text ? strdup(s->text) : NULL;
  } else {
    cJSON *extra = cJSON_Parse(s->extra_json);
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(extra, "transcript");
    if (!cJSON_IsString(t)) t = cJSON_GetObjectItemCaseSensitive(extra, "question");
    *out = cJSON_IsString(t) ? strdup(t->valuestring) : NULL;
    cJSON_Delete(extra);
  }
  if (!*out)
    return vox_errorf(VOX_ERR_PARSE, "%s: sample \"%s\" has no text of its audio (`text` for asr; `transcript` or "
                      "`question` for s2t_chat), which its text form needs", where, s->key);
  return VOX_OK;
}

/* Replaces every placeholder in user turns by `text`; counts the replacements. */
static vox_status substitute_audio(messages *m, const char *placeholder, const char *text, int *count) {
  size_t pl = strlen(placeholder), tl = strlen(text);
  for (int i = 0; i < m->n; i++) {
    if (strcmp(m->items[i].role, "user") != 0) continue;
    const char *c = m->items[i].content;
    size_t n = 0;
    for (const char *p = strstr(c, placeholder); p; p = strstr(p + pl, placeholder)) n++;
    if (n == 0) continue;
    char *out = malloc(strlen(c) + n * tl + 1), *w = out;
    if (!out) return vox_errorf(VOX_ERR_NOMEM, "s2t prompt: text form");
    for (const char *p = c, *q; ; p = q + pl) {
      q = strstr(p, placeholder);
      size_t k = q ? (size_t)(q - p) : strlen(p);
      memcpy(w, p, k), w += k;
      if (!q) break;
      memcpy(w, text, tl), w += tl;
    }
    *w = 0;
    free((char *)m->items[i].content);
    m->items[i].content = out;
    *count += (int)n;
  }
  return VOX_OK;
}

static vox_status encode(const vox_tokenizer *tok, const vox_s2t_prompts *prompts, int32_t audio_id,
                         const vox_sample *sample, const char *manifest_path, bool for_generation, bool as_text,
                         vox_s2t_encoded *out) {
  memset(out, 0, sizeof *out);
  char where[512];
  snprintf(where, sizeof where, "%s:%d", manifest_path ? manifest_path : "<manifest>", sample->line);
  messages m = {0};
  vox_status st;
  if (strcmp(sample->task, "asr") == 0) {
    out->kind = VOX_S2T_ASR;
    st = asr_messages(prompts, sample, where, &m, &out->reference);
  } else if (strcmp(sample->task, "s2t_chat") == 0) {
    out->kind = VOX_S2T_QA;
    st = chat_messages(prompts, sample, where, &m, &out->reference, &out->answer);
  } else {
    st = vox_errorf(VOX_ERR_INVALID, "%s: task \"%s\" is not a speech-to-text task (expected asr or s2t_chat)", where,
                    sample->task);
  }
  if (st == VOX_OK && as_text) {
    char *said = NULL;
    int replaced = 0;
    st = spoken_text(sample, where, &said);
    if (st == VOX_OK) st = substitute_audio(&m, prompts->audio_token, said, &replaced);
    free(said);
    if (st == VOX_OK && replaced != 1)
      st = vox_errorf(VOX_ERR_PARSE, "%s: expected the audio placeholder %s exactly once in the user turns, found %d",
                      where, prompts->audio_token, replaced);
  }
  vox_chatml_encoding enc = {0};
  if (st == VOX_OK) {
    vox_chatml_opts opts = {.add_generation_prompt = for_generation, .content_special = true};
    st = vox_chatml_encode(tok, m.items, (size_t)(for_generation ? m.n - 1 : m.n), &opts, &enc);
  }
  if (st == VOX_OK && !as_text) {
    int placeholders = 0;
    for (size_t i = 0; i < enc.ids.len; i++) placeholders += enc.ids.ids[i] == audio_id;
    if (placeholders != 1)
      st = vox_errorf(VOX_ERR_PARSE, "%s: expected the audio placeholder %s (id %d) exactly once in the prompt, found %d", where,
                      prompts->audio_token, audio_id, placeholders);
  }
  if (st == VOX_OK && !for_generation) {
    out->labels = malloc(sizeof(int32_t) * (enc.ids.len ? enc.ids.len : 1));
    if (!out->labels) st = vox_errorf(VOX_ERR_NOMEM, "s2t prompt: labels");
    for (size_t i = 0; st == VOX_OK && i < enc.ids.len; i++) out->labels[i] = enc.mask[i] ? enc.ids.ids[i] : -100;
  }
  free_messages(&m);
  if (st != VOX_OK) {
    vox_chatml_encoding_free(&enc);
    vox_s2t_encoded_free(out);
    return st;
  }
  out->ids = enc.ids;
  enc.ids = (vox_token_ids){0};
  vox_chatml_encoding_free(&enc);
  return VOX_OK;
}

vox_status vox_s2t_encode(const vox_tokenizer *tok, const vox_s2t_prompts *prompts, int32_t audio_id,
                          const vox_sample *sample, const char *manifest_path, bool for_generation,
                          vox_s2t_encoded *out) {
  return encode(tok, prompts, audio_id, sample, manifest_path, for_generation, false, out);
}

vox_status vox_s2t_encode_as_text(const vox_tokenizer *tok, const vox_s2t_prompts *prompts, const vox_sample *sample,
                                  const char *manifest_path, vox_s2t_encoded *out) {
  return encode(tok, prompts, -1, sample, manifest_path, false, true, out);
}

vox_status vox_s2t_spelling_init(const vox_tokenizer *tok, const char *alphabet, double noise, vox_s2t_spelling *out) {
  memset(out, 0, sizeof *out);
  size_t n = strlen(alphabet);
  if (n == 0 || n >= sizeof out->alphabet)
    return vox_errorf(VOX_ERR_INVALID, "spelled text form: the alphabet must have 1 to 127 symbols (model.audio_encoder."
                      "ctc_alphabet), got %zu", n);
  if (!(noise >= 0.0 && noise < 1.0))
    return vox_errorf(VOX_ERR_INVALID, "spelled text form: spelling_noise %g must lie in [0, 1)", noise);
  memcpy(out->alphabet, alphabet, n + 1);
  out->noise = noise;
  for (size_t i = 0; i < n; i++) {
    vox_token_ids ids = {0};
    VOX_TRY(vox_tokenizer_encode(tok, alphabet + i, 1, 0, &ids));
    bool one = ids.len == 1;
    if (one) out->symbol_ids[i] = ids.ids[0];
    vox_token_ids_free(&ids);
    if (!one)
      return vox_errorf(VOX_ERR_INVALID, "spelled text form: symbol '%c' of the alphabet is not a single token of the "
                        "tokenizer", alphabet[i]);
  }
  return VOX_OK;
}

/* The spoken text as symbol tokens, with the simulated recognition errors. *out malloc'd. */
static vox_status spelled_ids(const vox_s2t_spelling *sp, const char *said, uint64_t seed, int32_t **out, int *n) {
  int32_t *sym = NULL;
  int k = 0;
  VOX_TRY(vox_speech_llm_alphabet_symbols(sp->alphabet, said, &sym, &k));
  int32_t *ids = malloc(sizeof *ids * (size_t)(2 * k + 1));
  if (!ids) {
    free(sym);
    return vox_errorf(VOX_ERR_NOMEM, "spelled text form: out of memory");
  }
  int n_alpha = (int)strlen(sp->alphabet), m = 0;
  vox_rng rng = vox_rng_make(seed);
  for (int i = 0; i < k; i++) {
    int32_t s = sym[i] - 1; /* symbols count from 1 (0 is the CTC blank) */
    double u = sp->noise > 0 ? vox_rng_next_double(&rng) : 1.0;
    if (u < sp->noise) {
      int other = (int)(vox_rng_next_u64(&rng) % (uint64_t)n_alpha), op = (int)(u / sp->noise * 3.0);
      if (op == 0) s = other;                           /* substituted */
      else if (op == 1) continue;                       /* dropped */
      else ids[m++] = sp->symbol_ids[other];            /* an extra symbol before it */
    }
    ids[m++] = sp->symbol_ids[s];
  }
  free(sym);
  if (m == 0) ids[m++] = sp->symbol_ids[0]; /* never an empty span: the audio always fills at least one position */
  *out = ids;
  *n = m;
  return VOX_OK;
}

vox_status vox_s2t_encode_spelled(const vox_tokenizer *tok, const vox_s2t_prompts *prompts, int32_t audio_id,
                                  const vox_s2t_spelling *spelling, uint64_t noise_seed, const vox_sample *sample,
                                  const char *manifest_path, vox_s2t_encoded *out) {
  char where[512], *said = NULL;
  snprintf(where, sizeof where, "%s:%d", manifest_path ? manifest_path : "<manifest>", sample->line);
  VOX_TRY(encode(tok, prompts, audio_id, sample, manifest_path, false, false, out));
  int32_t *sp = NULL;
  int n_sp = 0;
  vox_status st = spoken_text(sample, where, &said);
  if (st == VOX_OK) st = spelled_ids(spelling, said, noise_seed, &sp, &n_sp);
  free(said);
  size_t at = 0, len = out->ids.len;
  while (st == VOX_OK && out->ids.ids[at] != audio_id) at++; /* encode() checked it is there exactly once */
  int32_t *ids = NULL, *labels = NULL;
  if (st == VOX_OK) {
    ids = malloc(sizeof *ids * (len + (size_t)n_sp));
    labels = malloc(sizeof *labels * (len + (size_t)n_sp));
    if (!ids || !labels) st = vox_errorf(VOX_ERR_NOMEM, "spelled text form: out of memory");
  }
  if (st == VOX_OK) {
    memcpy(ids, out->ids.ids, at * sizeof *ids);
    memcpy(labels, out->labels, at * sizeof *labels);
    memcpy(ids + at, sp, (size_t)n_sp * sizeof *ids);
    for (int i = 0; i < n_sp; i++) labels[at + (size_t)i] = -100;
    memcpy(ids + at + n_sp, out->ids.ids + at + 1, (len - at - 1) * sizeof *ids);
    memcpy(labels + at + n_sp, out->labels + at + 1, (len - at - 1) * sizeof *labels);
    free(out->ids.ids);
    free(out->labels);
    out->ids.ids = ids, out->labels = labels;
    out->ids.len = out->ids.cap = len - 1 + (size_t)n_sp;
    ids = labels = NULL;
  }
  free(ids);
  free(labels);
  free(sp);
  if (st != VOX_OK) vox_s2t_encoded_free(out);
  return st;
}
