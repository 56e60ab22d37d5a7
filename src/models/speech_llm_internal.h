/* Internal to the speech-LLM composite (speech_llm*.c): the audio-encoder dispatch (Whisper or SAN-M), the
 * "does any parameter under this prefix train" test that decides when a part runs without a tape, and the LLM
 * hidden states of a spliced batch. */
#ifndef VOX_MODELS_SPEECH_LLM_INTERNAL_H
#define VOX_MODELS_SPEECH_LLM_INTERNAL_H

#include "models/speech_llm.h"

vox_status vox_sllm_encoder_init(vox_speech_llm *m, vox_rng *rng);
void vox_sllm_encoder_release(vox_speech_llm *m);
/* feats [B, T, bins] -> hidden [B, T', d] and out_lengths i32 [B]. */
vox_status vox_sllm_encoder_forward(vox_speech_llm *m, vox_tensor *feats, vox_tensor *lengths, bool training,
                                    vox_rng *rng, vox_tensor **hidden, vox_tensor **out_lengths);
/* The batch's audio embeddings: b->audio (retained, lengths copied) when given, else encoded from b->features;
 * *audio stays NULL for a batch without audio. The caller releases *audio and frees *lens. */
vox_status vox_sllm_batch_audio(vox_speech_llm *m, const vox_s2t_batch *b, bool training, vox_rng *rng,
                                vox_tensor **audio, int32_t **lens);
/* The CTC compressor (model.audio_encoder.ctc_compress): hidden [B, T, d] with frame counts i32 [B] -> out
 * [B, S, d] holding, per sample, the mean of each run of one non-blank symbol in time order (best path, or blank
 * probability below ctc_compress_threshold), and the run counts i32 [B] (a sample with no symbol keeps all its
 * frames as one run). Differentiable in hidden. With posterior != NULL (ctc_tokens only), also each run's mean
 * non-blank posterior times the LLM's input embeddings [B, S, llm hidden], differentiable in the head and hidden.
 * head_logits: the head's logits on hidden when the caller already has them (NULL: computed here). */
vox_status vox_sllm_ctc_compress(vox_speech_llm *m, vox_tensor *hidden, vox_tensor *lengths,
                                 vox_tensor *head_logits, vox_tensor **out, vox_tensor **out_lengths,
                                 vox_tensor **posterior);
bool vox_sllm_prefix_trains(const vox_speech_llm *m, const char *prefix);
/* Audio (vox_sllm_batch_audio) + splice + LLM: hidden [B, L, H], host lens [B] and (labels != NULL) labels [B*L]. */
vox_status vox_sllm_llm_hidden(vox_speech_llm *m, const vox_s2t_batch *b, bool training, vox_rng *rng,
                               vox_tensor **hidden, int32_t **lens, int32_t **labels);

#endif
