/* Audio datasets of audio tasks (s2t, ctc): a named dataset opened as a feature loader whose options follow the
 * model's encoder, so features cannot disagree with what the encoder takes. */
#include "train/task_audio.h"

#include <stdlib.h>
#include <string.h>

/* Feature options follow the model's encoder (one source of truth): Whisper log-mel with its bin count, or the
 * SAN-M encoder's LFR fbank (input_size = 80 bins x lfr_m 7, lfr_n 6). A dataset that names its own `features` or
 * `n_mels` must agree. The dataset node also gives `cmvn` (fbank), `specaugment` and `num_workers`. */
static vox_status loader_opts(const vox_task_ctx *ctx, const vox_mc_encoder *enc, const vox_config *dataset, bool training,
                              vox_loader_opts *o) {
  char w[256];
  *o = vox_loader_opts_default();
  bool as_text = false;
  VOX_TRY(vox_config_bool(dataset, "speech_as_text", false, &as_text));
  if (as_text)
    return vox_errorf(VOX_ERR_INVALID, "%s: a dataset with speech_as_text: true is the text form of its speech, for "
                      "text tasks (lm); audio tasks need the audio", vox_config_where(dataset, w, sizeof w));
  const char *want = enc->kind == VOX_ENCODER_WHISPER ? "whisper_mel" : "fbank_lfr";
  if (enc->kind == VOX_ENCODER_WHISPER) {
    o->features = VOX_LOADER_WHISPER_MEL;
    o->n_mels = enc->num_mel_bins;
  } else {
    o->features = VOX_LOADER_FBANK_LFR;
    o->n_mels = 80;
    o->lfr_m = 7;
    o->lfr_n = 6;
    if (enc->input_size != o->n_mels * o->lfr_m)
      return vox_errorf(VOX_ERR_INVALID, "%s: the SAN-M encoder's input_size %d is not 80 fbank bins x LFR 7",
                        vox_config_where(ctx->stage, w, sizeof w), enc->input_size);
  }
  int64_t v;
  bool b;
  if (dataset) {
    const char *feats = NULL, *cmvn = NULL;
    VOX_TRY(vox_config_string(dataset, "features", want, &feats));
    VOX_TRY(vox_config_int(dataset, "n_mels", o->n_mels, &v));
    if (strcmp(feats, want) != 0 || v != o->n_mels)
      return vox_errorf(VOX_ERR_INVALID, "%s: dataset asks for %s with %lld bins but the model's encoder takes %s with %d",
                        vox_config_where(dataset, w, sizeof w), feats, (long long)v, want, o->n_mels);
    VOX_TRY(vox_config_string(dataset, "cmvn", NULL, &cmvn));
    o->cmvn_path = cmvn;
    VOX_TRY(vox_config_int(dataset, "num_workers", 1, &v));
    o->num_workers = (int)v;
    VOX_TRY(vox_config_bool(dataset, "specaugment", false, &b));
    o->specaugment = training && b;
  }
  const vox_config *st = ctx->stage;
  VOX_TRY(vox_config_int(st, "batch.max_frames_in_batch", 12000, &o->max_frames_in_batch));
  VOX_TRY(vox_config_int(st, "batch.batch_size", 0, &v));
  o->batch_size = (int)v;
  o->seed = ctx->seed + 104729u * (uint64_t)ctx->stage_index;
  if (training) {
    double f;
    VOX_TRY(vox_config_float(st, "data.fraction", 1.0, &f));
    o->fraction = f;
    o->rank = ctx->rank;
    o->world_size = ctx->world_size;
  } else {
    o->shuffle = false; /* the same dev batches at every eval; every rank scores the whole set */
  }
  return VOX_OK;
}

vox_status vox_task_audio_open(const vox_task_ctx *ctx, const vox_mc_encoder *enc, const vox_config *ref,
                               const char *name, bool training, vox_loader **L, char **path) {
  const vox_config *node = NULL;
  VOX_TRY(vox_task_dataset(ctx, ref, name, path, &node));
  vox_loader_opts o;
  vox_status st = loader_opts(ctx, enc, node, training, &o);
  if (st == VOX_OK) st = vox_loader_open(*path, &o, L);
  if (st != VOX_OK) {
    free(*path);
    *path = NULL;
  }
  return st;
}

vox_status vox_task_audio_position(const vox_loader *train, vox_task_pos *pos) {
  vox_loader_pos lp = vox_loader_position(train);
  *pos = (vox_task_pos){.n = 2, .v = {lp.epoch, lp.batch}};
  return VOX_OK;
}

vox_status vox_task_audio_seek(vox_loader *train, const vox_task_pos *pos, const char *who) {
  if (pos->n != 2) return vox_errorf(VOX_ERR_INVALID, "%s: data position has %d values, expected epoch and batch", who, pos->n);
  return vox_loader_seek(train, (vox_loader_pos){pos->v[0], pos->v[1]});
}
