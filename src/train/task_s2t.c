/* Task `s2t`: speech-to-text alignment (MinMo's pre-align, full-align and SFT stages) on ASR and spoken-QA
 * manifests: audio through encoder and projector spliced into a ChatML prompt; eval decodes and scores WER/CER/QA. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/autograd.h"
#include "data/loader.h"
#include "models/speech_llm.h"
#include "train/eval_metrics.h"
#include "train/s2t_prompt.h"
#include "train/task.h"
#include "train/task_audio.h"

typedef struct s2t_state {
  vox_task_ctx ctx;
  vox_speech_llm *slm;
  vox_loader *train, *dev;
  char *train_path, *dev_path;
  vox_s2t_prompts prompts;
  int32_t audio_id, eos[2];
  float ctc_weight; /* loss.ctc_weight: the encoder's CTC loss on ASR rows kept during alignment */
} s2t_state;

static void s2t_close(void *p) {
  s2t_state *s = p;
  if (!s) return;
  vox_loader_free(s->train);
  vox_loader_free(s->dev);
  free(s->train_path);
  free(s->dev_path);
  free(s);
}

static vox_status read_prompts(s2t_state *s) {
  s->prompts = vox_s2t_prompts_default();
  const vox_config *st = s->ctx.stage;
  VOX_TRY(vox_config_string(st, "data.prompts.system", s->prompts.system, &s->prompts.system));
  VOX_TRY(vox_config_string(st, "data.prompts.asr_instruction", s->prompts.asr_instruction, &s->prompts.asr_instruction));
  s->prompts.audio_token = s->slm->cfg.audio_token_text;
  return VOX_OK;
}

static vox_status read_ctc_weight(s2t_state *s) {
  double w;
  VOX_TRY(vox_config_float(s->ctx.stage, "loss.ctc_weight", 0.0, &w));
  const vox_config *n = vox_config_get(s->ctx.stage, "loss.ctc_weight");
  char where[256];
  if (n) vox_config_where(n, where, sizeof where);
  if (!(w >= 0.0))
    return vox_errorf(VOX_ERR_INVALID, "%s: loss.ctc_weight must be >= 0 (got %g)", n ? where : "?", w);
  if (w > 0.0 && !s->slm->cfg.encoder.ctc_classes)
    return vox_errorf(VOX_ERR_INVALID, "%s: loss.ctc_weight needs the encoder's CTC head (model.audio_encoder."
                      "ctc_alphabet or ctc_tokens)", where);
  if (w > 0.0 && s->slm->cfg.encoder.ctc_tokens) vox_speech_llm_borrow_tokenizer(s->slm, s->ctx.tokenizer);
  s->ctc_weight = (float)w;
  return VOX_OK;
}

static vox_status s2t_open(const vox_task_ctx *ctx, void **out) {
  char where[256];
  vox_config_where(ctx->stage, where, sizeof where);
  vox_speech_llm *slm = ctx->model->slm;
  if (!slm || !slm->cfg.has_encoder || !slm->cfg.has_input_projector || !slm->cfg.has_llm)
    return vox_errorf(VOX_ERR_INVALID, "%s: task s2t needs a model with audio_encoder, input_projector and llm", where);
  if (!ctx->tokenizer) return vox_errorf(VOX_ERR_INVALID, "%s: task s2t needs the recipe's `tokenizer`", where);
  int32_t id = -1;
  if (vox_tokenizer_token_to_id(ctx->tokenizer, slm->cfg.audio_token_text, &id) != VOX_OK || id != slm->cfg.audio_token_id)
    return vox_errorf(VOX_ERR_INVALID, "%s: the tokenizer does not map the audio placeholder %s to id %d", where,
                      slm->cfg.audio_token_text, slm->cfg.audio_token_id);
  s2t_state *s = calloc(1, sizeof *s);
  if (!s) return vox_errorf(VOX_ERR_NOMEM, "out of memory");
  s->ctx = *ctx;
  s->slm = slm;
  s->audio_id = id;
  vox_status st = vox_tokenizer_token_to_id(ctx->tokenizer, "<|im_end|>", &s->eos[0]);
  if (st == VOX_OK) st = vox_tokenizer_token_to_id(ctx->tokenizer, "<|endoftext|>", &s->eos[1]);
  if (st == VOX_OK) st = read_prompts(s);
  if (st == VOX_OK) st = read_ctc_weight(s);
  const char **names = NULL;
  int n = 0;
  if (st == VOX_OK) st = vox_task_train_sets(ctx, &names, &n);
  if (st == VOX_OK && n != 1)
    st = vox_errorf(VOX_ERR_INVALID, "%s: task s2t trains on one dataset (got %d); mix manifests with "
                    "data_tools/mix_manifests.py", where, n);
  if (st == VOX_OK) st = vox_task_audio_open(ctx, &slm->cfg.encoder, vox_config_get(ctx->stage, "data.train"), names[0], true, &s->train, &s->train_path);
  free(names);
  const char *dev = NULL;
  if (st == VOX_OK) st = vox_config_string(ctx->stage, "data.eval", NULL, &dev);
  if (st == VOX_OK && dev) st = vox_task_audio_open(ctx, &slm->cfg.encoder, vox_config_get(ctx->stage, "data.eval"), dev, false, &s->dev, &s->dev_path);
  if (st != VOX_OK) {
    s2t_close(s);
    return vox_error_context(st, "task s2t: ");
  }
  *out = s;
  return VOX_OK;
}

