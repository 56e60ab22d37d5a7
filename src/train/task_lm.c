/* Task `lm`: next-token language modelling on the `text` (or ChatML `messages`) fields of JSONL manifests,
 * tokenised with the recipe's tokenizer; eval reports the dev loss per target token and its perplexity, and with
 * `eval.generate: N` the WER/CER of the model's greedy answers to the first N dev prompts. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/autograd.h"
#include "models/speech_llm.h"
#include "train/eval_metrics.h"
#include "train/task.h"
#include "train/text_data.h"
#include "train/train_model.h"

typedef struct lm_state {
  vox_task_ctx ctx;
  vox_text_data *train, *dev;
  int64_t epoch, batch; /* position of the next training batch */
} lm_state;

static void lm_close(void *p) {
  lm_state *s = p;
  if (!s) return;
  vox_text_data_free(s->train);
  vox_text_data_free(s->dev);
  free(s);
}

/* The prompts a speech dataset's text form is rendered with: the stage's `data.prompts` and the model's audio
 * placeholder, the same as the s2t task's, so the text form is the speech sample's conversation word for word. */
static vox_status read_prompts(const vox_task_ctx *ctx, vox_s2t_prompts *p) {
  *p = vox_s2t_prompts_default();
  VOX_TRY(vox_config_string(ctx->stage, "data.prompts.system", p->system, &p->system));
  VOX_TRY(vox_config_string(ctx->stage, "data.prompts.asr_instruction", p->asr_instruction, &p->asr_instruction));
  return vox_config_string(ctx->recipe, "model.audio_token.text", p->audio_token, &p->audio_token);
}

/* A dataset's `spelled: true` (with `speech_as_text`) writes its text forms letter by letter over the model's
 * ctc_alphabet, as a CTC-compressed encoder presents speech; `spelling_noise` simulates recognition errors. */
static vox_status read_spelling(const vox_task_ctx *ctx, const vox_config *node, bool as_text, vox_s2t_spelling **out) {
  bool spelled = false;
  double noise = 0.0;
  char where[256];
  *out = NULL;
  VOX_TRY(vox_config_bool(node, "spelled", false, &spelled));
  VOX_TRY(vox_config_float(node, "spelling_noise", 0.0, &noise));
  if (!spelled) return VOX_OK;
  const vox_config *key = vox_config_get(node, "spelled");
  if (!as_text)
    return vox_errorf(VOX_ERR_INVALID, "%s: spelled: true needs speech_as_text: true (it is a form of the speech's text)",
                      vox_config_where(key, where, sizeof where));
  const char *alphabet = "";
  VOX_TRY(vox_config_string(ctx->recipe, "model.audio_encoder.ctc_alphabet", "", &alphabet));
  if (!alphabet[0])
    return vox_errorf(VOX_ERR_INVALID, "%s: spelled: true spells over model.audio_encoder.ctc_alphabet, which is not set",
                      vox_config_where(key, where, sizeof where));
  vox_s2t_spelling *sp = malloc(sizeof *sp);
  if (!sp) return vox_errorf(VOX_ERR_NOMEM, "out of memory");
  vox_status st = vox_s2t_spelling_init(ctx->tokenizer, alphabet, noise, sp);
  if (st != VOX_OK) {
    free(sp);
    return vox_error_context(st, "%s: ", vox_config_where(key, where, sizeof where));
  }
  *out = sp;
  return VOX_OK;
}

