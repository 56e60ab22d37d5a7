/* CTC on the composite's audio encoder: transcripts as alphabet symbols or LLM tokens, the per-symbol CTC loss,
 * best-path decoding, and the CTC compressor that shortens the encoder output to one frame per recognised symbol
 * (with, for a token head, each position's posterior through the LLM's embeddings). */
#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/autograd.h"
#include "core/ops.h"
#include "models/seq_util.h"
#include "models/speech_llm_internal.h"

static vox_status need_head(const vox_speech_llm *m, const char *what) {
  if (!m->cfg.has_encoder || !m->cfg.encoder.ctc_classes)
    return vox_errorf(VOX_ERR_INVALID, "speech_llm %s: the model has no CTC head (set model.audio_encoder.ctc_alphabet "
                      "or ctc_tokens)", what);
  return VOX_OK;
}

/* A token head turns text into ids and back through the borrowed tokenizer. */
static vox_status need_tokenizer(const vox_speech_llm *m, const char *what) {
  if (!m->tokenizer)
    return vox_errorf(VOX_ERR_STATE, "speech_llm %s: a CTC head over tokens (ctc_tokens) needs the tokenizer "
                      "(vox_speech_llm_borrow_tokenizer; a recipe's `tokenizer`)", what);
  if (vox_tokenizer_vocab_size(m->tokenizer) != m->cfg.llm.vocab_size)
    return vox_errorf(VOX_ERR_INVALID, "speech_llm %s: the tokenizer speaks %d ids, the LLM's head %d (the same "
                      "vocab_subset must restrict both)", what, vox_tokenizer_vocab_size(m->tokenizer),
                      m->cfg.llm.vocab_size);
  return VOX_OK;
}

void vox_speech_llm_borrow_tokenizer(vox_speech_llm *m, const vox_tokenizer *tok) { m->tokenizer = tok; }

vox_status vox_speech_llm_ctc_logits(vox_speech_llm *m, vox_tensor *feats, vox_tensor *lengths, bool training,
                                     vox_rng *rng, vox_tensor **logits, vox_tensor **out_lengths) {
  *logits = NULL, *out_lengths = NULL;
  VOX_TRY(need_head(m, "ctc"));
  vox_tensor *hidden = NULL;
  VOX_TRY(vox_sllm_encoder_forward(m, feats, lengths, training, rng, &hidden, out_lengths));
  vox_status st = vox_linear_forward(&m->ctc, hidden, logits);
  vox_tensor_release(hidden);
  if (st != VOX_OK) {
    vox_tensor_release(*out_lengths);
    *out_lengths = NULL;
  }
  return st;
}

vox_status vox_speech_llm_ctc_symbols(const vox_speech_llm *m, const char *text, int32_t **ids, int *n) {
  VOX_TRY(need_head(m, "ctc symbols"));
  if (!m->cfg.encoder.ctc_tokens) return vox_speech_llm_alphabet_symbols(m->cfg.encoder.ctc_alphabet, text, ids, n);
  VOX_TRY(need_tokenizer(m, "ctc symbols"));
  vox_token_ids tok = {0};
  vox_status st = vox_tokenizer_encode(m->tokenizer, text, strlen(text), 0, &tok);
  if (st != VOX_OK) {
    vox_token_ids_free(&tok);
    return vox_error_context(st, "speech_llm ctc symbols: ");
  }
  for (size_t i = 0; i < tok.len; i++) tok.ids[i] += 1; /* blank is 0 */
  *n = (int)tok.len;
  *ids = tok.ids ? tok.ids : malloc(sizeof(int32_t));
  return *ids ? VOX_OK : vox_errorf(VOX_ERR_NOMEM, "speech_llm ctc symbols: out of memory");
}

vox_status vox_speech_llm_alphabet_symbols(const char *alpha, const char *text, int32_t **ids, int *n) {
  bool has_upper = false, has_space = strchr(alpha, ' ') != NULL;
  for (const char *c = alpha; *c; c++) has_upper |= isupper((unsigned char)*c) != 0;
  size_t len = strlen(text);
  int32_t *out = malloc((len ? len : 1) * sizeof *out);
  if (!out) return vox_errorf(VOX_ERR_NOMEM, "speech_llm ctc symbols: out of memory");
  int k = 0;
  bool pending_space = false;
  for (const char *p = text; *p; p++) {
    unsigned char c = (unsigned char)*p;
    if (!has_upper) c = (unsigned char)tolower(c);
    if (has_space && (isspace(c) || c == '-')) {
      pending_space = k > 0; /* a space only between symbols: runs collapse, the ends are trimmed */
      continue;
    }
    const char *hit = c >= 0x20 && c < 0x7f ? strchr(alpha, c) : NULL;
    if (!hit) continue;
    if (pending_space) out[k++] = (int32_t)(strchr(alpha, ' ') - alpha) + 1;
    pending_space = false;
    out[k++] = (int32_t)(hit - alpha) + 1;
  }
  *ids = out;
  *n = k;
  return VOX_OK;
}