/* A loader batch as model input: features and lengths on the device, one encoded ChatML stream per sample. */
typedef struct s2t_inputs {
  vox_s2t_batch b;
  vox_s2t_encoded *enc;
  const int32_t **ids, **labels;
  int32_t *n_ids;
} s2t_inputs;

static void inputs_free(s2t_inputs *in) {
  for (int i = 0; in->enc && i < in->b.B; i++) vox_s2t_encoded_free(&in->enc[i]);
  free(in->enc);
  free(in->ids);
  free(in->labels);
  free(in->n_ids);
  vox_tensor_release(in->b.features);
  vox_tensor_release(in->b.feat_lens);
  memset(in, 0, sizeof *in);
}

static vox_status inputs_make(const s2t_state *s, const vox_batch *bt, const char *manifest, bool for_generation,
                              s2t_inputs *in) {
  memset(in, 0, sizeof *in);
  int B = (int)bt->B;
  in->b.B = B;
  in->enc = calloc((size_t)B, sizeof *in->enc);
  in->ids = calloc((size_t)B, sizeof *in->ids);
  in->labels = calloc((size_t)B, sizeof *in->labels);
  in->n_ids = calloc((size_t)B, sizeof *in->n_ids);
  int32_t *lens = malloc(sizeof(int32_t) * (size_t)B);
  vox_status st = (in->enc && in->ids && in->labels && in->n_ids && lens) ? VOX_OK : vox_errorf(VOX_ERR_NOMEM, "s2t batch");
  for (int i = 0; i < B && st == VOX_OK; i++) {
    st = vox_s2t_encode(s->ctx.tokenizer, &s->prompts, s->audio_id, bt->samples[i], manifest, for_generation, &in->enc[i]);
    if (st != VOX_OK) break;
    in->ids[i] = in->enc[i].ids.ids;
    in->labels[i] = in->enc[i].labels;
    in->n_ids[i] = (int32_t)in->enc[i].ids.len;
    lens[i] = (int32_t)bt->lengths[i];
  }
  /* generation prompts take the audio the eval already encoded (b.audio), not the features */
  if (st == VOX_OK && !for_generation)
    st = vox_tensor_from_host(VOX_F32, s->ctx.device, 3, (int64_t[]){bt->B, bt->T, bt->bins}, bt->feats, &in->b.features);
  if (st == VOX_OK && !for_generation)
    st = vox_tensor_from_host(VOX_I32, s->ctx.device, 1, (int64_t[]){bt->B}, lens, &in->b.feat_lens);
  free(lens);
  in->b.ids = in->ids;
  in->b.labels = for_generation ? NULL : in->labels;
  in->b.n_ids = in->n_ids;
  if (st != VOX_OK) inputs_free(in);
  return st;
}

