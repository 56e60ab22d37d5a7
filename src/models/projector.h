/* Speech-LLM projectors: the input projector from encoder frames to LLM embeddings (MinMo: 2 transformer layers +
 * a stride-2 Conv1d; Mini-Omni: a 2-layer MLP; SLAM-LLM: k-frame stacking + Linear-ReLU-Linear) and the output
 * projector (one Linear from LLM width to voice-LM width). Output lengths are computed per sample. */
#ifndef VOX_MODELS_PROJECTOR_H
#define VOX_MODELS_PROJECTOR_H

#include <stdbool.h>

#include "nn/conv.h"
#include "nn/linear.h"
#include "nn/module.h"
#include "nn/transformer.h"

typedef enum vox_projector_kind { VOX_PROJ_MINMO = 0, VOX_PROJ_MLP, VOX_PROJ_LINEAR } vox_projector_kind;

typedef struct vox_projector_config {
  vox_projector_kind kind;
  int in_dim, out_dim;  /* encoder width -> LLM width */
  /* minmo: n_layers transformer layers at in_dim (pre-LayerNorm, GELU MLP, full attention over valid frames,
   * no positional encoding: the encoder's output carries position), then Conv1d(in_dim -> out_dim, kernel
   * conv_kernel, stride conv_stride, padding conv_kernel/2). */
  int n_layers;         /* 0 means 2 */
  int n_heads;          /* 0 means in_dim / 64 (at least 1) */
  int d_ff;             /* 0 means 4 * in_dim */
  int conv_kernel;      /* 0 means 3 */
  int conv_stride;      /* 0 means 2 */
  /* mlp: Linear(in_dim, hidden) -> GELU -> Linear(hidden, out_dim) per frame (Mini-Omni's adapter).
   * linear: concat k consecutive frames (the tail that does not fill k frames is dropped, as SLAM-LLM's
   * EncoderProjectorConcat), Linear(k*in_dim, hidden) -> ReLU -> Linear(hidden, out_dim). */
  int hidden;           /* 0 means out_dim (mlp) or 2048 (linear) */
  int k;                /* frames stacked (linear); 0 means 5 */
  float dropout;        /* residual dropout in the minmo layers while training */
  bool checkpoint;      /* activation checkpointing of the minmo layers */
} vox_projector_config;

/* "minmo" | "mlp" | "linear". */
vox_status vox_projector_kind_parse(const char *name, vox_projector_kind *kind);
const char *vox_projector_kind_name(vox_projector_kind kind);

typedef struct vox_projector {
  vox_projector_config cfg;
  vox_block *layers;    /* minmo: "<prefix>layers.N.*" (owned array; parameters in the registry) */
  vox_conv1d conv;      /* minmo: "<prefix>conv.weight" [out, in, K], "<prefix>conv.bias" */
  vox_linear linear1, linear2; /* mlp / linear: "<prefix>linear1.*", "<prefix>linear2.*" */
} vox_projector;

/* prefix is prepended verbatim ("input_projector."). Fills in the config's defaults. */
vox_status vox_projector_init(vox_projector *p, vox_params *reg, const char *prefix, const vox_projector_config *cfg,
                              vox_rng *rng);
void vox_projector_release(vox_projector *p);
/* Zeroes the last layer (minmo: the convolution; mlp / linear: linear2), so the projector starts out adding
 * nothing to whatever its output is summed with, as LoRA's B starts at zero. */
vox_status vox_projector_zero_output(vox_projector *p);
/* Frames out for `len` frames in: minmo (len + 2*(K/2) - K) / stride + 1 (ceil(len/2) for K 3, stride 2),
 * mlp len, linear len / k. 0 stays 0. */
int64_t vox_projector_out_len(const vox_projector *p, int64_t len);
/* x [B, T, in_dim], lengths i32 [B] (valid frames; NULL = all T) -> out [B, T', out_dim] and out_lengths i32 [B]
 * (new; may be NULL when not wanted). Frames past a row's length never influence its valid outputs: the minmo
 * layers mask them as keys and they are zeroed before the convolution, so a padded batch gives what each sample
 * gives alone. rng may be NULL unless dropout is active. */
vox_status vox_projector_forward(vox_projector *p, vox_tensor *x, vox_tensor *lengths, bool training, vox_rng *rng,
                                 vox_tensor **out, vox_tensor **out_lengths);

/* MinMo's output projector: one Linear (with bias) from LLM width to voice-LM width, "<prefix>linear.*". */
typedef struct vox_output_projector {
  vox_linear linear;
} vox_output_projector;

vox_status vox_output_projector_init(vox_output_projector *p, vox_params *reg, const char *prefix, int in_dim,
                                     int out_dim, vox_rng *rng);
vox_status vox_output_projector_forward(const vox_output_projector *p, vox_tensor *x, vox_tensor **out);

#endif
