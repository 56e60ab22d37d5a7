/* Task `ctc`: the audio encoder learns speech recognition by itself, with a CTC head over a character alphabet or
 * the LLM's tokens, on `asr` manifests (the stand-in for a pretrained encoder such as SenseVoice's); eval: loss,
 * greedy WER and CER. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/autograd.h"
#include "data/loader.h"
#include "models/speech_llm.h"
#include "train/eval_metrics.h"
#include "train/task.h"
#include "train/task_audio.h"

typedef struct ctc_state {
  vox_task_ctx ctx;
  vox_speech_llm *slm;
  vox_loader *train, *dev;
  char *train_path, *dev_path;
} ctc_state;

static void ctc_close(void *p) {
  ctc_state *s = p;
  if (!s) return;
  vox_loader_free(s->train);
  vox_loader_free(s->dev);
  free(s->train_path);
  free(s->dev_path);
  free(s);
}

static vox_status ctc_open(const vox_task_ctx *ctx, void **out) {
  char where[256];
  vox_config_where(ctx->stage, where, sizeof where);
  vox_speech_llm *slm = ctx->model->slm;
  if (!slm || !slm->cfg.has_encoder || !slm->cfg.encoder.ctc_classes)
    return vox_errorf(VOX_ERR_INVALID, "%s: task ctc needs a model with an audio_encoder and its CTC head "
                      "(ctc_alphabet or ctc_tokens)", where);
  if (slm->cfg.encoder.ctc_tokens) {
    if (!ctx->tokenizer)
      return vox_errorf(VOX_ERR_INVALID, "%s: task ctc with model.audio_encoder.ctc_tokens needs the recipe's "
                        "`tokenizer`", where);
    vox_speech_llm_borrow_tokenizer(slm, ctx->tokenizer);
  }
  ctc_state *s = calloc(1, sizeof *s);
  if (!s) return vox_errorf(VOX_ERR_NOMEM, "out of memory");
  s->ctx = *ctx;
  s->slm = slm;
  const char **names = NULL;
  int n = 0;
  vox_status st = vox_task_train_sets(ctx, &names, &n);
  if (st == VOX_OK && n != 1)
    st = vox_errorf(VOX_ERR_INVALID, "%s: task ctc trains on one dataset (got %d); mix manifests with "
                    "data_tools/mix_manifests.py", where, n);
  if (st == VOX_OK)
    st = vox_task_audio_open(ctx, &slm->cfg.encoder, vox_config_get(ctx->stage, "data.train"), names[0], true,
                             &s->train, &s->train_path);
  free(names);
  const char *dev = NULL;
  if (st == VOX_OK) st = vox_config_string(ctx->stage, "data.eval", NULL, &dev);
  if (st == VOX_OK && dev)
    st = vox_task_audio_open(ctx, &slm->cfg.encoder, vox_config_get(ctx->stage, "data.eval"), dev, false, &s->dev,
                             &s->dev_path);
  if (st != VOX_OK) {
    ctc_close(s);
    return vox_error_context(st, "task ctc: ");
  }
  *out = s;
  return VOX_OK;
}

/* A loader batch as encoder input; the transcripts are the samples' `text` (an asr manifest's). */
typedef struct ctc_inputs {
  vox_tensor *feats, *lens;
  const char **texts;
} ctc_inputs;

static void inputs_free(ctc_inputs *in) {
  vox_tensor_release(in->feats);
  vox_tensor_release(in->lens);
  free(in->texts);
  memset(in, 0, sizeof *in);
}

static vox_status inputs_make(const ctc_state *s, const vox_batch *bt, const char *manifest, ctc_inputs *in) {
  memset(in, 0, sizeof *in);
  int32_t *lens = malloc(sizeof(int32_t) * (size_t)bt->B);
  in->texts = calloc((size_t)bt->B, sizeof *in->texts);
  vox_status st = lens && in->texts ? VOX_OK : vox_errorf(VOX_ERR_NOMEM, "ctc batch: out of memory");
  for (int64_t i = 0; i < bt->B && st == VOX_OK; i++) {
    const vox_sample *smp = bt->samples[i];
    if (!smp->text || strcmp(smp->task, "asr") != 0)
      st = vox_errorf(VOX_ERR_PARSE, "%s:%d: task ctc reads asr samples with a `text` transcript (sample \"%s\" is %s)",
                      manifest, smp->line, smp->key, smp->task);
    else
      in->texts[i] = smp->text, lens[i] = (int32_t)bt->lengths[i];
  }
  if (st == VOX_OK)
    st = vox_tensor_from_host(VOX_F32, s->ctx.device, 3, (int64_t[]){bt->B, bt->T, bt->bins}, bt->feats, &in->feats);
  if (st == VOX_OK) st = vox_tensor_from_host(VOX_I32, s->ctx.device, 1, (int64_t[]){bt->B}, lens, &in->lens);
  free(lens);
  if (st != VOX_OK) inputs_free(in);
  return st;
}

