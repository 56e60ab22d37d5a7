/* Text datasets: tokenises manifest samples once (plain text + <|endoftext|>, or ChatML with assistant-only
 * targets) and plans each epoch's padded batches as a pure function of (data, options, seed, epoch). */
#include "train/text_data.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "data/manifest.h"

struct vox_text_data {
  vox_text_data_opts opts;
  vox_text_seq *seqs;
  int64_t n;
  int32_t pad_id;
  /* the plan of `plan_epoch` (global batches, before rank sharding) */
  int64_t plan_epoch;
  int64_t *order;       /* [n] sequence indices, batch after batch */
  int64_t *batch_start; /* [nb + 1] offsets into order */
  int64_t nb;
};

static void seq_free(vox_text_seq *s) {
  free(s->ids);
  free(s->mask);
}

void vox_text_data_free(vox_text_data *d) {
  if (!d) return;
  for (int64_t i = 0; i < d->n; i++) seq_free(&d->seqs[i]);
  free(d->seqs);
  free(d->order);
  free(d->batch_start);
  free(d);
}

/* ChatML messages (compact JSON array from the manifest) -> ids and assistant mask. */
static vox_status encode_messages(const vox_tokenizer *tok, const char *json, vox_text_seq *s) {
  cJSON *arr = cJSON_Parse(json);
  if (!cJSON_IsArray(arr)) {
    cJSON_Delete(arr);
    return vox_errorf(VOX_ERR_PARSE, "messages is not a JSON array");
  }
  int n = cJSON_GetArraySize(arr);
  vox_chat_message *msgs = calloc((size_t)(n ? n : 1), sizeof *msgs);
  if (!msgs) {
    cJSON_Delete(arr);
    return vox_errorf(VOX_ERR_NOMEM, "out of memory");
  }
  for (int i = 0; i < n; i++) {
    cJSON *m = cJSON_GetArrayItem(arr, i);
    msgs[i].role = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(m, "role"));
    msgs[i].content = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(m, "content"));
  }
  vox_chatml_encoding enc = {0};
  vox_status st = vox_chatml_encode(tok, msgs, (size_t)n, NULL, &enc);
  free(msgs);
  cJSON_Delete(arr);
  if (st != VOX_OK) return st;
  s->ids = enc.ids.ids;
  s->mask = enc.mask;
  s->len = (int64_t)enc.ids.len;
  return VOX_OK;
}

static vox_status encode_text(const vox_tokenizer *tok, const char *text, int32_t eos, vox_text_seq *s) {
  vox_token_ids ids = {0};
  VOX_TRY(vox_tokenizer_encode(tok, text, strlen(text), 0, &ids));
  int32_t *grown = realloc(ids.ids, (ids.len + 1) * sizeof *grown);
  uint8_t *mask = malloc(ids.len + 1);
  if (!grown || !mask) {
    free(grown ? grown : ids.ids);
    free(mask);
    return vox_errorf(VOX_ERR_NOMEM, "out of memory");
  }
  grown[ids.len] = eos;
  memset(mask, 1, ids.len + 1);
  s->ids = grown;
  s->mask = mask;
  s->len = (int64_t)ids.len + 1;
  return VOX_OK;
}

/* A speech sample's text form (vox_s2t_encode_as_text) as ids and target mask. */
static vox_status encode_speech_as_text(const vox_text_data_opts *o, const vox_tokenizer *tok,
                                        const vox_s2t_spelling *spelling, uint64_t noise_seed, const vox_sample *smp,
                                        const char *path, vox_text_seq *s) {
  vox_s2t_encoded e;
  if (spelling) VOX_TRY(vox_s2t_encode_spelled(tok, o->prompts, o->audio_id, spelling, noise_seed, smp, path, &e));
  else VOX_TRY(vox_s2t_encode_as_text(tok, o->prompts, smp, path, &e));
  s->len = (int64_t)e.ids.len;
  s->mask = malloc((size_t)(s->len ? s->len : 1));
  if (!s->mask) {
    vox_s2t_encoded_free(&e);
    return vox_errorf(VOX_ERR_NOMEM, "out of memory");
  }
  for (int64_t i = 0; i < s->len; i++) s->mask[i] = e.labels[i] != -100;
  s->ids = e.ids.ids;
  e.ids = (vox_token_ids){0};
  vox_s2t_encoded_free(&e);
  return VOX_OK;
}