static vox_status s2t_train_batch(void *p, vox_rng *rng, vox_tensor **loss, vox_task_counts *counts) {
  s2t_state *s = p;
  vox_batch *bt = NULL;
  VOX_TRY(vox_loader_next(s->train, &bt));
  if (!bt) VOX_TRY(vox_loader_next(s->train, &bt)); /* an epoch ended: the next one starts */
  if (!bt) return vox_errorf(VOX_ERR_STATE, "task s2t: %s gave no batch (empty manifest?)", s->train_path);
  s2t_inputs in;
  vox_status st = inputs_make(s, bt, s->train_path, false, &in);
  int64_t n_tokens = 0, frames = 0;
  /* ASR rows carry a transcript for the CTC term; spoken-QA rows (their text is the answer) do not. */
  const char **transcripts = s->ctc_weight > 0.0f ? calloc((size_t)bt->B, sizeof *transcripts) : NULL;
  if (st == VOX_OK && s->ctc_weight > 0.0f && !transcripts) st = vox_errorf(VOX_ERR_NOMEM, "task s2t: out of memory");
  for (int64_t i = 0; transcripts && i < bt->B; i++)
    if (bt->samples[i]->task && !strcmp(bt->samples[i]->task, "asr")) transcripts[i] = bt->samples[i]->text;
  if (st == VOX_OK)
    st = vox_speech_llm_s2t_ctc_loss(s->slm, &in.b, transcripts, s->ctc_weight, true, rng, loss, &n_tokens, NULL);
  free(transcripts);
  for (int64_t i = 0; i < bt->B; i++) frames += bt->lengths[i];
  *counts = (vox_task_counts){.tokens = n_tokens, .frames = frames, .samples = bt->B};
  inputs_free(&in); /* safe after a failed inputs_make, which leaves it zeroed */
  vox_batch_free(bt);
  return st;
}

/* Scores one decoded batch: WER/CER against ASR transcripts, whole-word answer matching for spoken QA. Writes each
 * hypothesis with its reference to `log` (JSONL) when given, for reading what the model says. */
typedef struct s2t_scores {
  vox_eval_errors words, chars;
  int64_t asr_n, qa_n, qa_correct;
} s2t_scores;

static vox_status score_batch(const s2t_state *s, const vox_batch *bt, const s2t_inputs *in, int32_t **hyp_ids,
                              const int32_t *hyp_lens, s2t_scores *sc, FILE *log) {
  for (int i = 0; i < in->b.B; i++) {
    char *hyp = NULL;
    size_t len;
    VOX_TRY(vox_tokenizer_decode(s->ctx.tokenizer, hyp_ids[i], (size_t)hyp_lens[i],
                                 VOX_DETOKENIZE_SKIP_SPECIAL | VOX_DETOKENIZE_REPLACE_INVALID, &hyp, &len));
    const vox_s2t_encoded *e = &in->enc[i];
    vox_status st = VOX_OK;
    bool correct = false;
    if (e->kind == VOX_S2T_ASR) {
      st = vox_eval_word_errors(e->reference, hyp, &sc->words);
      if (st == VOX_OK) st = vox_eval_char_errors(e->reference, hyp, &sc->chars);
      sc->asr_n++;
    } else {
      st = vox_eval_answer_matches(e->answer ? e->answer : e->reference, hyp, &correct);
      sc->qa_n++;
      sc->qa_correct += correct;
    }
    if (st == VOX_OK) vox_task_hyp_log(log, bt->keys[i], e->kind == VOX_S2T_ASR ? "asr" : "qa", e->reference, hyp);
    free(hyp);
    VOX_TRY(st);
  }
  return VOX_OK;
}

