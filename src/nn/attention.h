/* nn multi-head attention with GQA: q/k/v/o projections (optional biases, as Qwen2's q/k/v or Whisper's), RoPE
 * on q and k, masks through vox_attention_mask, and a KV cache for incremental decoding. */
#ifndef VOX_NN_ATTENTION_H
#define VOX_NN_ATTENTION_H

#include <stdbool.h>

#include "core/ops.h"
#include "nn/linear.h"

typedef struct vox_mha_config {
  int d_model, n_heads, n_kv_heads; /* n_kv_heads 0 means n_heads (no GQA) */
  int head_dim;                     /* 0 means d_model / n_heads */
  bool q_bias, k_bias, v_bias, o_bias;
  bool rope;                        /* rotate q and k (HF rotate_half convention) */
  float rope_theta;                 /* 0 means 10000 */
  int rotary_dim;                   /* 0 means head_dim */
  const char *o_name;               /* output projection's name; NULL means "o_proj" ("out_proj" for Whisper) */
} vox_mha_config;

typedef struct vox_mha {
  vox_mha_config cfg;
  vox_linear q_proj, k_proj, v_proj, o_proj;
} vox_mha;

/* Keys and values of the positions seen so far, [B, Hkv, capacity, D], for decoding without recompute. */
typedef struct vox_kv_cache {
  vox_tensor *k, *v; /* owned */
  int64_t len, capacity;
} vox_kv_cache;

/* Registers "<name>.q_proj.weight", ... and checks the head arithmetic. */
vox_status vox_mha_init(vox_mha *m, vox_params *reg, const char *name, const vox_mha_config *cfg, vox_rng *rng);
/* x [B, T, d_model]; positions i32 [B, T] or [T] (needed when cfg.rope); mask may be NULL (full attention).
 * With a cache, keys/values are appended to it, attention covers all cached positions, the mask's
 * causal_offset is shifted by the cached length, and autograd must be off (decoding is inference). */
vox_status vox_mha_forward(const vox_mha *m, vox_tensor *x, vox_tensor *positions, const vox_attention_mask *mask,
                           vox_kv_cache *cache, vox_tensor **out);

vox_status vox_kv_cache_init(vox_kv_cache *c, const vox_mha *m, int batch, int64_t capacity, vox_device device);
void vox_kv_cache_reset(vox_kv_cache *c);
void vox_kv_cache_free(vox_kv_cache *c); /* releases the tensors; the struct is the caller's */

#endif
