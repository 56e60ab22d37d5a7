/* The speech LLM composite (MinMo layout): audio encoder -> input projector -> Qwen2 LLM, plus the output
 * projector -> voice-token LM and the duplex predictor, all in ONE parameter registry under the prefixes
 * "audio_encoder.", "input_projector.", "llm.", "output_projector.", "voice_lm.", "duplex.". Owns part loading
 * (HF safetensors or vox checkpoints), the S2T loss with audio spliced at the placeholder, batched generation
 * with a KV cache (greedy, or beam search for one sample), and the voice-LM and duplex losses. */
#ifndef VOX_MODELS_SPEECH_LLM_H
#define VOX_MODELS_SPEECH_LLM_H

#include <stdbool.h>
#include <stdint.h>

#include "io/config.h"
#include "models/duplex.h"
#include "models/model_config.h"
#include "models/projector.h"
#include "models/qwen2.h"
#include "models/sanm_encoder.h"
#include "models/voice_lm.h"
#include "models/whisper_encoder.h"
#include "text/tokenizer.h"

typedef struct vox_speech_llm {
  vox_model_config cfg;
  vox_params *params; /* owned: every part's parameters */
  vox_whisper_encoder whisper; /* when cfg.encoder.kind == whisper: "audio_encoder.encoder.*" */
  vox_sanm_encoder *sanm;      /* owned, when kind == sanm: "audio_encoder.encoder.*" (FunASR names) */
  vox_linear ctc;              /* "audio_encoder.ctc.ctc_lo.*" when cfg.encoder.ctc_alphabet is set */
  vox_projector in_proj;       /* "input_projector.*" */
  vox_qwen2 llm;               /* "llm.model.*", "llm.lm_head.weight" */
  vox_output_projector out_proj; /* "output_projector.linear.*" */
  vox_voice_lm voice_lm;       /* "voice_lm.model.*", "voice_lm.lm_head.weight" */
  vox_duplex duplex;           /* "duplex.*" */
  const vox_tokenizer *tokenizer; /* borrowed (vox_speech_llm_borrow_tokenizer): a token CTC head's transcripts */
} vox_speech_llm;

/* Builds every part the `model:` node names (see models/model_config.h), randomly initialised from seed. */
vox_status vox_speech_llm_new(const vox_config *model_node, uint64_t seed, vox_speech_llm **out);
vox_status vox_speech_llm_new_from_config(const vox_model_config *cfg, uint64_t seed, vox_speech_llm **out);
void vox_speech_llm_free(vox_speech_llm *m); /* NULL is fine */

/* Loads one part ("audio_encoder", "input_projector", "llm", "output_projector", "voice_lm", "duplex") from
 *   "hf:DIR"    HF safetensors (model.safetensors or a sharded index): names in the files are the part's names
 *               without the prefix. llm: Qwen2ForCausalLM names (a tied model may lack lm_head.weight);
 *               audio_encoder whisper: WhisperModel/WhisperForConditionalGeneration files ("model.encoder.*" or
 *               "encoder.*"; decoder tensors are skipped); sanm: data_tools/convert_funasr.py output ("encoder.*";
 *               ctc.*, embed.* skipped).
 *   "ckpt:PATH" a vox HDF5 checkpoint whose /params group holds registry names ("llm.model.layers.0...").
 * Only that prefix is loaded; LoRA adapters (".lora_A/.lora_B") are not required to be present. Every tensor is
 * checked first (missing, mis-shaped: all listed in one error), so a failed load changes nothing. */
vox_status vox_speech_llm_load_part(vox_speech_llm *m, const char *part, const char *source);
/* Loads every part whose config names `pretrained`. */
vox_status vox_speech_llm_load_pretrained(vox_speech_llm *m);
/* vox_params_set_trainable on the registry (glob over full names, e.g. "input_projector.*"). */
vox_status vox_speech_llm_set_trainable(vox_speech_llm *m, const char *glob, bool trainable, int *n);
/* Elements of the parameters whose names start with prefix ("llm."; "" for all). */
int64_t vox_speech_llm_numel(const vox_speech_llm *m, const char *prefix, bool trainable_only);

/* A CTC head over tokens (cfg.encoder.ctc_tokens) reads and writes transcripts with this tokenizer, which must
 * speak the LLM's ids (restricted to its vocab_subset) and outlive the model's CTC calls. */
