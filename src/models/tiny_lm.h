/* A small pre-norm decoder LM in the Qwen2 layout (embedding, N blocks with RMSNorm, RoPE, GQA, SwiGLU, final
 * norm, tied or untied lm_head) with HF parameter names; used by the CPU demo, parity test and benchmark. */
#ifndef VOX_MODELS_TINY_LM_H
#define VOX_MODELS_TINY_LM_H

#include <stdbool.h>

#include "nn/embedding.h"
#include "nn/module.h"
#include "nn/transformer.h"

typedef struct vox_tiny_lm_config {
  int vocab_size, d_model, n_layers, n_heads, n_kv_heads, d_ff;
  float rope_theta;   /* 0 means 10000 */
  float norm_eps;     /* 0 means 1e-6 */
  float init_std;     /* 0 means 0.02 (HF initializer_range) */
  float dropout;
  bool tie_embeddings;
  bool qkv_bias;      /* Qwen2 has q/k/v biases */
  bool checkpoint;    /* activation checkpointing per block */
} vox_tiny_lm_config;

typedef struct vox_tiny_lm {
  vox_tiny_lm_config cfg;
  vox_params *params; /* owned: "model.embed_tokens.weight", "model.layers.N....", "model.norm.weight", "lm_head.weight" */
  vox_embedding embed;
  vox_block *layers;
  vox_rms_norm norm;
  vox_tensor *lm_head; /* borrowed; the embedding table when tied */
} vox_tiny_lm;

vox_status vox_tiny_lm_new(const vox_tiny_lm_config *cfg, uint64_t seed, vox_tiny_lm **out);
void vox_tiny_lm_free(vox_tiny_lm *m);

/* ids i32 [B, T] -> logits [B, T, V] (positions 0..T-1). When targets (i32 [B, T], -100 = ignore) and loss are
 * given, *loss gets the mean cross-entropy; logits may be NULL when only the loss is wanted. */
vox_status vox_tiny_lm_forward(vox_tiny_lm *m, vox_tensor *ids, vox_tensor *targets, bool training, vox_rng *rng,
                               vox_tensor **logits, vox_tensor **loss);
/* Incremental decoding without autograd: ids [B, T] continuing the caches (one per layer, created by vox_tiny_lm_caches_new). */
vox_status vox_tiny_lm_decode(vox_tiny_lm *m, vox_tensor *ids, vox_kv_cache *caches, vox_tensor **logits);
vox_status vox_tiny_lm_caches_new(const vox_tiny_lm *m, int batch, int64_t capacity, vox_kv_cache **caches);
void vox_tiny_lm_caches_free(const vox_tiny_lm *m, vox_kv_cache *caches);

#endif
