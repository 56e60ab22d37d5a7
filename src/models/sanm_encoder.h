/* SenseVoice-style SAN-M speech encoder (FunASR SenseVoiceEncoderSmall): LFR fbank in, self-attention with an
 * FSMN memory block per layer, FunASR's parameter names under a prefix. Owns src/models/sanm_encoder.{h,c} and
 * sanm_encoder_hf.c (config.json and safetensors).
 *
 * Semantics follow modelscope/FunASR funasr/models/sense_voice/model.py at commit 0170f534b017 (its own copies of
 * SinusoidalPositionEncoder, MultiHeadedAttentionSANM, EncoderLayerSANM, and SenseVoiceEncoderSmall; LayerNorm eps
 * 1e-5 there, unlike Paraformer's SANMEncoder with 1e-12):
 *   x = feats * sqrt(output_size) + sinusoid(positions 1..T, depth input_size)
 *   encoders0 (1 layer, input_size -> output_size), encoders (num_blocks - 1 layers), after_norm,
 *   tp_encoders (tp_blocks layers), tp_norm.
 * Each layer (pre-norm): h = norm1(x); [q|k|v] = linear_q_k_v(h); v' = v * keep;
 *   fsmn = drop_att(conv_dw(pad(v')) + v') * keep  (depthwise, kernel_size taps, left pad (K-1)/2 + sanm_shfit);
 *   a = linear_out(softmax(q k^T / sqrt(dk), key padding masked) v) + fsmn;
 *   x = x + drop(a) (no residual when in_size != size, as FunASR); x = x + drop(w_2(drop(relu(w_1(norm2(x)))))).
 * Names are FunASR's state_dict names after a verbatim prefix (as vox_whisper_encoder: "" or e.g. "audio."):
 * prefix + encoder.encoders0.0.self_attn.linear_q_k_v.weight, ...self_attn.fsmn_block.weight,
 * ...self_attn.linear_out.*, ...norm1.*, ...norm2.*, ...feed_forward.w_1.*, ...feed_forward.w_2.*,
 * encoder.encoders.N.*, encoder.tp_encoders.N.*, encoder.after_norm.*, encoder.tp_norm.*. */
#ifndef VOX_MODELS_SANM_ENCODER_H
#define VOX_MODELS_SANM_ENCODER_H

#include <stdbool.h>

#include "nn/conv.h"
#include "nn/linear.h"
#include "nn/module.h"
#include "nn/norm.h"

typedef struct vox_hf_config vox_hf_config; /* io/hf_config.h */

typedef struct vox_sanm_encoder_config {
  int input_size;      /* feature dim: 560 = 80 mel bins x LFR m 7 */
  int output_size;     /* model width d */
  int attention_heads;
  int linear_units;    /* FFN hidden width */
  int num_blocks;      /* FunASR's count: encoders0 (1 layer) + encoders (num_blocks - 1 layers) */
  int tp_blocks;       /* tp_encoders layers after after_norm */
  int kernel_size;     /* FSMN taps (11) */
  int sanm_shfit;      /* FunASR's spelling: extra left padding of the FSMN (0 = centred) */
  float dropout_rate;            /* residual branches and FFN hidden, while training */
  float attention_dropout_rate;  /* attention probabilities and FSMN memory, while training */
  float norm_eps;      /* 0 means 1e-5 (torch.nn.LayerNorm default, as FunASR) */
  bool checkpoint;     /* activation checkpointing per layer */
} vox_sanm_encoder_config;

/* SenseVoice-Small (FunASR iic/SenseVoiceSmall config.yaml): 560 -> 512, 4 heads, 2048 units, 50 blocks, 20 tp
 * blocks, kernel 11, shift 0, dropout 0.1, attention dropout 0.1. */
vox_sanm_encoder_config vox_sanm_encoder_config_small(void);
/* A large SAN-M for MinMo-scale runs. SenseVoice-Large's encoder is not published in this form, so the sizes
 * are our choice: Small's depth (50 + 20 blocks, kernel 11, shift 0) at twice the width: d 1024, 16 heads (head
 * dim 64), 4096 units; about 0.88e9 parameters (12 d^2 per layer x 70 layers) against Small's 0.23e9. */
vox_sanm_encoder_config vox_sanm_encoder_config_large(void);

/* From a config.json with model_type "sensevoice" (written by data_tools/convert_funasr.py): input_size,
 * output_size, attention_heads, linear_units, num_blocks, tp_blocks, kernel_size required; sanm_shfit (0),
 * dropout_rate (0.1), attention_dropout_rate (0.1), layer_norm_eps (1e-5) optional. checkpoint stays false.
 * Refused by name: another model_type, sizes that cannot build (checked again by init). */
