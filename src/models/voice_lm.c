/* Voice-token LM: special ids, the CosyVoice2 bistream/unistream stream layout on the host, and the batched loss
 * (semantic vectors and token embeddings spliced by one row gather, causal LM, CE on target rows only). */
#include "models/voice_lm.h"

#include <stdlib.h>
#include <string.h>

#include "core/ops.h"
#include "models/seq_util.h"

#define IGNORE (-100)

vox_status vox_voice_lm_init(vox_voice_lm *v, vox_params *reg, const char *prefix, const vox_voice_lm_config *cfg,
                             vox_rng *rng) {
  memset(v, 0, sizeof *v);
  v->cfg = *cfg;
  vox_voice_lm_config *c = &v->cfg;
  if (c->speech_vocab <= 0)
    return vox_errorf(VOX_ERR_INVALID, "voice_lm '%s': speech_vocab %d must be positive", prefix, c->speech_vocab);
  if (c->mix_text == 0) c->mix_text = 5;
  if (c->mix_speech == 0) c->mix_speech = 15;
  if (c->mix_text < 1 || c->mix_speech < 1)
    return vox_errorf(VOX_ERR_INVALID, "voice_lm '%s': mix ratio %d:%d must be positive", prefix, c->mix_text,
                      c->mix_speech);
  c->lm.vocab_size = c->speech_vocab + 4;
  int32_t S = c->speech_vocab;
  v->end_of_speech = S;
  v->turn_of_speech = S + 1;
  v->next_semantic = S + 2;
  v->start = S + 3;
  VOX_TRY(vox_qwen2_init(&v->lm, reg, prefix, &c->lm, rng));
  return VOX_OK;
}

void vox_voice_lm_release(vox_voice_lm *v) { vox_qwen2_release(&v->lm); }

void vox_voice_lm_stream_free(vox_voice_lm_stream *s) {
  free(s->is_semantic);
  free(s->value);
  free(s->target);
  memset(s, 0, sizeof *s);
}

typedef struct builder {
  vox_voice_lm_stream *s;
  int64_t n_in, n_tg;
} builder;

static void put_in(builder *b, bool sem, int32_t value) {
  b->s->is_semantic[b->n_in] = sem;
  b->s->value[b->n_in++] = value;
}
static void put_tg(builder *b, int32_t t) { b->s->target[b->n_tg++] = t; }