static bool is_speech_task(const char *task) { return !strcmp(task, "asr") || !strcmp(task, "s2t_chat"); }

static vox_status load_manifest(vox_text_data *d, const vox_tokenizer *tok, const char *path, int32_t eos,
                                bool speech_as_text, const vox_s2t_spelling *spelling) {
  vox_manifest *m = NULL;
  VOX_TRY(vox_manifest_load(path, &m));
  int64_t keep = (int64_t)ceil(d->opts.fraction * (double)m->n);
  if (keep > m->n) keep = m->n;
  vox_text_seq *grown = realloc(d->seqs, (size_t)(d->n + keep) * sizeof *grown);
  if (!grown) {
    vox_manifest_free(m);
    return vox_errorf(VOX_ERR_NOMEM, "out of memory");
  }
  d->seqs = grown;
  vox_status st = VOX_OK;
  for (int64_t i = 0; i < keep && st == VOX_OK; i++) {
    const vox_sample *smp = &m->samples[i];
    vox_text_seq *s = &d->seqs[d->n];
    memset(s, 0, sizeof *s);
    if (speech_as_text && is_speech_task(smp->task)) {
      uint64_t noise_seed = d->opts.seed ^ (0x9e3779b97f4a7c15ull * (uint64_t)(d->n + 1));
      st = encode_speech_as_text(&d->opts, tok, spelling, noise_seed, smp, path, s);
    } else if (smp->messages_json) {
      st = encode_messages(tok, smp->messages_json, s);
    } else if (smp->text) {
      st = encode_text(tok, smp->text, eos, s);
    } else {
      st = vox_errorf(VOX_ERR_INVALID, "sample '%s' has neither `text` nor `messages` (a text task needs one)",
                      smp->key);
    }
    if (st == VOX_OK && d->opts.max_seq_tokens > 0 && s->len > d->opts.max_seq_tokens + 1)
      s->len = d->opts.max_seq_tokens + 1;
    if (st == VOX_OK) {
      for (int64_t t = 1; t < s->len; t++) s->n_targets += s->mask[t];
      if (s->n_targets == 0)
        st = vox_errorf(VOX_ERR_INVALID, "sample '%s' has no target token after tokenisation%s", smp->key,
                        smp->messages_json ? " (no assistant turn?)" : "");
    }
    if (st != VOX_OK) {
      seq_free(s);
      vox_error_context(st, "%s:%d: ", path, smp->line);
      break;
    }
    d->n++;
  }
  vox_manifest_free(m);
  return st;
}

