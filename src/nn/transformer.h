/* nn pre-norm transformer block: x + drop(attn(norm1(x))), then h + drop(mlp(norm2(h))), with Qwen2's names by
 * default ("input_layernorm", "self_attn", "post_attention_layernorm", "mlp") and activation checkpointing. */
#ifndef VOX_NN_TRANSFORMER_H
#define VOX_NN_TRANSFORMER_H

#include <stdbool.h>

#include "nn/attention.h"
#include "nn/dropout.h"
#include "nn/mlp.h"
#include "nn/norm.h"

typedef enum vox_norm_kind { VOX_NORM_RMS = 0, VOX_NORM_LAYER } vox_norm_kind;

typedef struct vox_block_config {
  vox_mha_config attn;
  vox_mlp_kind mlp_kind;
  int d_ff;
  bool mlp_bias;
  vox_norm_kind norm_kind;
  float norm_eps;     /* 0 means 1e-6 */
  float dropout;      /* on each residual branch, while training */
  bool checkpoint;    /* recompute the block in backward instead of keeping its activations */
  /* Child names; NULL means the Qwen2 ones; mlp_name "" puts fc1/fc2 directly under the block (Whisper). */
  const char *attn_norm_name, *attn_name, *mlp_norm_name, *mlp_name;
} vox_block_config;

typedef struct vox_block {
  vox_block_config cfg;
  vox_rms_norm rms1, rms2;         /* used when norm_kind == VOX_NORM_RMS */
  vox_layer_norm ln1, ln2;         /* used when norm_kind == VOX_NORM_LAYER */
  vox_mha attn;
  vox_mlp mlp;
  vox_dropout drop;
  /* What a checkpointed forward needs again in backward (its tensors travel as checkpoint inputs). A block is
   * therefore run at most once per backward when checkpointing. */
  struct {
    vox_attention_mask mask;
    bool has_mask, training;
    vox_rng rng, rng_after;
    int slot_pos, slot_lens, slot_bias; /* index among the checkpoint inputs, or -1 */
  } ck;
} vox_block;

vox_status vox_block_init(vox_block *b, vox_params *reg, const char *name, const vox_block_config *cfg, vox_rng *rng);
/* x [B, T, d_model] -> same shape. rng may be NULL when dropout is 0 or !training. Checkpointing applies only
 * when recording gradients without a cache. */
vox_status vox_block_forward(vox_block *b, vox_tensor *x, vox_tensor *positions, const vox_attention_mask *mask,
                             vox_kv_cache *cache, bool training, vox_rng *rng, vox_tensor **out);

#endif