vox_status vox_voice_lm_layout(const vox_voice_lm *v, int n, const int32_t *speech, int m, vox_voice_lm_stream *out) {
  memset(out, 0, sizeof *out);
  if (n < 0 || m < 0) return vox_errorf(VOX_ERR_INVALID, "voice_lm: %d semantic vectors, %d speech tokens", n, m);
  for (int i = 0; i < m; i++)
    if (speech[i] < 0 || speech[i] >= v->cfg.speech_vocab)
      return vox_errorf(VOX_ERR_INDEX, "voice_lm: speech token %d at %d is outside [0, %d)", speech[i], i,
                        v->cfg.speech_vocab);
  int64_t a = v->cfg.mix_text, bb = v->cfg.mix_speech;
  int64_t len = (int64_t)n + m + 2; /* start + turn-of-speech (one of them per layout) */
  out->is_semantic = calloc((size_t)len, 1);
  out->value = calloc((size_t)len, sizeof *out->value);
  out->target = calloc((size_t)len, sizeof *out->target);
  if (!out->is_semantic || !out->value || !out->target) {
    vox_voice_lm_stream_free(out);
    return vox_errorf(VOX_ERR_NOMEM, "voice_lm: out of memory");
  }
  builder b = {.s = out};
  put_in(&b, false, v->start);
  put_tg(&b, IGNORE);
  /* CosyVoice2: bistream when m / n > b / a (integer-exact: m * a > n * b). */
  out->bistream = n > 0 && (int64_t)m * a > (int64_t)n * bb;
  if (out->bistream) {
    int64_t chunks = (n + 1 + a - 1) / a;
    for (int64_t j = 0; j < chunks; j++) {
      int64_t t0 = j * a, t1 = t0 + a < n ? t0 + a : n, s0 = j * bb;
      if (t1 - t0 == a) {
        for (int64_t t = t0; t < t1; t++) put_in(&b, true, (int32_t)t);
        for (int64_t k = 0; k < bb; k++) put_in(&b, false, speech[s0 + k]);
        for (int64_t k = 0; k < a - 1; k++) put_tg(&b, IGNORE);
        for (int64_t k = 0; k < bb; k++) put_tg(&b, speech[s0 + k]);
        put_tg(&b, v->next_semantic);
      } else {
        for (int64_t t = t0; t < t1; t++) put_in(&b, true, (int32_t)t);
        put_in(&b, false, v->turn_of_speech);
        for (int64_t k = s0; k < m; k++) put_in(&b, false, speech[k]);
        for (int64_t t = t0; t < t1; t++) put_tg(&b, IGNORE);
        for (int64_t k = s0; k < m; k++) put_tg(&b, speech[k]);
        put_tg(&b, v->end_of_speech);
      }
    }
  } else {
    for (int t = 0; t < n; t++) put_in(&b, true, t);
    put_in(&b, false, v->turn_of_speech);
    for (int k = 0; k < m; k++) put_in(&b, false, speech[k]);
    for (int t = 0; t < n; t++) put_tg(&b, IGNORE); /* the n semantic positions (start's ignore is in already) */
    for (int k = 0; k < m; k++) put_tg(&b, speech[k]);
    put_tg(&b, v->end_of_speech);
  }
  if (b.n_in != b.n_tg || b.n_in > len) {
    vox_voice_lm_stream_free(out);
    return vox_errorf(VOX_ERR_STATE, "voice_lm: layout produced %lld inputs and %lld targets", (long long)b.n_in,
                      (long long)b.n_tg);
  }
  out->len = b.n_in;
  return VOX_OK;
}

