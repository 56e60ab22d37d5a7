/* MinMo's full-duplex predictor: one transformer layer and a linear softmax over the LLM's hidden states,
 * predicting per frame one of 4 control classes; trained with frame-level cross-entropy (ignore index -100). */
#ifndef VOX_MODELS_DUPLEX_H
#define VOX_MODELS_DUPLEX_H

#include <stdbool.h>

#include "nn/linear.h"
#include "nn/module.h"
#include "nn/transformer.h"

/* The classes, as the data tools label frames (MinMo section 3.3 / the duplex heuristics). */
typedef enum vox_duplex_class {
  VOX_DUPLEX_CONTINUE = 0,   /* nothing changes: keep listening / keep speaking */
  VOX_DUPLEX_ASSISTANT_TURN, /* the user's turn ended: the assistant takes the turn and answers */
  VOX_DUPLEX_USER_TURN,      /* the user takes the turn: stop speaking and listen */
  VOX_DUPLEX_BACKCHANNEL,    /* a user back-channel ("uh-huh"): ignore it, keep speaking */
  VOX_DUPLEX_N_CLASSES
} vox_duplex_class;

typedef struct vox_duplex_config {
  int in_dim;        /* the LLM's hidden size */
  int d_model;       /* the layer's width; 0 means in_dim (else "<prefix>in_proj" maps in_dim -> d_model) */
  int n_heads;       /* 0 means d_model / 64 (at least 1) */
  int n_kv_heads;    /* 0 means n_heads */
  int d_ff;          /* 0 means 4 * d_model */
  int n_classes;     /* 0 means 4 */
  float rope_theta;  /* 0 means 10000 */
  float dropout;
} vox_duplex_config;

/* Qwen2-style block (RMSNorm, causal RoPE attention, SwiGLU): "<prefix>layer.*", then "<prefix>norm.weight" and
 * the classifier "<prefix>head.weight"/"<prefix>head.bias". Causal, so a frame's decision uses only the past,
 * as streaming inference needs. */
typedef struct vox_duplex {
  vox_duplex_config cfg;
  bool has_in_proj;
  vox_linear in_proj;
  vox_block layer;
  vox_rms_norm norm;
  vox_linear head;
} vox_duplex;

vox_status vox_duplex_init(vox_duplex *d, vox_params *reg, const char *prefix, const vox_duplex_config *cfg,
                           vox_rng *rng);
/* hidden [B, T, in_dim], lengths i32 [B] or NULL -> logits [B, T, n_classes]. */
vox_status vox_duplex_forward(vox_duplex *d, vox_tensor *hidden, vox_tensor *lengths, bool training, vox_rng *rng,
                              vox_tensor **logits);
/* Mean cross-entropy over frames whose label (i32 [B, T]) is not -100. *n_frames (may be NULL) gets their count;
 * logits_out (may be NULL) receives the logits. */
vox_status vox_duplex_loss(vox_duplex *d, vox_tensor *hidden, vox_tensor *lengths, vox_tensor *labels, bool training,
                           vox_rng *rng, vox_tensor **loss, int64_t *n_frames, vox_tensor **logits_out);

#endif