void vox_speech_llm_borrow_tokenizer(vox_speech_llm *m, const vox_tokenizer *tok);

/* CTC on the audio encoder (needs cfg.encoder.ctc_alphabet, blank 0, symbol i + 1 = alphabet[i]; or ctc_tokens,
 * symbol k + 1 = token id k).
 * Logits: feats [B, T, bins], lengths i32 [B] or NULL -> logits [B, T', symbols + 1] and frame counts i32 [B]. */
vox_status vox_speech_llm_ctc_logits(vox_speech_llm *m, vox_tensor *feats, vox_tensor *lengths, bool training,
                                     vox_rng *rng, vox_tensor **logits, vox_tensor **out_lengths);
/* A transcript as CTC symbols: lower-cased when the alphabet has no capitals, hyphens and white space as the
 * alphabet's space (when it has one, runs collapsed, ends trimmed), other characters dropped; with ctc_tokens its
 * token ids + 1 as the tokenizer encodes it. *ids malloc'd. */
vox_status vox_speech_llm_ctc_symbols(const vox_speech_llm *m, const char *text, int32_t **ids, int *n);
/* The same for any alphabet (no model): what a spelled text form (train/s2t_prompt.h) writes. */
vox_status vox_speech_llm_alphabet_symbols(const char *alphabet, const char *text, int32_t **ids, int *n);
/* The mean CTC loss per target symbol of B transcripts (every row's negative log-likelihood summed, divided by
 * the batch's symbol count); *n_symbols gets that count. Rows whose symbols cannot fit their frames add 0. */
vox_status vox_speech_llm_ctc_loss(vox_speech_llm *m, vox_tensor *feats, vox_tensor *lengths,
                                   const char *const *texts, bool training, vox_rng *rng, vox_tensor **loss,
                                   int64_t *n_symbols);
/* The same loss from logits vox_speech_llm_ctc_logits gave (an eval that also decodes encodes once). A NULL
 * texts[b] leaves row b out (no loss, no gradient); at least one row needs a symbol. */
vox_status vox_speech_llm_ctc_loss_from_logits(vox_speech_llm *m, vox_tensor *logits, vox_tensor *frame_lens,
                                               const char *const *texts, vox_tensor **loss, int64_t *n_symbols);
/* Best-path decoding of ctc logits (argmax per frame, repeats merged, blanks dropped): B malloc'd strings. */
vox_status vox_speech_llm_ctc_greedy(const vox_speech_llm *m, const vox_tensor *logits, const vox_tensor *lengths,
                                     char ***texts);

/* Audio features through the encoder (CTC-compressed with model.audio_encoder.ctc_compress) and the input
 * projector: feats [B, T, bins], lengths i32 [B] or NULL ->
 * embeds [B, T', llm hidden] and host lengths (malloc'd, caller frees). */
vox_status vox_speech_llm_encode_audio(vox_speech_llm *m, vox_tensor *feats, vox_tensor *lengths, bool training,
                                       vox_rng *rng, vox_tensor **embeds, int32_t **out_lengths);

/* One speech-to-text batch: per sample a ChatML id stream with exactly ONE audio placeholder id
 * (cfg.audio_token_id) and labels of the same length (-100 = ignore; labels at the placeholder are ignored). */
typedef struct vox_s2t_batch {
  int B;
  vox_tensor *features;          /* f32 [B, T, bins] */
  vox_tensor *feat_lens;         /* i32 [B], or NULL for all T */
  const int32_t *const *ids;     /* B host arrays */
  const int32_t *const *labels;  /* B host arrays (may be NULL for generation) */
  const int32_t *n_ids;          /* host [B] */
  /* Optional, borrowed: the batch's audio already through encoder and projector (vox_speech_llm_encode_audio),
   * so an evaluation that scores the loss and then decodes runs the encoder once. NULL: encode `features`. */
  vox_tensor *audio;
  const int32_t *audio_lens;     /* host [B], with `audio` */
} vox_s2t_batch;

/* The LLM input of a batch: audio embeddings spliced in at each sample's placeholder (a_len rows replace the one
 * id), right-padded to L; lens[b] = n_ids[b] - 1 + a_len[b]. When labels are given, *labels_out (malloc'd [B*L],
 * -100 at audio rows and padding) is filled. Exposed for tests and for the trainer's eval. */