static vox_status ctc_train_batch(void *p, vox_rng *rng, vox_tensor **loss, vox_task_counts *counts) {
  ctc_state *s = p;
  vox_batch *bt = NULL;
  VOX_TRY(vox_loader_next(s->train, &bt));
  if (!bt) VOX_TRY(vox_loader_next(s->train, &bt)); /* an epoch ended: the next one starts */
  if (!bt) return vox_errorf(VOX_ERR_STATE, "task ctc: %s gave no batch (empty manifest?)", s->train_path);
  ctc_inputs in;
  int64_t n_symbols = 0, frames = 0;
  vox_status st = inputs_make(s, bt, s->train_path, &in);
  if (st == VOX_OK) st = vox_speech_llm_ctc_loss(s->slm, in.feats, in.lens, in.texts, true, rng, loss, &n_symbols);
  for (int64_t i = 0; i < bt->B; i++) frames += bt->lengths[i];
  *counts = (vox_task_counts){.tokens = n_symbols, .frames = frames, .samples = bt->B};
  inputs_free(&in);
  vox_batch_free(bt);
  return st;
}

static vox_status ctc_eval(void *p, const vox_config *eval_node, int64_t max_batches, vox_task_metrics *out) {
  (void)eval_node;
  ctc_state *s = p;
  if (!s->dev) return VOX_OK;
  VOX_TRY(vox_loader_seek(s->dev, (vox_loader_pos){0, 0}));
  int64_t nb = vox_loader_num_batches(s->dev, 0);
  if (max_batches > 0 && max_batches < nb) nb = max_batches;
  FILE *log = vox_task_hyp_log_open(&s->ctx);
  vox_eval_errors words = {0}, chars = {0};
  double loss_sum = 0;
  int64_t symbols = 0, samples = 0;
  vox_status st = VOX_OK;
  vox_no_grad_begin();
  for (int64_t k = 0; k < nb && st == VOX_OK; k++) {
    vox_batch *bt = NULL;
    st = vox_loader_next(s->dev, &bt);
    if (st != VOX_OK || !bt) break;
    ctc_inputs in;
    vox_tensor *logits = NULL, *flens = NULL, *loss = NULL;
    char **hyp = NULL;
    int64_t n = 0;
    double v = 0;
    st = inputs_make(s, bt, s->dev_path, &in);
    if (st == VOX_OK) st = vox_speech_llm_ctc_logits(s->slm, in.feats, in.lens, false, NULL, &logits, &flens);
    if (st == VOX_OK) st = vox_speech_llm_ctc_loss_from_logits(s->slm, logits, flens, in.texts, &loss, &n);
    if (st == VOX_OK) st = vox_tensor_item(loss, &v);
    loss_sum += v * (double)n;
    symbols += n;
    if (st == VOX_OK) st = vox_speech_llm_ctc_greedy(s->slm, logits, flens, &hyp);
    for (int64_t i = 0; st == VOX_OK && i < bt->B; i++) {
      st = vox_eval_word_errors(in.texts[i], hyp[i], &words);
      if (st == VOX_OK) st = vox_eval_char_errors(in.texts[i], hyp[i], &chars);
      vox_task_hyp_log(log, bt->keys[i], "asr", in.texts[i], hyp[i]); /* what the encoder hears */
      samples++;
    }
    for (int64_t i = 0; hyp && i < bt->B; i++) free(hyp[i]);
    free(hyp);
    vox_tensor_release(loss);
    vox_tensor_release(logits);
    vox_tensor_release(flens);
    inputs_free(&in);
    vox_batch_free(bt);
  }
  vox_no_grad_end();
  if (log) fclose(log);
  if (st != VOX_OK) return vox_error_context(st, "task ctc eval: ");
  VOX_TRY(vox_task_metrics_add(out, "loss", symbols ? loss_sum / (double)symbols : NAN));
  VOX_TRY(vox_task_metrics_add(out, "wer", vox_eval_error_rate(&words)));
  VOX_TRY(vox_task_metrics_add(out, "cer", vox_eval_error_rate(&chars)));
  VOX_TRY(vox_task_metrics_add(out, "samples", (double)samples));
  return VOX_OK;
}

static vox_status ctc_get_position(void *p, vox_task_pos *pos) {
  return vox_task_audio_position(((ctc_state *)p)->train, pos);
}

static vox_status ctc_seek(void *p, const vox_task_pos *pos) {
  return vox_task_audio_seek(((ctc_state *)p)->train, pos, "task ctc");
}

static const vox_task_vtable ctc_task = {
    .name = "ctc",
    .summary = "audio-encoder speech recognition with a CTC head on asr manifests (eval: loss, greedy WER, CER)",
    .data_keys = NULL,
    .eval_keys = NULL,
    .open = ctc_open,
    .train_batch = ctc_train_batch,
    .eval = ctc_eval,
    .get_position = ctc_get_position,
    .seek = ctc_seek,
    .close = ctc_close,
};
VOX_TASK_REGISTER(ctc_task)
