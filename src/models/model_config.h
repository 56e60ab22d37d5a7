/* The `model:` node of a recipe parsed into the speech-LLM's part configs (module prefix vox_model_config_):
 * audio_encoder, input_projector, llm, output_projector, voice_lm, duplex, audio_token. Every part is optional;
 * unknown keys, wrong types and inconsistent sizes are errors naming file:line and the key. docs/models.md lists
 * every key. */
#ifndef VOX_MODELS_MODEL_CONFIG_H
#define VOX_MODELS_MODEL_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "io/config.h"
#include "models/duplex.h"
#include "models/projector.h"
#include "models/qwen2.h"

#define VOX_MC_PATH_MAX 512

typedef enum vox_encoder_kind { VOX_ENCODER_WHISPER = 0, VOX_ENCODER_SANM } vox_encoder_kind;

/* audio_encoder: `kind: whisper` takes HF WhisperConfig names (num_mel_bins, d_model, encoder_layers,
 * encoder_attention_heads, encoder_ffn_dim, max_source_positions); `kind: sanm` takes FunASR's SenseVoice encoder
 * names (input_size, output_size, attention_heads, linear_units, num_blocks, tp_blocks, kernel_size,
 * sanm_shfit). Both: dropout, checkpoint, pretrained, ctc_alphabet, ctc_tokens, ctc_compress,
 * ctc_compress_threshold, ctc_posterior, ctc_posterior_temperature. */
typedef struct vox_mc_encoder {
  vox_encoder_kind kind;
  /* whisper */
  int num_mel_bins, d_model, encoder_layers, encoder_attention_heads, encoder_ffn_dim, max_source_positions;
  /* sanm */
  int input_size, output_size, attention_heads, linear_units, num_blocks, tp_blocks, kernel_size, sanm_shfit;
  float dropout;
  bool checkpoint;
  /* ctc_alphabet: the symbols of a CTC head on the encoder output ("audio_encoder.ctc.ctc_lo", FunASR's name),
   * blank = 0 and symbol i + 1 = ctc_alphabet[i]; empty: no head. For encoder pre-training (task ctc). */
  char ctc_alphabet[128];
  /* ctc_tokens: the CTC head is over the LLM's token ids instead (blank 0, token id k -> k + 1; with
   * llm.vocab_subset, the kept ids), as SenseVoice's CTC is over its BPE vocabulary; transcripts are tokenized by
   * the recipe's tokenizer. Excludes ctc_alphabet; needs an llm. */
  bool ctc_tokens;
  /* The head's outputs: strlen(ctc_alphabet) + 1, llm.vocab_size + 1 with ctc_tokens, 0 without a head. */
  int ctc_classes;
  /* ctc_compress: the encoder's output reaches the input projector CTC-compressed (Speech-LLaMA's compressor):
   * frames the head labels blank are dropped and each run of one symbol becomes the mean of its frames, so the
   * LLM reads about one position per recognised character (one per token with ctc_tokens) instead of one per
   * 40 ms. Needs a CTC head; not with duplex, whose labels are per projector frame. */
  bool ctc_compress;
  /* ctc_compress_threshold: with the compressor, a frame counts as its best non-blank symbol when the head's blank
   * probability is below this, so an uncertain word keeps a position instead of vanishing; 0 (default): when
   * blank is not the best class (best path). In (0, 1]. */
  float ctc_compress_threshold;
  /* ctc_posterior (LegoSLM): each compressed position also carries the head's mean non-blank posterior over its
   * frames times the LLM's input embedding table, added to the projector's output, whose last layer starts at
   * zero: a frozen LLM reads token embeddings from the first step and the projector learns what they miss.
   * Needs ctc_tokens, ctc_compress and an input projector that keeps the length. */
  bool ctc_posterior;
  /* ctc_posterior_temperature: the head's logits are divided by it before the softmax of the posterior
   * embeddings (default 1; below 1 sharpens toward the best token's embedding). > 0; needs ctc_posterior. */
  float ctc_posterior_temperature;
} vox_mc_encoder;

/* voice_lm: a Qwen2-architecture LM (the same keys as llm) over speech tokens: vocab_size is derived as
 * speech_vocab + 4 specials (see models/voice_lm.h); mix_ratio [text, speech] defaults to [5, 15]. */
typedef struct vox_mc_voice_lm {
  vox_qwen2_config lm;
  int speech_vocab;
  int mix_text, mix_speech;
} vox_mc_voice_lm;

typedef struct vox_model_config {
  bool has_encoder, has_input_projector, has_llm, has_output_projector, has_voice_lm, has_duplex;
  vox_mc_encoder encoder;
  vox_projector_config input_projector; /* in_dim/out_dim filled from the encoder and the llm */
  vox_qwen2_config llm;
  int output_projector_in, output_projector_out; /* llm.hidden_size -> voice_lm.hidden_size */
  vox_mc_voice_lm voice_lm;
  vox_duplex_config duplex;             /* in_dim = llm.hidden_size */
  /* audio_token: the placeholder in prompts, an extra id after the tokenizer's added tokens (151669 for Qwen2.5's
   * tokenizer: 151643 + 26 added tokens). text "<|audio|>" by default. */
  char audio_token_text[64];
  int32_t audio_token_id;
  /* llm.vocab_subset: the file of the token ids the LLM keeps (resolved against the file that names it; empty:
   * every id). With it llm.vocab_size is the number of kept ids and ids in the model are indices among them
   * (text/tokenizer.h, vox_tokenizer_restrict); vocab_source_size is the tokenizer-space vocab_size the file
   * indexes (the key's value), audio_token_source_id the placeholder's tokenizer id (= audio_token_id without a
   * subset). */
  char vocab_subset[VOX_MC_PATH_MAX];
  int32_t vocab_source_size, audio_token_source_id;
  /* Per part `pretrained: "hf:DIR" | "ckpt:PATH"` (empty when absent): what vox_speech_llm_load_pretrained loads. */
  char pretrained[6][VOX_MC_PATH_MAX];
} vox_model_config;

/* Part names in registry order; index into pretrained[]. Their prefixes are "<name>.". */
extern const char *const vox_model_parts[6];

/* Parses `node` (the `model:` map). Parts absent from the node are absent from the model. */
vox_status vox_model_config_parse(const vox_config *node, vox_model_config *out);

/* Parameter counts per part (indexed like vox_model_parts), computed from the shapes without allocating anything
 * (for `vox model-info` on 7B configs); equal to what vox_speech_llm_new registers (a test checks it). */
void vox_model_config_numel(const vox_model_config *cfg, int64_t counts[6]);
/* Elements of the Qwen2 decoder alone. */
int64_t vox_qwen2_config_numel(const vox_qwen2_config *c);
/* Elements a LoRA of `rank` adds to a Qwen2 decoder on the given projections (any of "q_proj", "k_proj", "v_proj",
 * "o_proj", "gate_proj", "up_proj", "down_proj"; NULL-terminated). */
int64_t vox_qwen2_lora_numel(const vox_qwen2_config *c, int rank, const char *const *targets);

#endif