vox_status vox_speech_llm_ctc_loss_from_logits(vox_speech_llm *m, vox_tensor *logits, vox_tensor *frame_lens,
                                               const char *const *texts, vox_tensor **loss, int64_t *n_symbols) {
  *loss = NULL;
  VOX_TRY(need_head(m, "ctc loss"));
  int64_t B = logits->shape[0];
  int32_t **sym = calloc((size_t)B, sizeof *sym);
  int32_t *slen = calloc((size_t)B, sizeof *slen), *flat = NULL;
  vox_tensor *targets = NULL, *tlens = NULL, *rows = NULL, *sum = NULL;
  vox_status st = sym && slen ? VOX_OK : vox_errorf(VOX_ERR_NOMEM, "speech_llm ctc loss: out of memory");
  int64_t S = 1, total = 0;
  float *keep = malloc((size_t)B * sizeof *keep);
  if (st == VOX_OK && !keep) st = vox_errorf(VOX_ERR_NOMEM, "speech_llm ctc loss: out of memory");
  bool some_skipped = false;
  for (int64_t b = 0; b < B && st == VOX_OK; b++) {
    int n = 0;
    keep[b] = texts[b] ? 1.0f : 0.0f;
    some_skipped = some_skipped || !texts[b];
    if (texts[b]) st = vox_speech_llm_ctc_symbols(m, texts[b], &sym[b], &n);
    slen[b] = n, total += n;
    if (n > S) S = n;
  }
  if (st == VOX_OK && total == 0) st = vox_errorf(VOX_ERR_INVALID, "no transcript has a symbol of the alphabet");
  if (st == VOX_OK && !(flat = calloc((size_t)(B * S), sizeof *flat))) st = vox_errorf(VOX_ERR_NOMEM, "out of memory");
  for (int64_t b = 0; b < B && st == VOX_OK; b++) memcpy(flat + b * S, sym[b], (size_t)slen[b] * sizeof *flat);
  if (st == VOX_OK) st = vox_seq_i32(flat, 2, (int64_t[]){B, S}, logits->device, &targets);
  if (st == VOX_OK) st = vox_seq_i32(slen, 1, (int64_t[]){B}, logits->device, &tlens);
  if (st == VOX_OK) st = vox_op_ctc_loss(logits, targets, frame_lens, tlens, 0, &rows);
  if (st == VOX_OK && some_skipped) { /* rows without a transcript carry no loss (not "all blank") */
    vox_tensor *mask = NULL, *masked = NULL;
    st = vox_tensor_from_host(VOX_F32, logits->device, 1, (int64_t[]){B}, keep, &mask);
    if (st == VOX_OK) st = vox_op_mul(rows, mask, &masked);
    vox_tensor_release(mask);
    vox_tensor_release(rows);
    rows = masked;
  }
  if (st == VOX_OK) st = vox_op_sum(rows, 0, NULL, false, &sum);
  if (st == VOX_OK) st = vox_op_affine(sum, 1.0 / (double)total, 0.0, loss);
  if (st == VOX_OK && n_symbols) *n_symbols = total;
  for (int64_t b = 0; sym && b < B; b++) free(sym[b]);
  free(sym);
  free(slen);
  free(flat);
  free(keep);
  vox_tensor_release(targets);
  vox_tensor_release(tlens);
  vox_tensor_release(rows);
  vox_tensor_release(sum);
  return st == VOX_OK ? st : vox_error_context(st, "speech_llm ctc loss: ");
}

vox_status vox_speech_llm_ctc_loss(vox_speech_llm *m, vox_tensor *feats, vox_tensor *lengths,
                                   const char *const *texts, bool training, vox_rng *rng, vox_tensor **loss,
                                   int64_t *n_symbols) {
  *loss = NULL;
  vox_tensor *logits = NULL, *flens = NULL;
  VOX_TRY(vox_speech_llm_ctc_logits(m, feats, lengths, training, rng, &logits, &flens));
  vox_status st = vox_speech_llm_ctc_loss_from_logits(m, logits, flens, texts, loss, n_symbols);
  vox_tensor_release(logits);
  vox_tensor_release(flens);
  return st;
}

