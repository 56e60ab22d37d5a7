/* MinMo's voice-token LM (CosyVoice2's Qwen2LM, "bistream" mode): a Qwen2-architecture LM under its own prefix
 * whose input interleaves semantic vectors (the output projector's outputs, one per response text token) with
 * speech-token embeddings at a fixed ratio (5:15 by default), trained with cross-entropy on speech tokens only.
 *
 * Token ids (vocab_size = speech_vocab + 4; S = speech_vocab):
 *   0..S-1  speech tokens (CosyVoice2's S3 tokens)
 *   S       end of speech  (CosyVoice2: speech_token_size, its eos)            - target only
 *   S+1     turn of speech (CosyVoice2: task_id; MinMo: "turn of speech")        - input only
 *   S+2     next semantic  (CosyVoice2: speech_token_size + 2, the fill token)  - target only
 *   S+3     start          (CosyVoice2: sos_eos)                                - input only
 * CosyVoice2 keeps sos/task_id in a separate 2-row llm_embedding; here they are rows of the one embedding table.
 *
 * Stream layout (CosyVoice2 Qwen2LM.prepare_lm_input_target, bistream branch, mix ratio a:b = 5:15), for n text
 * positions (semantic vectors e_0..e_{n-1}) and m speech tokens s_0..s_{m-1}:
 *   input  [start] ; then for j = 0 .. ceil((n+1)/a)-1:
 *             full chunk (a semantic vectors left): e_{ja}..e_{ja+a-1}, s_{jb}..s_{jb+b-1}
 *             last chunk (fewer than a left):        e_{ja}..e_{n-1}, [turn of speech], s_{jb}..s_{m-1}
 *   target aligned with input (position t predicts target t, the next token):
 *             start -> ignore; full chunk: a-1 ignores, s_{jb}..s_{jb+b-1}, [next semantic];
 *             last chunk: (n - ja) ignores, s_{jb}..s_{m-1}, [end of speech]
 *   so every full chunk's last semantic vector predicts its first speech token, its last speech token predicts
 *   "next semantic" (at inference: feed the next a vectors), and after the text runs out "turn of speech" tells
 *   the LM that only speech follows. This needs m > n*b/a speech tokens (the condition CosyVoice2 checks); a
 *   sample with fewer uses CosyVoice2's unistream layout instead:
 *   input [start] e_0..e_{n-1} [turn of speech] s_0..s_{m-1}; target: n+1 ignores, s_0..s_{m-1}, [end of speech].
 * The loss is the mean CE over non-ignored targets: speech tokens, next-semantic and end-of-speech. Semantic
 * positions are never targets. */
#ifndef VOX_MODELS_VOICE_LM_H
#define VOX_MODELS_VOICE_LM_H

#include <stdbool.h>
#include <stdint.h>

#include "models/qwen2.h"

typedef struct vox_voice_lm_config {
  vox_qwen2_config lm;   /* vocab_size is overwritten with speech_vocab + 4 */
  int speech_vocab;
  int mix_text, mix_speech; /* 0 means 5 and 15 */
} vox_voice_lm_config;

typedef struct vox_voice_lm {
  vox_voice_lm_config cfg;
  vox_qwen2 lm;
  int32_t end_of_speech, turn_of_speech, next_semantic, start;
} vox_voice_lm;

vox_status vox_voice_lm_init(vox_voice_lm *v, vox_params *reg, const char *prefix, const vox_voice_lm_config *cfg,
                             vox_rng *rng);
void vox_voice_lm_release(vox_voice_lm *v);

/* One sample's stream: per position either semantic vector `value` (is_semantic) or token id `value`, and the
 * target (-100 = ignore). Arrays malloc'd, freed by vox_voice_lm_stream_free. */
typedef struct vox_voice_lm_stream {
  int64_t len;
  bool bistream;
  uint8_t *is_semantic;
  int32_t *value;
  int32_t *target;
} vox_voice_lm_stream;

vox_status vox_voice_lm_layout(const vox_voice_lm *v, int n_semantic, const int32_t *speech, int n_speech,
                               vox_voice_lm_stream *out);
void vox_voice_lm_stream_free(vox_voice_lm_stream *s);

typedef struct vox_voice_lm_batch {
  int B;
  vox_tensor *semantic;      /* f32 [B, N, voice_lm hidden]: row b's first n_semantic[b] vectors are used */
  const int32_t *n_semantic; /* host [B] */
  const int32_t *speech;     /* host, row b at speech + b * speech_stride */
  int64_t speech_stride;
  const int32_t *n_speech;   /* host [B] */
} vox_voice_lm_batch;

/* Builds every sample's stream, splices semantic vectors and token embeddings into one right-padded batch, runs
 * the LM causally with kv_lens, and computes the CE only on rows with a target (the lm_head sees those rows
 * alone). *n_targets (may be NULL) gets their count. */
vox_status vox_voice_lm_loss(vox_voice_lm *v, const vox_voice_lm_batch *b, bool training, vox_rng *rng,
                             vox_tensor **loss, int64_t *n_targets);

#endif
