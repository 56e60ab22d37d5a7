/* The Whisper encoder with HF WhisperModel.encoder semantics (conv stem, sinusoidal positions, pre-LN blocks, final
 * LayerNorm) under a prefix in a shared registry, for any frame count with padding masks and chunked streaming. */
#ifndef VOX_MODELS_WHISPER_ENCODER_H
#define VOX_MODELS_WHISPER_ENCODER_H

#include <stdbool.h>

#include "nn/conv.h"
#include "nn/module.h"
#include "nn/norm.h"
#include "nn/transformer.h"

typedef struct vox_hf_config vox_hf_config; /* io/hf_config.h */

typedef struct vox_whisper_config {
  int num_mel_bins;            /* 80, or 128 for large-v3 */
  int d_model, encoder_layers, encoder_attention_heads, encoder_ffn_dim;
  int max_source_positions;    /* 1500: positions after the stride-2 conv (3000 input frames) */
  float dropout;               /* on the embeddings and each residual branch while training (HF "dropout") */
  float layer_norm_eps;        /* 0 means 1e-5 (torch.nn.LayerNorm) */
  float init_std;              /* 0 means 0.02 (HF init_std) */
  bool checkpoint;             /* activation checkpointing per block */
} vox_whisper_config;

/* WhisperConfig's encoder defaults (whisper-tiny sizes: 80 mels, d 384, 4 layers, 6 heads, ffn 1536, 1500 pos). */
vox_whisper_config vox_whisper_config_default(void);
/* From an HF WhisperConfig config.json: num_mel_bins (80/128), d_model, encoder_layers, encoder_attention_heads,
 * encoder_ffn_dim, max_source_positions, dropout, init_std. Refused by name: a model_type other than "whisper",
 * activation_function other than "gelu". */
vox_status vox_whisper_config_from_hf(const vox_hf_config *hf, vox_whisper_config *out);

typedef struct vox_whisper_encoder {
  vox_whisper_config cfg;
  char prefix[64];           /* prepended verbatim to every name ("" or e.g. "audio.") */
  vox_conv1d conv1, conv2;   /* prefix + "encoder.conv1" (k3, p1), "encoder.conv2" (k3, s2, p1) */
  vox_tensor *embed_positions; /* borrowed: prefix + "encoder.embed_positions.weight" [max_source_positions, d],
                                * sinusoids at init and frozen (requires_grad false) as in HF */
  vox_block *layers;         /* owned array: prefix + "encoder.layers.N" */
  vox_layer_norm layer_norm; /* prefix + "encoder.layer_norm" */
  int param_first, param_count; /* this encoder's entries in the registry */
} vox_whisper_encoder;

/* Chunked (streaming) use: attention restricted so that a query in chunk c sees keys of chunks 0..c only
 * (vox_attention_mask.chunk_size, counted in output frames, i.e. after the stride-2 conv). The conv stem looks
 * ahead: output frame j reads input frames up to 2j+2, so a chunk's outputs also depend on the first input frame
 * of the next chunk (a streaming caller holds back one frame). chunk_size 0 means full attention. */
typedef struct vox_whisper_stream_opts {
  int chunk_size;
} vox_whisper_stream_opts;

/* Registers and initialises like HF _init_weights (N(0, init_std) conv/linear weights, zero biases, unit
 * LayerNorms, sinusoids for the positions). */
vox_status vox_whisper_encoder_init(vox_whisper_encoder *m, vox_params *reg, const char *prefix,
                                    const vox_whisper_config *cfg, vox_rng *rng);
void vox_whisper_encoder_release(vox_whisper_encoder *m); /* frees the layer array; parameters are the registry's */

/* Reads hf_dir/config.json, builds the encoder under prefix in reg and loads its weights, all-or-nothing (errors
 * name each missing, unexpected or mis-shaped tensor). The file may be a WhisperModel ("encoder.*"), a
 * WhisperForConditionalGeneration ("model.encoder.*", renamed) or an encoder-only save; decoder tensors
 * ("decoder.*", "model.decoder.*") and "proj_out.weight" are skipped. On failure m is released, but the parameters
 * it registered stay in reg (unloaded): discard that registry. */
vox_status vox_whisper_encoder_load_hf(vox_whisper_encoder *m, vox_params *reg, const char *prefix,
                                       const char *hf_dir);

/* Output frames for `frames` input frames: ceil(frames / 2) (conv2 has stride 2, kernel 3, padding 1). */
int64_t vox_whisper_output_frames(int64_t frames);

/* feats [B, T, n_mels] (T <= 2 * max_source_positions; unlike HF any T is accepted, not only 3000) ->
 * hidden [B, ceil(T/2), d]. lengths: i32 [B] valid input frames per row (right padding) or NULL; frames past a
 * row's length are zeroed before each conv and masked out as attention keys, so a padded row's valid outputs
 * equal that row run alone (its padded outputs are unspecified). out_lengths (may be NULL): i32 [B] valid output
 * frames, ceil(length / 2). stream: NULL or a chunk mask. rng is needed only for dropout while training. */
vox_status vox_whisper_encoder_forward(vox_whisper_encoder *m, vox_tensor *feats, vox_tensor *lengths,
                                       const vox_whisper_stream_opts *stream, bool training, vox_rng *rng,
                                       vox_tensor **hidden, vox_tensor **out_lengths);

#endif