static vox_status open_sets(const vox_task_ctx *ctx, const vox_text_data_opts *o, int n, const char *const *names,
                            const vox_config *ref, vox_text_data **out) {
  char **paths = calloc((size_t)n, sizeof *paths);
  bool *as_text = calloc((size_t)n, sizeof *as_text);
  vox_s2t_spelling **spelling = calloc((size_t)n, sizeof *spelling);
  vox_s2t_prompts prompts;
  vox_status st = paths && as_text && spelling ? read_prompts(ctx, &prompts) : vox_errorf(VOX_ERR_NOMEM, "out of memory");
  bool any_spelled = false;
  for (int i = 0; i < n && st == VOX_OK; i++) {
    const vox_config *node = NULL;
    st = vox_task_dataset(ctx, ref, names[i], &paths[i], &node);
    if (st == VOX_OK) st = vox_config_bool(node, "speech_as_text", false, &as_text[i]);
    if (st == VOX_OK) st = read_spelling(ctx, node, as_text[i], &spelling[i]);
    any_spelled |= spelling[i] != NULL;
  }
  vox_text_data_opts with = *o;
  with.speech_as_text = as_text, with.prompts = &prompts;
  with.spelling = (const vox_s2t_spelling *const *)spelling;
  if (st == VOX_OK && any_spelled) st = vox_tokenizer_token_to_id(ctx->tokenizer, prompts.audio_token, &with.audio_id);
  if (st == VOX_OK) st = vox_text_data_open(ctx->tokenizer, n, paths, &with, out);
  for (int i = 0; paths && i < n; i++) free(paths[i]);
  for (int i = 0; spelling && i < n; i++) free(spelling[i]);
  free(paths);
  free(as_text);
  free(spelling);
  return st;
}

static vox_status lm_open(const vox_task_ctx *ctx, void **out) {
  char where[256];
  if (!ctx->tokenizer)
    return vox_errorf(VOX_ERR_INVALID, "%s: task lm needs the recipe's `tokenizer`",
                      vox_config_where(ctx->stage, where, sizeof where));
  lm_state *s = calloc(1, sizeof *s);
  if (!s) return vox_errorf(VOX_ERR_NOMEM, "out of memory");
  s->ctx = *ctx;
  vox_text_data_opts o = {.fraction = 1.0, .shuffle = true, .seed = ctx->seed + 7919u * (uint64_t)ctx->stage_index,
                          .rank = ctx->rank, .world_size = ctx->world_size};
  int64_t v;
  vox_status st;
  const char **names = NULL;
  int n = 0;
  VOX_CHECK_GOTO(st, vox_config_int(ctx->stage, "data.max_seq_tokens", 0, &o.max_seq_tokens), fail);
  VOX_CHECK_GOTO(st, vox_config_float(ctx->stage, "data.fraction", 1.0, &o.fraction), fail);
  VOX_CHECK_GOTO(st, vox_config_int(ctx->stage, "batch.max_tokens_in_batch", 0, &o.max_tokens_in_batch), fail);
  VOX_CHECK_GOTO(st, vox_config_int(ctx->stage, "batch.batch_size", 0, &v), fail);
  o.batch_size = (int)v;
  VOX_CHECK_GOTO(st, vox_task_train_sets(ctx, &names, &n), fail);
  st = open_sets(ctx, &o, n, names, vox_config_get(ctx->stage, "data.train"), &s->train);
  free(names);
  if (st != VOX_OK) goto fail;
  const char *dev = NULL;
  VOX_CHECK_GOTO(st, vox_config_string(ctx->stage, "data.eval", NULL, &dev), fail);
  if (dev) {
    vox_text_data_opts e = o;
    e.shuffle = false, e.fraction = 1.0, e.rank = 0, e.world_size = 1; /* every rank scores the whole dev set */
    VOX_CHECK_GOTO(st, open_sets(ctx, &e, 1, &dev, vox_config_get(ctx->stage, "data.eval"), &s->dev), fail);
  }
  *out = s;
  return VOX_OK;
fail:
  lm_close(s);
  return vox_error_context(st, "task lm: ");
}

static vox_status lm_train_batch(void *p, vox_rng *rng, vox_tensor **loss, vox_task_counts *counts) {
  lm_state *s = p;
  if (s->batch >= vox_text_data_num_batches(s->train, s->epoch)) {
    s->epoch++;
    s->batch = 0;
  }
  vox_tensor *ids = NULL, *tg = NULL;
  int64_t nt = 0, ns = 0;
  VOX_TRY(vox_text_data_batch(s->train, s->epoch, s->batch, s->ctx.device, &ids, &tg, &nt, &ns));
  vox_status st = vox_train_model_lm_loss(s->ctx.model, ids, tg, true, rng, loss);
  vox_tensor_release(ids);
  vox_tensor_release(tg);
  if (st != VOX_OK) return st;
  s->batch++;
  *counts = (vox_task_counts){.tokens = nt, .frames = 0, .samples = ns};
  return VOX_OK;
}