vox_status vox_text_data_open(const vox_tokenizer *tok, int n_manifests, char *const *manifests,
                              const vox_text_data_opts *opts, vox_text_data **out) {
  if (opts->batch_size <= 0 && opts->max_tokens_in_batch <= 0)
    return vox_errorf(VOX_ERR_INVALID, "text data: set batch_size or max_tokens_in_batch");
  if (!(opts->fraction > 0 && opts->fraction <= 1))
    return vox_errorf(VOX_ERR_INVALID, "text data: fraction must be in (0, 1], got %g", opts->fraction);
  for (int i = 0; opts->speech_as_text && i < n_manifests; i++)
    if (opts->speech_as_text[i] && !opts->prompts)
      return vox_errorf(VOX_ERR_INVALID, "text data: speech_as_text needs the prompts");
  if (opts->world_size < 1 || opts->rank < 0 || opts->rank >= opts->world_size)
    return vox_errorf(VOX_ERR_INVALID, "text data: rank %d of %d", opts->rank, opts->world_size);
  int32_t eos = 0;
  VOX_TRY(vox_tokenizer_token_to_id(tok, "<|endoftext|>", &eos));
  vox_text_data *d = calloc(1, sizeof *d);
  if (!d) return vox_errorf(VOX_ERR_NOMEM, "out of memory");
  d->opts = *opts;
  d->pad_id = eos;
  d->plan_epoch = -1;
  vox_status st = VOX_OK;
  for (int i = 0; i < n_manifests && st == VOX_OK; i++)
    st = load_manifest(d, tok, manifests[i], eos, opts->speech_as_text && opts->speech_as_text[i],
                       opts->spelling ? opts->spelling[i] : NULL);
  d->opts.speech_as_text = NULL, d->opts.prompts = NULL, d->opts.spelling = NULL; /* borrowed for the loading only */
  if (st == VOX_OK && d->n == 0) st = vox_errorf(VOX_ERR_INVALID, "text data: %s has no samples", manifests[0]);
  for (int64_t i = 0; st == VOX_OK && i < d->n; i++)
    if (opts->max_tokens_in_batch > 0 && d->seqs[i].len - 1 > opts->max_tokens_in_batch)
      st = vox_errorf(VOX_ERR_INVALID,
                      "text data: a sample has %lld input tokens, more than max_tokens_in_batch %lld (raise it or "
                      "set max_seq_tokens)",
                      (long long)(d->seqs[i].len - 1), (long long)opts->max_tokens_in_batch);
  if (st == VOX_OK) {
    d->order = malloc((size_t)d->n * sizeof *d->order);
    d->batch_start = malloc((size_t)(d->n + 1) * sizeof *d->batch_start);
    if (!d->order || !d->batch_start) st = vox_errorf(VOX_ERR_NOMEM, "out of memory");
  }
  if (st != VOX_OK) {
    vox_text_data_free(d);
    return st;
  }
  *out = d;
  return VOX_OK;
}

int64_t vox_text_data_size(const vox_text_data *d) { return d->n; }
const vox_text_seq *vox_text_data_seq(const vox_text_data *d, int64_t i) { return &d->seqs[i]; }

static const vox_text_data *sort_ctx;
static int cmp_len(const void *a, const void *b) {
  int64_t ia = *(const int64_t *)a, ib = *(const int64_t *)b;
  int64_t la = sort_ctx->seqs[ia].len, lb = sort_ctx->seqs[ib].len;
  if (la != lb) return la < lb ? -1 : 1;
  return ia < ib ? -1 : ia > ib; /* ties by index: the sort is deterministic */
}

/* The epoch's global batches: shuffle (seed, epoch), sort windows by length, cut greedily under the caps,
 * shuffle the batches. Sorting happens on a copy of the window so the order's prefix property holds. */
static vox_status plan(vox_text_data *d, int64_t epoch) {
  if (d->plan_epoch == epoch) return VOX_OK;
  const vox_text_data_opts *o = &d->opts;
  int64_t n = d->n;
  int64_t *ord = d->order;
  for (int64_t i = 0; i < n; i++) ord[i] = i;
  vox_rng rng = vox_rng_make(o->seed * 0x9E3779B97F4A7C15ull + (uint64_t)epoch * 0x632BE59BD9B4E019ull + 1);
  if (o->shuffle) {
    for (int64_t i = n - 1; i > 0; i--) {
      int64_t j = (int64_t)(vox_rng_next_u64(&rng) % (uint64_t)(i + 1));
      int64_t t = ord[i];
      ord[i] = ord[j];
      ord[j] = t;
    }
    int64_t window = 64 * (o->batch_size > 0 ? o->batch_size : 16);
    sort_ctx = d; /* planning runs on the trainer thread only */
    for (int64_t w = 0; w < n; w += window) qsort(ord + w, (size_t)(w + window > n ? n - w : window), sizeof *ord, cmp_len);
  }
  /* greedy cut */
  int64_t nb = 0, b0 = 0, maxlen = 0;
  d->batch_start[0] = 0;
  for (int64_t i = 0; i < n; i++) {
    int64_t L = d->seqs[ord[i]].len - 1, B = i - b0;
    int64_t ml = L > maxlen ? L : maxlen;
    bool full = B > 0 && ((o->batch_size > 0 && B + 1 > o->batch_size) ||
                          (o->max_tokens_in_batch > 0 && (B + 1) * ml > o->max_tokens_in_batch));
    if (full) {
      d->batch_start[++nb] = i;
      b0 = i;
      ml = L;
    }
    maxlen = ml;
  }
  d->batch_start[++nb] = n;
  d->nb = nb;
  if (o->shuffle && nb > 1) {
    /* shuffle batch order: permute (start, end) pairs into a scratch copy of the order */
    int64_t *perm = malloc((size_t)nb * sizeof *perm), *ord2 = malloc((size_t)n * sizeof *ord2),
            *starts = malloc((size_t)(nb + 1) * sizeof *starts);
    if (!perm || !ord2 || !starts) {
      free(perm), free(ord2), free(starts);
      return vox_errorf(VOX_ERR_NOMEM, "out of memory");
    }
    for (int64_t i = 0; i < nb; i++) perm[i] = i;
    for (int64_t i = nb - 1; i > 0; i--) {
      int64_t j = (int64_t)(vox_rng_next_u64(&rng) % (uint64_t)(i + 1));
      int64_t t = perm[i];
      perm[i] = perm[j];
      perm[j] = t;
    }
    int64_t k = 0;
    for (int64_t b = 0; b < nb; b++) {
      starts[b] = k;
      for (int64_t i = d->batch_start[perm[b]]; i < d->batch_start[perm[b] + 1]; i++) ord2[k++] = ord[i];
    }
    starts[nb] = n;
    memcpy(ord, ord2, (size_t)n * sizeof *ord);
    memcpy(d->batch_start, starts, (size_t)(nb + 1) * sizeof *starts);
    free(perm), free(ord2), free(starts);
  }
  d->plan_epoch = epoch;
  return VOX_OK;
}