vox_status vox_speech_llm_ctc_greedy(const vox_speech_llm *m, const vox_tensor *logits, const vox_tensor *lengths,
                                     char ***texts) {
  *texts = NULL;
  VOX_TRY(need_head(m, "ctc decode"));
  int64_t B = logits->shape[0], T = logits->shape[1], V = logits->shape[2];
  float *lg = malloc((size_t)(B * T * V) * sizeof *lg);
  int32_t *lens = NULL;
  char **out = calloc((size_t)B, sizeof *out);
  vox_status st = lg && out ? vox_tensor_read_f32(logits, lg) : vox_errorf(VOX_ERR_NOMEM, "speech_llm ctc decode: out of memory");
  if (st == VOX_OK) st = vox_seq_lengths_host(lengths, B, T, "ctc frame counts", &lens);
  const char *alpha = m->cfg.encoder.ctc_alphabet;
  bool tokens = m->cfg.encoder.ctc_tokens;
  if (st == VOX_OK && tokens) st = need_tokenizer(m, "ctc decode");
  int32_t *path = st == VOX_OK ? malloc(sizeof(int32_t) * (size_t)(T ? T : 1)) : NULL;
  if (st == VOX_OK && !path) st = vox_errorf(VOX_ERR_NOMEM, "speech_llm ctc decode: out of memory");
  for (int64_t b = 0; b < B && st == VOX_OK; b++) {
    int k = 0;
    int64_t prev = 0;
    for (int64_t t = 0; t < lens[b]; t++) {
      const float *row = lg + (b * T + t) * V;
      int64_t best = 0;
      for (int64_t v = 1; v < V; v++)
        if (row[v] > row[best]) best = v;
      if (best != 0 && best != prev) path[k++] = (int32_t)best - 1;
      prev = best;
    }
    if (tokens) {
      st = vox_tokenizer_decode(m->tokenizer, path, (size_t)k, VOX_DETOKENIZE_SKIP_SPECIAL | VOX_DETOKENIZE_REPLACE_INVALID,
                                &out[b], NULL);
    } else if ((out[b] = malloc((size_t)k + 1))) {
      for (int i = 0; i < k; i++) out[b][i] = alpha[path[i]];
      out[b][k] = 0;
    } else {
      st = vox_errorf(VOX_ERR_NOMEM, "speech_llm ctc decode: out of memory");
    }
  }
  free(path);
  free(lg);
  free(lens);
  if (st != VOX_OK) {
    for (int64_t b = 0; out && b < B; b++) free(out[b]);
    free(out);
    return st;
  }
  *texts = out;
  return VOX_OK;
}

/* Runs of one non-blank symbol in rows [0, len) of a [T, V] logit matrix: seg[t] = the run frame t belongs to, or
 * -1 (blank, or a frame between runs). A frame holds its best non-blank symbol when that beats blank (best path)
 * or, with blank_threshold > 0, when its blank probability is below the threshold. Returns the run count. A row
 * with no symbol at all keeps its frames as one run, so no sample reaches the LLM without audio. */
static int32_t symbol_runs(const float *lg, int64_t len, int64_t V, float blank_threshold, int32_t *seg) {
  int32_t runs = 0;
  int64_t prev = 0;
  for (int64_t t = 0; t < len; t++) {
    const float *row = lg + t * V;
    int64_t best = 1;
    for (int64_t v = 2; v < V; v++)
      if (row[v] > row[best]) best = v;
    bool symbol = row[best] > row[0];
    if (blank_threshold > 0.0f) {
      double z = 0.0, top = row[best] > row[0] ? row[best] : row[0];
      for (int64_t v = 0; v < V; v++) z += exp((double)row[v] - top);
      symbol = exp((double)row[0] - top) / z < blank_threshold;
    }
    if (!symbol) best = 0;
    if (best != 0 && best != prev) runs++;
    seg[t] = best != 0 ? runs - 1 : -1;
    prev = best;
  }
  if (runs == 0 && len > 0) {
    for (int64_t t = 0; t < len; t++) seg[t] = 0;
    runs = 1;
  }
  return runs;
}

/* The mean non-blank posterior of each run through the LLM's input embedding table: avg [B, S, T] @
 * softmax(logits[..., 1:] / temperature) @ embed [V, H] -> [B, S, H] (LegoSLM's posterior embeddings). On the
 * tape when the head trains, so the LLM's loss reaches the head through it. */