static vox_status s2t_eval(void *p, const vox_config *eval_node, int64_t max_batches, vox_task_metrics *out) {
  s2t_state *s = p;
  if (!s->dev) return VOX_OK;
  int64_t beam = 1, max_new = 64;
  bool decode = true;
  if (eval_node) {
    VOX_TRY(vox_config_int(eval_node, "beam_size", 1, &beam));
    VOX_TRY(vox_config_int(eval_node, "max_new_tokens", 64, &max_new));
    VOX_TRY(vox_config_bool(eval_node, "decode", true, &decode));
  }
  vox_generate_opts g = {.max_new_tokens = (int)max_new, .eos_ids = s->eos, .n_eos = 2, .beam_size = (int)beam,
                         .length_penalty = 1.0f};
  VOX_TRY(vox_loader_seek(s->dev, (vox_loader_pos){0, 0}));
  int64_t nb = vox_loader_num_batches(s->dev, 0);
  if (max_batches > 0 && max_batches < nb) nb = max_batches;
  FILE *log = vox_task_hyp_log_open(&s->ctx);
  s2t_scores sc = {0};
  double loss_sum = 0;
  int64_t loss_tokens = 0;
  vox_status st = VOX_OK;
  vox_no_grad_begin();
  for (int64_t k = 0; k < nb && st == VOX_OK; k++) {
    vox_batch *bt = NULL;
    st = vox_loader_next(s->dev, &bt);
    if (st != VOX_OK || !bt) break;
    /* the loss and the decoding read the same audio: encode it once */
    s2t_inputs in, gen = {0};
    vox_tensor *audio = NULL, *loss = NULL;
    int32_t *alens = NULL;
    int64_t nt = 0;
    double v = 0;
    st = inputs_make(s, bt, s->dev_path, false, &in);
    if (st == VOX_OK) st = vox_speech_llm_encode_audio(s->slm, in.b.features, in.b.feat_lens, false, NULL, &audio, &alens);
    in.b.audio = audio, in.b.audio_lens = alens;
    if (st == VOX_OK) st = vox_speech_llm_s2t_loss(s->slm, &in.b, false, NULL, &loss, &nt);
    if (st == VOX_OK) st = vox_tensor_item(loss, &v);
    vox_tensor_release(loss);
    loss_sum += v * (double)nt;
    loss_tokens += nt;
    if (st == VOX_OK && decode) {
      st = inputs_make(s, bt, s->dev_path, true, &gen);
      gen.b.audio = audio, gen.b.audio_lens = alens;
      int32_t **hyp = NULL, *hyp_lens = NULL;
      if (st == VOX_OK) st = vox_speech_llm_generate(s->slm, &gen.b, &g, &hyp, &hyp_lens);
      if (st == VOX_OK) st = score_batch(s, bt, &gen, hyp, hyp_lens, &sc, log);
      for (int i = 0; hyp && i < gen.b.B; i++) free(hyp[i]);
      free(hyp);
      free(hyp_lens);
    }
    inputs_free(&gen);
    inputs_free(&in);
    vox_tensor_release(audio);
    free(alens);
    vox_batch_free(bt);
  }
  vox_no_grad_end();
  if (log) fclose(log);
  if (st != VOX_OK) return vox_error_context(st, "task s2t eval: ");
  VOX_TRY(vox_task_metrics_add(out, "loss", loss_tokens ? loss_sum / (double)loss_tokens : NAN));
  if (sc.asr_n) {
    VOX_TRY(vox_task_metrics_add(out, "wer", vox_eval_error_rate(&sc.words)));
    VOX_TRY(vox_task_metrics_add(out, "cer", vox_eval_error_rate(&sc.chars)));
  }
  if (sc.qa_n) VOX_TRY(vox_task_metrics_add(out, "qa_acc", (double)sc.qa_correct / (double)sc.qa_n));
  VOX_TRY(vox_task_metrics_add(out, "samples", (double)(sc.asr_n + sc.qa_n)));
  return VOX_OK;
}

static vox_status s2t_get_position(void *p, vox_task_pos *pos) {
  return vox_task_audio_position(((s2t_state *)p)->train, pos);
}

static vox_status s2t_seek(void *p, const vox_task_pos *pos) {
  return vox_task_audio_seek(((s2t_state *)p)->train, pos, "task s2t");
}

static const char *const s2t_data_keys[] = {"prompts", NULL};
static const char *const s2t_eval_keys[] = {"beam_size", "max_new_tokens", "decode", NULL};
static const char *const s2t_loss_keys[] = {"ctc_weight", NULL};

static const vox_task_vtable s2t_task = {
    .name = "s2t",
    .summary = "speech-to-text alignment on asr / s2t_chat manifests (eval: loss, WER, CER, QA accuracy)",
    .data_keys = s2t_data_keys,
    .eval_keys = s2t_eval_keys,
    .loss_keys = s2t_loss_keys,
    .open = s2t_open,
    .train_batch = s2t_train_batch,
    .eval = s2t_eval,
    .get_position = s2t_get_position,
    .seek = s2t_seek,
    .close = s2t_close,
};
VOX_TASK_REGISTER(s2t_task)
