/* LoRA (Hu et al. 2021, as PEFT implements it) on any nn Linear found by name glob: y = base(x) +
 * dropout(x) A^T B^T * alpha/r, with A [r, in] Kaiming-uniform and B [out, r] zeros; merging and PEFT export. */
#ifndef VOX_NN_LORA_H
#define VOX_NN_LORA_H

#include <stdbool.h>
#include <stdint.h>

#include "nn/linear.h"

/* One adapter, attached to a Linear (vox_linear.lora) and owned by the registry. Its tensors are registry
 * parameters named "<linear>.lora_A.weight" [r, in] and "<linear>.lora_B.weight" [out, r] (PEFT's names without
 * the adapter name, i.e. as PEFT writes them to adapter_model.safetensors). */
typedef struct vox_lora {
  char name[VOX_PARAM_NAME_MAX]; /* the wrapped Linear's name */
  int rank;
  float alpha, scale, dropout;   /* scale = alpha / rank */
  vox_tensor *A, *B;             /* borrowed from the registry */
  uint64_t id;                   /* index among the registry's adapters: the dropout stream */
  bool training;                 /* set by vox_lora_set_mode: dropout active */
  uint64_t seed;                 /* set by vox_lora_set_mode: this step's dropout seed */
} vox_lora;

/* Wraps every registered Linear whose name matches one of `globs` (NULL-terminated, fnmatch with '*' crossing
 * dots, e.g. "llm.model.layers.*.self_attn.[qkvo]_proj"). A ~ U(+-1/sqrt(in)) from rng (PEFT's
 * kaiming_uniform_(a=sqrt(5))), B = 0, so the wrapped model computes exactly what it did before. The wrapped
 * Linears' weight and bias are frozen (requires_grad false); the adapters require grad. *n (may be NULL) gets
 * the number wrapped. Errors: a glob that matches no Linear, a Linear that already has an adapter, rank < 1,
 * dropout outside [0, 1). Nothing is changed when an error is returned. */
vox_status vox_lora_apply(vox_params *reg, const char *const *globs, int rank, float alpha, float dropout,
                          vox_rng *rng, int *n);

/* LoRA dropout: active only while training. Its mask depends on (seed, adapter id) alone, never on call order,
 * so an activation-checkpointed recompute sees the same mask; pass a new seed every step (e.g. from the
 * trainer's rng). An adapter used twice within one step reuses its mask for same-shaped inputs. */
void vox_lora_set_mode(vox_params *reg, bool training, uint64_t seed);

/* The forward of a Linear with an adapter (called by vox_linear_forward). */
vox_status vox_lora_forward(const vox_linear *l, vox_tensor *x, vox_tensor **out);

/* Merges every adapter into its base weight, W += (alpha/r) B A (computed in f32), then removes the adapter:
 * lora_A/lora_B leave the registry (the tensors are released) and the Linear computes W x + b again. The base
 * weight's requires_grad is left as apply set it (frozen). *n (may be NULL) gets the number merged. */
vox_status vox_lora_merge(vox_params *reg, int *n);

/* Adapters attached in reg, in registration order of their Linears; *n gets the count. The array is malloc'd
 * (caller frees it), the adapters are borrowed. */
vox_status vox_lora_list(const vox_params *reg, vox_lora ***out, int *n);

/* Writes a PEFT adapter directory: dir/adapter_model.safetensors with "base_model.model.<name>.lora_A.weight" /
 * ".lora_B.weight" for every adapter whose Linear's name starts with `prefix` (stripped, e.g. "llm."), and
 * dir/adapter_config.json (peft_type LORA, task_type CAUSAL_LM, r, lora_alpha, lora_dropout, target_modules =
 * the last name component of every wrapped Linear, base_model_name_or_path). on_disk: VOX_F32 or VOX_BF16.
 * All adapters must share one rank/alpha/dropout (PEFT's config holds one). */
vox_status vox_lora_save_peft(const vox_params *reg, const char *prefix, const char *dir, const char *base_model,
                              vox_dtype on_disk);

#endif
