/* Token-sequence datasets for text tasks (module prefix vox_text_data_): JSONL manifests tokenised once with the
 * recipe's tokenizer, planned into padded batches per epoch (seeded shuffle, length buckets, token caps), with
 * an (epoch, batch) position for exact resume and an equal batch count on every rank. */
#ifndef VOX_TRAIN_TEXT_DATA_H
#define VOX_TRAIN_TEXT_DATA_H

#include <stdbool.h>
#include <stdint.h>

#include "core/tensor.h"
#include "text/tokenizer.h"
#include "train/s2t_prompt.h"

/* One sequence: ids[0..len) and mask[i] = 1 when token i is a training target (predicted from ids[0..i)). */
typedef struct vox_text_seq {
  int32_t *ids;
  uint8_t *mask;
  int64_t len;
  int64_t n_targets; /* tokens with mask 1 among ids[1..len) */
} vox_text_seq;

typedef struct vox_text_data_opts {
  int64_t max_seq_tokens;      /* sequences longer than this + 1 are cut (0: no cut) */
  int64_t max_tokens_in_batch; /* cap on B * T (padded input tokens); 0: no cap */
  int batch_size;              /* cap on B; 0: no cap (then max_tokens_in_batch must be set) */
  double fraction;             /* keep the first ceil(fraction * n) samples of each manifest, in (0, 1] */
  bool shuffle;                /* per-epoch seeded shuffle (off for eval sets) */
  uint64_t seed;
  int rank, world_size;
  /* [n_manifests] or NULL: when set for manifest i, its speech samples (asr, s2t_chat) are read as their text
   * form under `prompts` (vox_s2t_encode_as_text), assistant turns the targets; text samples stay as they are */
  const bool *speech_as_text;
  const vox_s2t_prompts *prompts;
  /* [n_manifests] or NULL: a non-NULL entry writes that manifest's text forms spelled (vox_s2t_encode_spelled),
   * the placeholder being audio_id; each sample's noise is drawn from seed and its index */
  const vox_s2t_spelling *const *spelling;
  int32_t audio_id;
} vox_text_data_opts;

typedef struct vox_text_data vox_text_data;

/* Loads and tokenises every sample of the manifests: `text` samples become text + <|endoftext|> (every token a
 * target); samples with ChatML `messages` are rendered with vox_chatml_encode and only assistant turns are
 * targets. A sample without text or messages, or without any target token, is an error naming file:line. */
vox_status vox_text_data_open(const vox_tokenizer *tok, int n_manifests, char *const *manifests,
                              const vox_text_data_opts *opts, vox_text_data **out);
void vox_text_data_free(vox_text_data *d);

int64_t vox_text_data_size(const vox_text_data *d); /* sequences */
const vox_text_seq *vox_text_data_seq(const vox_text_data *d, int64_t i);
/* Batches this rank gets in `epoch` (the same on every rank; the count may differ between epochs because the
 * token cap cuts a shuffled order). 0 when planning fails (out of memory). */
int64_t vox_text_data_num_batches(vox_text_data *d, int64_t epoch);

/* Batch `index` of `epoch` on this rank as input ids i32 [B, T] (padded with <|endoftext|>) and aligned targets
 * i32 [B, T] (ids shifted by one; -100 at padding and non-target tokens), on `device`. counts: target tokens
 * and samples. */
vox_status vox_text_data_batch(vox_text_data *d, int64_t epoch, int64_t index, vox_device device, vox_tensor **ids,
                               vox_tensor **targets, int64_t *n_targets, int64_t *n_samples);

#endif