static vox_status posterior_embeddings(vox_speech_llm *m, vox_tensor *logits, vox_tensor *avg, vox_tensor **out) {
  vox_tensor *tok = NULL, *scaled = NULL, *p = NULL, *mean = NULL;
  vox_status st = vox_op_slice(logits, 2, 1, logits->shape[2], 1, &tok);
  if (st == VOX_OK) st = vox_op_affine(tok, 1.0 / m->cfg.encoder.ctc_posterior_temperature, 0.0, &scaled);
  if (st == VOX_OK) st = vox_op_softmax(scaled, 2, &p);
  if (st == VOX_OK) st = vox_op_matmul(avg, p, false, false, &mean);
  if (st == VOX_OK) st = vox_op_matmul(mean, m->llm.embed.weight, false, false, out);
  vox_tensor_release(tok);
  vox_tensor_release(scaled);
  vox_tensor_release(p);
  vox_tensor_release(mean);
  return st;
}

vox_status vox_sllm_ctc_compress(vox_speech_llm *m, vox_tensor *hidden, vox_tensor *lengths,
                                 vox_tensor *head_logits, vox_tensor **out, vox_tensor **out_lengths,
                                 vox_tensor **posterior) {
  *out = NULL, *out_lengths = NULL;
  if (posterior) *posterior = NULL;
  VOX_TRY(need_head(m, "ctc compress"));
  if (posterior && !m->cfg.encoder.ctc_tokens)
    return vox_errorf(VOX_ERR_STATE, "speech_llm ctc compress: posterior embeddings need a head over the LLM's tokens");
  int64_t B = hidden->shape[0], T = hidden->shape[1];
  vox_tensor *logits = NULL, *avg = NULL;
  /* The segmentation is a discrete choice and gets no gradient; only the posterior, when asked for, needs the
   * head on the tape. */
  vox_status st = VOX_OK;
  if (head_logits) {
    logits = vox_tensor_retain(head_logits);
  } else {
    if (!posterior) vox_no_grad_begin();
    st = vox_linear_forward(&m->ctc, hidden, &logits);
    if (!posterior) vox_no_grad_end();
  }
  if (st != VOX_OK) return vox_error_context(st, "speech_llm ctc compress: ");
  int64_t V = logits->shape[2];
  float *lg = malloc((size_t)(B * T * V) * sizeof *lg), *weights = NULL;
  int32_t *lens = NULL, *seg = malloc((size_t)(B * T) * sizeof *seg), *runs = calloc((size_t)B, sizeof *runs);
  st = lg && seg && runs ? vox_tensor_read_f32(logits, lg) : vox_errorf(VOX_ERR_NOMEM, "out of memory");
  if (st == VOX_OK) st = vox_seq_lengths_host(lengths, B, T, "ctc compress lengths", &lens);
  int64_t S = 1;
  for (int64_t b = 0; b < B && st == VOX_OK; b++) {
    runs[b] = symbol_runs(lg + b * T * V, lens[b], V, m->cfg.encoder.ctc_compress_threshold, seg + b * T);
    if (runs[b] > S) S = runs[b];
  }
  /* Each output row is the mean of its run's frames: one batched [S, T] x [T, d] product per sample, so the
   * gradient reaches every frame of the run. Rows past a sample's run count are zero (padding). */
  if (st == VOX_OK && !(weights = calloc((size_t)(B * S * T), sizeof *weights)))
    st = vox_errorf(VOX_ERR_NOMEM, "out of memory");
  for (int64_t b = 0; b < B && st == VOX_OK; b++) {
    int32_t *count = calloc((size_t)runs[b] + 1, sizeof *count);
    if (!count) {
      st = vox_errorf(VOX_ERR_NOMEM, "out of memory");
      break;
    }
    for (int64_t t = 0; t < lens[b]; t++)
      if (seg[b * T + t] >= 0) count[seg[b * T + t]]++;
    for (int64_t t = 0; t < lens[b]; t++) {
      int32_t r = seg[b * T + t];
      if (r >= 0) weights[(b * S + r) * T + t] = 1.0f / (float)count[r];
    }
    free(count);
  }
  if (st == VOX_OK)
    st = vox_tensor_from_host(VOX_F32, hidden->device, 3, (int64_t[]){B, S, T}, weights, &avg);
  if (st == VOX_OK) st = vox_op_matmul(avg, hidden, false, false, out);
  if (st == VOX_OK && posterior) st = posterior_embeddings(m, logits, avg, posterior);
  if (st == VOX_OK) st = vox_seq_i32(runs, 1, (int64_t[]){B}, hidden->device, out_lengths);
  if (st != VOX_OK) {
    vox_tensor_drop(out);
    if (posterior) vox_tensor_drop(posterior);
  }
  vox_tensor_release(logits);
  vox_tensor_release(avg);
  free(lg);
  free(weights);
  free(lens);
  free(seg);
  free(runs);
  return st == VOX_OK ? st : vox_error_context(st, "speech_llm ctc compress: ");
}