vox_status vox_speech_llm_splice(vox_speech_llm *m, const vox_s2t_batch *b, vox_tensor *audio, const int32_t *a_lens,
                                 vox_tensor **embeds, int32_t **lens, int32_t **labels_out);

/* Mean CE of the LLM over label positions, HF convention: the logits at position t predict label t+1 (labels are
 * given aligned with the ids, as HF's `labels`, and shifted here). The lm_head runs only on the rows whose next
 * label is not ignored (those hidden rows are gathered first: with a 151k vocabulary the full [B, L, V] logits
 * would dominate time and memory). *n_target_tokens gets that row count. */
vox_status vox_speech_llm_s2t_loss(vox_speech_llm *m, const vox_s2t_batch *b, bool training, vox_rng *rng,
                                   vox_tensor **loss, int64_t *n_target_tokens);
/* The S2T loss plus ctc_weight times the encoder head's CTC loss (per transcript symbol) on the rows whose
 * transcripts[b] is not NULL, from one encoder forward: the alignment stages can train the encoder without the
 * segmentation its CTC head gives the compressor drifting. ctc_weight 0, or no transcript in the batch: exactly
 * vox_speech_llm_s2t_loss. *ctc_value (may be NULL) gets the CTC term's value (NAN when not computed). */
vox_status vox_speech_llm_s2t_ctc_loss(vox_speech_llm *m, const vox_s2t_batch *b, const char *const *transcripts,
                                       float ctc_weight, bool training, vox_rng *rng, vox_tensor **loss,
                                       int64_t *n_target_tokens, double *ctc_value);

typedef struct vox_generate_opts {
  int max_new_tokens;
  const int32_t *eos_ids;
  int n_eos;
  int beam_size;         /* 1 = greedy (any B); > 1 = beam search, B must be 1 */
  float length_penalty;  /* beam: score / len^length_penalty (HF default 1.0) */
} vox_generate_opts;

/* Generates for b->B samples (prompts end with "<|im_start|>assistant\n"; labels unused; without features and
 * audio the prompts are text alone, with no placeholder) with KV caches.
 * out_ids[b] (malloc'd, caller frees each and the array) holds the new tokens, without the eos; out_lens[b] their
 * count. Rows of different lengths decode together: each row keeps its own RoPE positions and an additive mask
 * hides the padding between its prompt and its new tokens, so every row gets what it would alone. */
vox_status vox_speech_llm_generate(vox_speech_llm *m, const vox_s2t_batch *b, const vox_generate_opts *opts,
                                   int32_t ***out_ids, int32_t **out_lens);

/* Text-to-speech / speech-to-speech batch for the voice LM: the LLM reads `prompt` (as in vox_s2t_batch; features
 * may be NULL for text-only prompts, then ids carry no placeholder) teacher-forced with the response text; the
 * hidden states at positions text_pos[b][0..n_text[b]) (the response text tokens, indices into ids) go through
 * the output projector to become semantic vectors; speech[b][0..n_speech[b]) are the target speech tokens. */
typedef struct vox_voice_batch {
  vox_s2t_batch prompt;
  const int32_t *const *text_pos;
  const int32_t *n_text;
  const int32_t *const *speech;
  const int32_t *n_speech;
} vox_voice_batch;

/* Voice-LM loss (models/voice_lm.h). The LLM runs without a tape when none of its parameters trains (MinMo's
 * stages 2-3 freeze it), so only the output projector and the voice LM hold activations. */
vox_status vox_speech_llm_voice_loss(vox_speech_llm *m, const vox_voice_batch *b, bool training, vox_rng *rng,
                                     vox_tensor **loss, int64_t *n_targets);

/* Duplex loss: audio -> encoder -> projector -> LLM (embeddings of the audio frames only; no tape when the LLM
 * and the front end are frozen) -> duplex predictor, CE against labels i32 [B, T'] at the input projector's frame
 * rate (-100 = ignore; frames past a row's length must be -100). */
vox_status vox_speech_llm_duplex_loss(vox_speech_llm *m, vox_tensor *features, vox_tensor *feat_lens,
                                      vox_tensor *labels, bool training, vox_rng *rng, vox_tensor **loss,
                                      int64_t *n_frames);

#endif