/* Greedy answers to the first n dev sequences: each prompt is the sequence up to its first target token, the
 * reference that first run of target tokens (special tokens dropped). On speech text forms this is how well the LLM transcribes
 * (or answers) when the audio's words are written in its prompt: what the speech stages can hope to reach. */
static vox_status decode_dev(lm_state *s, int64_t n, int max_new, vox_eval_errors *words, vox_eval_errors *chars,
                             int64_t *decoded, FILE *log) {
  vox_speech_llm *slm = s->ctx.model->slm;
  if (!slm || !slm->cfg.has_llm) return vox_errorf(VOX_ERR_INVALID, "eval.generate needs a model with an llm");
  int32_t eos[2];
  VOX_TRY(vox_tokenizer_token_to_id(s->ctx.tokenizer, "<|im_end|>", &eos[0]));
  VOX_TRY(vox_tokenizer_token_to_id(s->ctx.tokenizer, "<|endoftext|>", &eos[1]));
  vox_generate_opts g = {.max_new_tokens = max_new, .eos_ids = eos, .n_eos = 2, .beam_size = 1};
  enum { CHUNK = 16 };
  int64_t total = vox_text_data_size(s->dev);
  if (n > total) n = total;
  vox_status st = VOX_OK;
  for (int64_t i0 = 0; i0 < n && st == VOX_OK; i0 += CHUNK) {
    const int32_t *ids[CHUNK];
    int32_t n_ids[CHUNK];
    char *ref[CHUNK] = {0};
    int B = 0;
    for (int64_t i = i0; i < n && i < i0 + CHUNK && st == VOX_OK; i++) {
      const vox_text_seq *q = vox_text_data_seq(s->dev, i);
      int64_t first = 1, end;
      while (first < q->len && !q->mask[first]) first++;
      if (first >= q->len) continue; /* nothing to answer */
      for (end = first; end < q->len && q->mask[end];) end++; /* the first answer: one run of targets */
      st = vox_tokenizer_decode(s->ctx.tokenizer, q->ids + first, (size_t)(end - first), VOX_DETOKENIZE_SKIP_SPECIAL,
                                &ref[B], NULL);
      ids[B] = q->ids, n_ids[B] = (int32_t)first;
      B++;
    }
    int32_t **hyp = NULL, *hyp_lens = NULL;
    vox_s2t_batch b = {.B = B, .ids = ids, .n_ids = n_ids};
    if (st == VOX_OK && B > 0) st = vox_speech_llm_generate(slm, &b, &g, &hyp, &hyp_lens);
    for (int k = 0; k < B && hyp && st == VOX_OK; k++) {
      char *text = NULL;
      st = vox_tokenizer_decode(s->ctx.tokenizer, hyp[k], (size_t)hyp_lens[k],
                                VOX_DETOKENIZE_SKIP_SPECIAL | VOX_DETOKENIZE_REPLACE_INVALID, &text, NULL);
      if (st == VOX_OK) st = vox_eval_word_errors(ref[k], text, words);
      if (st == VOX_OK) st = vox_eval_char_errors(ref[k], text, chars);
      char key[32];
      snprintf(key, sizeof key, "dev-%lld", (long long)*decoded); /* the dev sequence's index */
      if (st == VOX_OK) vox_task_hyp_log(log, key, "text_form", ref[k], text);
      free(text);
      (*decoded)++;
    }
    for (int k = 0; k < B; k++) {
      free(ref[k]);
      if (hyp) free(hyp[k]);
    }
    free(hyp);
    free(hyp_lens);
  }
  return st;
}