int64_t vox_text_data_num_batches(vox_text_data *d, int64_t epoch) {
  if (plan(d, epoch) != VOX_OK) return 0;
  int64_t W = d->opts.world_size;
  return (d->nb + W - 1) / W;
}

vox_status vox_text_data_batch(vox_text_data *d, int64_t epoch, int64_t index, vox_device device, vox_tensor **ids,
                               vox_tensor **targets, int64_t *n_targets, int64_t *n_samples) {
  VOX_TRY(plan(d, epoch));
  int64_t W = d->opts.world_size, per_rank = (d->nb + W - 1) / W;
  if (index < 0 || index >= per_rank)
    return vox_errorf(VOX_ERR_INDEX, "text data: batch %lld of epoch %lld out of range [0, %lld)", (long long)index,
                      (long long)epoch, (long long)per_rank);
  /* rank r takes global batches r, r + W, ...; a short last round repeats from the epoch's start */
  int64_t g = (d->opts.rank + index * W) % d->nb;
  int64_t s0 = d->batch_start[g], s1 = d->batch_start[g + 1], B = s1 - s0, T = 0;
  for (int64_t i = s0; i < s1; i++) {
    int64_t L = d->seqs[d->order[i]].len - 1;
    if (L > T) T = L;
  }
  int32_t *in = malloc((size_t)(B * T) * sizeof *in), *tg = malloc((size_t)(B * T) * sizeof *tg);
  if (!in || !tg) {
    free(in), free(tg);
    return vox_errorf(VOX_ERR_NOMEM, "out of memory");
  }
  int64_t nt = 0;
  for (int64_t b = 0; b < B; b++) {
    const vox_text_seq *s = &d->seqs[d->order[s0 + b]];
    for (int64_t t = 0; t < T; t++) {
      bool valid = t + 1 < s->len;
      in[b * T + t] = valid ? s->ids[t] : d->pad_id;
      tg[b * T + t] = valid && s->mask[t + 1] ? s->ids[t + 1] : -100;
      nt += valid && s->mask[t + 1];
    }
  }
  int64_t shape[2] = {B, T};
  vox_status st = vox_tensor_from_host(VOX_I32, device, 2, shape, in, ids);
  if (st == VOX_OK) {
    st = vox_tensor_from_host(VOX_I32, device, 2, shape, tg, targets);
    if (st != VOX_OK) vox_tensor_drop(ids);
  }
  free(in), free(tg);
  if (st == VOX_OK) {
    if (n_targets) *n_targets = nt;
    if (n_samples) *n_samples = B;
  }
  return st;
}