vox_status vox_voice_lm_loss(vox_voice_lm *v, const vox_voice_lm_batch *bt, bool training, vox_rng *rng,
                             vox_tensor **loss, int64_t *n_targets) {
  char b1[96];
  *loss = NULL;
  if (n_targets) *n_targets = 0;
  int B = bt->B, H = v->cfg.lm.hidden_size;
  vox_tensor *sem = bt->semantic;
  if (B <= 0 || !sem || sem->ndim != 3 || sem->shape[0] != B || sem->shape[2] != H)
    return vox_errorf(VOX_ERR_SHAPE, "voice_lm: semantic %s, expected [%d, N, %d]",
                      sem ? vox_tensor_describe(sem, b1, sizeof b1) : "NULL", B, H);
  int64_t N = sem->shape[1];
  vox_voice_lm_stream *ss = calloc((size_t)B, sizeof *ss);
  int32_t *kv = calloc((size_t)B, sizeof *kv);
  int32_t *rows = NULL, *tok = NULL, *tg_rows = NULL, *tg = NULL;
  vox_tensor *tok_ids = NULL, *tok_emb = NULL, *tok_flat = NULL, *sem_flat = NULL, *src = NULL, *emb = NULL,
             *lens = NULL, *hidden = NULL, *hsel = NULL, *logits = NULL, *targets = NULL;
  vox_status st = VOX_OK;
  if (!ss || !kv) {
    st = vox_errorf(VOX_ERR_NOMEM, "voice_lm: out of memory");
    goto done;
  }
  int64_t L = 0, n_tok = 0, n_tg = 0;
  for (int b = 0; b < B; b++) {
    if (bt->n_semantic[b] < 0 || bt->n_semantic[b] > N) {
      st = vox_errorf(VOX_ERR_INDEX, "voice_lm: row %d has %d semantic vectors, the tensor holds %lld", b,
                      bt->n_semantic[b], (long long)N);
      goto done;
    }
    VOX_CHECK_GOTO(st, vox_voice_lm_layout(v, bt->n_semantic[b], bt->speech + (int64_t)b * bt->speech_stride,
                                           bt->n_speech[b], &ss[b]), done);
    if (ss[b].len > L) L = ss[b].len;
    kv[b] = (int32_t)ss[b].len;
    for (int64_t t = 0; t < ss[b].len; t++) {
      n_tok += !ss[b].is_semantic[t];
      n_tg += ss[b].target[t] != IGNORE;
    }
  }
  /* Source rows: the B*N semantic vectors, then one embedding row per token position. */
  rows = calloc((size_t)(B * L), sizeof *rows);
  tok = calloc((size_t)(n_tok ? n_tok : 1), sizeof *tok);
  tg_rows = calloc((size_t)(n_tg ? n_tg : 1), sizeof *tg_rows);
  tg = calloc((size_t)(n_tg ? n_tg : 1), sizeof *tg);
  if (!rows || !tok || !tg_rows || !tg) {
    st = vox_errorf(VOX_ERR_NOMEM, "voice_lm: out of memory");
    goto done;
  }
  int64_t k = 0, q = 0;
  for (int b = 0; b < B; b++)
    for (int64_t t = 0; t < ss[b].len; t++) {
      if (ss[b].is_semantic[t]) {
        rows[b * L + t] = (int32_t)(b * N + ss[b].value[t]);
      } else {
        rows[b * L + t] = (int32_t)(B * N + k);
        tok[k++] = ss[b].value[t];
      }
      if (ss[b].target[t] != IGNORE) {
        tg_rows[q] = (int32_t)(b * L + t);
        tg[q++] = ss[b].target[t];
      }
    }
  if (n_tg == 0) {
    st = vox_errorf(VOX_ERR_INVALID, "voice_lm: the batch has no speech targets");
    goto done;
  }
  VOX_CHECK_GOTO(st, vox_seq_i32(tok, 2, (int64_t[]){1, n_tok}, sem->device, &tok_ids), done);
  VOX_CHECK_GOTO(st, vox_qwen2_embed(&v->lm, tok_ids, &tok_emb), done);
  VOX_CHECK_GOTO(st, vox_op_reshape(tok_emb, 2, (int64_t[]){n_tok, H}, &tok_flat), done);
  VOX_CHECK_GOTO(st, vox_op_reshape(sem, 2, (int64_t[]){(int64_t)B * N, H}, &sem_flat), done);
  VOX_CHECK_GOTO(st, vox_op_concat(2, (vox_tensor *[]){sem_flat, tok_flat}, 0, &src), done);
  VOX_CHECK_GOTO(st, vox_seq_gather_rows(src, rows, 2, (int64_t[]){B, L}, &emb), done);
  VOX_CHECK_GOTO(st, vox_seq_i32(kv, 1, (int64_t[]){B}, sem->device, &lens), done);
  VOX_CHECK_GOTO(st, vox_qwen2_forward_embeds(&v->lm, emb, NULL, lens, NULL, training, rng, &hidden), done);
  VOX_CHECK_GOTO(st, vox_seq_gather_rows(hidden, tg_rows, 1, (int64_t[]){n_tg}, &hsel), done);
  VOX_CHECK_GOTO(st, vox_qwen2_logits(&v->lm, hsel, &logits), done);
  VOX_CHECK_GOTO(st, vox_seq_i32(tg, 1, (int64_t[]){n_tg}, sem->device, &targets), done);
  VOX_CHECK_GOTO(st, vox_op_cross_entropy(logits, targets, IGNORE, 0.0f, loss), done);
  if (n_targets) *n_targets = n_tg;
done:
  if (ss)
    for (int b = 0; b < B; b++) vox_voice_lm_stream_free(&ss[b]);
  free(ss);
  free(kv);
  free(rows);
  free(tok);
  free(tg_rows);
  free(tg);
  vox_tensor *all[] = {tok_ids, tok_emb, tok_flat, sem_flat, src, emb, lens, hidden, hsel, logits, targets};
  for (size_t i = 0; i < sizeof all / sizeof *all; i++) vox_tensor_release(all[i]);
  if (st != VOX_OK) return vox_error_context(st, "voice_lm loss: ");
  return VOX_OK;
}