static vox_status lm_eval(void *p, const vox_config *eval_node, int64_t max_batches, vox_task_metrics *out) {
  lm_state *s = p;
  if (!s->dev) return VOX_OK; /* no eval set: no metrics */
  int64_t n_generate = 0, max_new = 64;
  if (eval_node) {
    VOX_TRY(vox_config_int(eval_node, "generate", 0, &n_generate));
    VOX_TRY(vox_config_int(eval_node, "max_new_tokens", 64, &max_new));
  }
  int64_t nb = vox_text_data_num_batches(s->dev, 0);
  if (max_batches > 0 && max_batches < nb) nb = max_batches;
  double sum = 0;
  int64_t tokens = 0;
  vox_status st = VOX_OK;
  vox_no_grad_begin();
  for (int64_t b = 0; b < nb && st == VOX_OK; b++) {
    vox_tensor *ids = NULL, *tg = NULL, *loss = NULL;
    int64_t nt = 0;
    double v = 0;
    st = vox_text_data_batch(s->dev, 0, b, s->ctx.device, &ids, &tg, &nt, NULL);
    if (st == VOX_OK) st = vox_train_model_lm_loss(s->ctx.model, ids, tg, false, NULL, &loss);
    if (st == VOX_OK) st = vox_tensor_item(loss, &v);
    sum += v * (double)nt; /* the batch mean weighted back to a sum over its target tokens */
    tokens += nt;
    vox_tensor_release(ids);
    vox_tensor_release(tg);
    vox_tensor_release(loss);
  }
  vox_no_grad_end();
  if (st != VOX_OK) return vox_error_context(st, "task lm eval: ");
  double mean = tokens ? sum / (double)tokens : NAN;
  VOX_TRY(vox_task_metrics_add(out, "loss", mean));
  VOX_TRY(vox_task_metrics_add(out, "ppl", exp(mean)));
  VOX_TRY(vox_task_metrics_add(out, "tokens", (double)tokens));
  if (n_generate <= 0) return VOX_OK;
  vox_eval_errors words = {0}, chars = {0};
  int64_t decoded = 0;
  FILE *log = vox_task_hyp_log_open(&s->ctx);
  vox_no_grad_begin();
  st = decode_dev(s, n_generate, (int)max_new, &words, &chars, &decoded, log);
  vox_no_grad_end();
  if (log) fclose(log);
  if (st != VOX_OK) return vox_error_context(st, "task lm eval (generate): ");
  VOX_TRY(vox_task_metrics_add(out, "wer", vox_eval_error_rate(&words)));
  VOX_TRY(vox_task_metrics_add(out, "cer", vox_eval_error_rate(&chars)));
  VOX_TRY(vox_task_metrics_add(out, "samples", (double)decoded));
  return VOX_OK;
}

static vox_status lm_get_position(void *p, vox_task_pos *pos) {
  lm_state *s = p;
  *pos = (vox_task_pos){.n = 2, .v = {s->epoch, s->batch}};
  return VOX_OK;
}

static vox_status lm_seek(void *p, const vox_task_pos *pos) {
  lm_state *s = p;
  if (pos->n != 2 || pos->v[0] < 0 || pos->v[1] < 0 || pos->v[1] > vox_text_data_num_batches(s->train, pos->v[0]))
    return vox_errorf(VOX_ERR_INVALID, "task lm: data position (%d values: %lld, %lld) does not fit this data "
                                       "(expected epoch, batch within the epoch)",
                      pos->n, (long long)(pos->n > 0 ? pos->v[0] : -1), (long long)(pos->n > 1 ? pos->v[1] : -1));
  s->epoch = pos->v[0];
  s->batch = pos->v[1];
  return VOX_OK;
}

static const char *const lm_data_keys[] = {"max_seq_tokens", "prompts", NULL};
static const char *const lm_eval_keys[] = {"generate", "max_new_tokens", NULL};

static const vox_task_vtable lm_task = {
    .name = "lm",
    .summary = "next-token LM on the text / ChatML messages of JSONL manifests (eval: loss, perplexity; with "
               "eval.generate, WER/CER of greedy answers)",
    .data_keys = lm_data_keys,
    .eval_keys = lm_eval_keys,
    .open = lm_open,
    .train_batch = lm_train_batch,
    .eval = lm_eval,
    .get_position = lm_get_position,
    .seek = lm_seek,
    .close = lm_close,
};
VOX_TASK_REGISTER(lm_task)
