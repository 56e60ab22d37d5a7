/* The Qwen2/Qwen2.5 decoder (HF Qwen2ForCausalLM semantics: RoPE rotate_half, GQA, RMSNorm, SwiGLU, q/k/v bias,
 * optional tied lm_head) registered under a prefix in a shared registry, with padding masks and KV-cache decoding. */
#ifndef VOX_MODELS_QWEN2_H
#define VOX_MODELS_QWEN2_H

#include <stdbool.h>

#include "core/dtype.h"
#include "nn/embedding.h"
#include "nn/module.h"
#include "nn/transformer.h"

typedef struct vox_hf_config vox_hf_config; /* io/hf_config.h */

typedef struct vox_qwen2_config {
  int vocab_size, hidden_size, num_hidden_layers, num_attention_heads, num_key_value_heads, intermediate_size,
      max_position_embeddings;
  float rope_theta;        /* 0 means 10000 */
  float rms_norm_eps;      /* 0 means 1e-6 */
  float initializer_range; /* 0 means 0.02 */
  float dropout;           /* on each residual branch while training (HF has none there; 0 reproduces HF) */
  bool tie_word_embeddings;
  bool attention_bias;     /* q/k/v biases (always true in HF Qwen2) */
  bool checkpoint;         /* activation checkpointing per block */
} vox_qwen2_config;

/* Qwen2Config defaults as in transformers (vocab 151936, hidden 4096, ... rope_theta 10000, eps 1e-6, bias on). */
vox_qwen2_config vox_qwen2_config_default(void);
/* From an HF config.json (io/hf_config.h), HF key names. Required: vocab_size, hidden_size, num_hidden_layers,
 * num_attention_heads, intermediate_size; the rest default as in Qwen2Config. Refused with a message naming the
 * key: a model_type other than "qwen2", hidden_act other than "silu", rope_scaling, use_sliding_window true,
 * a head_dim other than hidden_size / num_attention_heads. */
vox_status vox_qwen2_config_from_hf(const vox_hf_config *hf, vox_qwen2_config *out);

typedef struct vox_qwen2 {
  vox_qwen2_config cfg;
  char prefix[64];      /* prepended verbatim to every parameter name ("" or e.g. "llm.") */
  vox_embedding embed;  /* prefix + "model.embed_tokens" */
  vox_block *layers;    /* owned array of num_hidden_layers: prefix + "model.layers.N" */
  vox_rms_norm norm;    /* prefix + "model.norm" */
  vox_tensor *lm_head;  /* borrowed: prefix + "lm_head.weight", or the embedding table when tied */
  int param_first, param_count; /* this model's entries in the registry (loading tells them from others') */
} vox_qwen2;

/* Registers every parameter into reg (names prefix + HF name; "lm_head.weight" absent when tied) and initialises
 * them like HF _init_weights: N(0, initializer_range) for linears and the embedding, zero biases, unit norms. */
vox_status vox_qwen2_init(vox_qwen2 *m, vox_params *reg, const char *prefix, const vox_qwen2_config *cfg,
                          vox_rng *rng);
/* Frees what the struct owns (the layer array); parameters belong to the registry. */
void vox_qwen2_release(vox_qwen2 *m);

/* ids i32 [B, T] -> embeddings [B, T, hidden]. */
vox_status vox_qwen2_embed(const vox_qwen2 *m, vox_tensor *ids, vox_tensor **out);

/* embeds [B, T, hidden] -> hidden states after the final norm [B, T, hidden].
 * positions: i32 [T] or [B, T]; NULL means start..start+T-1 with start the caches' length (0 without caches).
 * kv_lens: i32 [B], valid keys per row for right-padded batches (with caches: cached + new keys), or NULL.
 * Attention is causal. caches: NULL, or one per layer (vox_qwen2_caches_new); decoding with caches must run with
 * autograd off (vox_qwen2_decode does that). rng is needed only for dropout while training. */
vox_status vox_qwen2_forward_embeds(vox_qwen2 *m, vox_tensor *embeds, vox_tensor *positions, vox_tensor *kv_lens,
                                    vox_kv_cache *caches, bool training, vox_rng *rng, vox_tensor **hidden);
/* hidden [..., hidden] -> logits [..., vocab] through lm_head (no bias). */
vox_status vox_qwen2_logits(const vox_qwen2 *m, vox_tensor *hidden, vox_tensor **logits);

/* Convenience: ids i32 [B, T] -> logits [B, T, V]; when targets (i32 [B, T], aligned with the logits, i.e. already
 * shifted by the caller; -100 = ignore) and loss are given, *loss is the mean cross-entropy. logits may be NULL:
 * then the head runs only on the rows that have a target. */
vox_status vox_qwen2_forward(vox_qwen2 *m, vox_tensor *ids, vox_tensor *targets, bool training, vox_rng *rng,
                             vox_tensor **logits, vox_tensor **loss);
/* Incremental decoding without autograd: ids [B, T] continuing the caches -> logits [B, T, V]. */
vox_status vox_qwen2_decode(vox_qwen2 *m, vox_tensor *ids, vox_kv_cache *caches, vox_tensor **logits);
/* One KV cache per layer for `batch` rows and `capacity` positions, on the device of the model's weights. */
vox_status vox_qwen2_caches_new(const vox_qwen2 *m, int batch, int64_t capacity, vox_kv_cache **caches);
void vox_qwen2_caches_free(const vox_qwen2 *m, vox_kv_cache *caches); /* NULL is fine */

/* Reads hf_dir/config.json, builds the model under prefix in reg (vox_qwen2_init) and loads the weights
 * (model.safetensors or a sharded index) into it, all-or-nothing: a missing, unexpected or mis-shaped tensor is an
 * error naming it (config and weights disagreeing shows up so). When tied, a stored lm_head.weight is ignored;
 * rotary inv_freq buffers of old checkpoints are ignored too. On failure m is released, but the parameters it
 * registered stay in reg (unloaded): discard that registry. */
vox_status vox_qwen2_load_hf(vox_qwen2 *m, vox_params *reg, const char *prefix, const char *hf_dir);
/* Writes dir/config.json (model_type "qwen2", HF key names) and the model's parameters (names without prefix) as
 * model.safetensors, or shards of at most shard_bytes (0 = one file) with an index; on_disk VOX_F32 or VOX_BF16.
 * Refused when other parameters of reg share the model's prefix (they would be saved too). */
vox_status vox_qwen2_save_hf(const vox_qwen2 *m, const vox_params *reg, const char *dir, vox_dtype on_disk,
                             size_t shard_bytes);

#endif