vox_status vox_sanm_encoder_config_from_hf(const vox_hf_config *hf, vox_sanm_encoder_config *out);

typedef struct vox_sanm_layer {
  int in_size, size, heads, kernel_size, left_pad, right_pad;
  float dropout, attention_dropout;
  bool checkpoint;
  vox_layer_norm norm1, norm2;
  vox_linear linear_q_k_v, linear_out, w_1, w_2;
  vox_conv1d fsmn_block; /* depthwise [size, 1, K], no bias */
  struct {               /* what a checkpointed forward needs again in backward (see nn/transformer.h) */
    bool training, has_lengths;
    vox_rng rng, rng_after;
  } ck;
} vox_sanm_layer;

/* Registers "<name>.self_attn.*", "<name>.norm1.*", "<name>.norm2.*", "<name>.feed_forward.*". PyTorch default
 * initialisation (as FunASR builds them): Linear/Conv1d U(+-1/sqrt(fan_in)), LayerNorm ones/zeros. */
vox_status vox_sanm_layer_init(vox_sanm_layer *l, vox_params *reg, const char *name, int in_size, int size,
                               const vox_sanm_encoder_config *cfg, vox_rng *rng);
/* x [B, T, in_size] -> [B, T, size]. lengths i32 [B] (valid frames per row) or NULL (no padding). rng may be NULL
 * when no dropout is active. */
vox_status vox_sanm_layer_forward(vox_sanm_layer *l, vox_tensor *x, vox_tensor *lengths, bool training, vox_rng *rng,
                                  vox_tensor **out);

typedef struct vox_sanm_encoder {
  vox_sanm_encoder_config cfg;
  char prefix[64];        /* prepended verbatim to every name */
  int n_layers;           /* 1 + (num_blocks - 1) + tp_blocks */
  vox_sanm_layer *layers; /* owned array: encoders0.0, encoders.0.., tp_encoders.0.. (parameters in the registry) */
  vox_layer_norm after_norm, tp_norm;
} vox_sanm_encoder;

/* Registers every parameter as prefix + "encoder...." in reg (prefix NULL means ""), initialised from rng. */
vox_status vox_sanm_encoder_init(vox_sanm_encoder *m, vox_params *reg, const char *prefix,
                                 const vox_sanm_encoder_config *cfg, vox_rng *rng);
/* feats f32 [B, T, input_size], lengths i32 [B] or NULL (all T) -> hidden [B, T, output_size] and out_lengths
 * i32 [B] on the CPU (the valid frames, FunASR's olens; a new tensor, may be NULL when not wanted). Frames past a row's length are computed like FunASR
 * does (they attend to the valid frames) and carry no meaning. */
vox_status vox_sanm_encoder_forward(vox_sanm_encoder *m, vox_tensor *feats, vox_tensor *lengths, bool training,
                                    vox_rng *rng, vox_tensor **hidden, vox_tensor **out_lengths);
/* Reads dir/config.json (model_type "sensevoice"), builds the encoder under prefix in reg and loads
 * dir/model.safetensors (or a sharded index) into it, all-or-nothing: every encoder parameter must be in the file,
 * mis-shaped or unknown "encoder.*" tensors are errors naming them; tensors outside "encoder." (a full SenseVoice
 * save's ctc.*, embed.*) are skipped. Other modules' parameters in a shared registry are left alone. On failure m
 * is released but its parameters stay in reg (unloaded): discard that registry. */
vox_status vox_sanm_encoder_load_hf(vox_sanm_encoder *m, vox_params *reg, const char *prefix, const char *dir);
/* Writes dir/config.json and dir/model.safetensors (FunASR names "encoder....", on_disk VOX_F32 or VOX_BF16), what
 * vox_sanm_encoder_load_hf reads back; e.g. the export of an encoder fine-tuned in full-align. am.mvn is not
 * written (the caller copies the frontend's). */
vox_status vox_sanm_encoder_save_hf(const vox_sanm_encoder *m, const vox_params *reg, const char *dir,
                                    vox_dtype on_disk);
/* Turns activation checkpointing per layer on or off (after load_hf, which builds without it). */
void vox_sanm_encoder_set_checkpoint(vox_sanm_encoder *m, bool on);
/* Frees the layer array (the parameters belong to the registry). */
void vox_sanm_encoder_release(vox_sanm_encoder *m);

#endif
