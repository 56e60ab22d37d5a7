/* Memory estimate of a LoRA SFT step of the speech-LLM composite (module prefix vox_model_memory_), computed from
 * the model config alone, for `vox model-info` and docs/models.md. The accounting is stated with each field. */
#ifndef VOX_MODELS_MODEL_MEMORY_H
#define VOX_MODELS_MODEL_MEMORY_H

#include <stdint.h>

#include "models/model_config.h"

typedef struct vox_sft_memory_opts {
  int batch;            /* samples per step */
  int seq;              /* LLM positions per sample (text + spliced audio) */
  int labels;           /* label positions per sample (the lm_head runs on these rows only) */
  int frames;           /* encoder output frames per sample (the projector's input) */
  int lora_rank;        /* on q, k, v, o, gate, up, down of every LLM layer */
} vox_sft_memory_opts;

typedef struct vox_sft_memory {
  int64_t params_total, params_trainable, params_lora;
  /* bytes */
  double frozen_weights;     /* frozen parameters in bf16: 2 B each */
  double trainable_state;    /* trainable: bf16 compute copy 2 + f32 master 4 + f32 grad 4 + AdamW m, v 8 = 18 B */
  double act_llm_full;       /* LLM activations kept for backward without checkpointing */
  double act_llm_ckpt;       /* with per-block checkpointing: block inputs + one block's recompute */
  double act_head;           /* lm_head on label rows: bf16 logits + f32 logit gradient in backward */
  double act_projector;      /* the trainable input projector's activations (the frozen encoder keeps none) */
  double total_full, total_ckpt;
} vox_sft_memory;

/* LLM activations per token per layer, in elements: x, normed x, q/k/v, rotated q/k, attention output, residual,
 * normed residual, gate/up/SwiGLU outputs (7H + 3kv + 3I), plus the LoRA dropout copies of each adapter's input
 * (q, k, v, o, gate, up: 6H; down: I) and the rank-r activations (14r). bf16: 2 bytes per element. */
vox_status vox_model_memory_sft(const vox_model_config *cfg, const vox_sft_memory_opts *opts, vox_sft_memory *out);

#endif
