/* Optimizers: AdamW (decoupled weight decay) and SGD (momentum, nesterov) over parameter groups with their own
 * lr and weight decay, global-norm clipping, gradient accumulation and named state for checkpoints. */
#ifndef VOX_OPTIM_OPTIM_H
#define VOX_OPTIM_OPTIM_H

#include <stdbool.h>
#include <stdint.h>

#include "core/tensor.h"
#include "nn/module.h"

typedef enum vox_optim_kind { VOX_OPTIM_ADAMW = 0, VOX_OPTIM_SGD } vox_optim_kind;

typedef struct vox_optim_config {
  vox_optim_kind kind;
  float lr, weight_decay; /* defaults of groups that do not set their own */
  float beta1, beta2, eps; /* AdamW */
  float momentum;          /* SGD (0: plain SGD, no state) */
  bool nesterov;           /* SGD */
} vox_optim_config;

/* PyTorch's defaults: AdamW betas (0.9, 0.999), eps 1e-8; SGD with the given momentum. */
vox_optim_config vox_optim_adamw_config(float lr, float weight_decay);
vox_optim_config vox_optim_sgd_config(float lr, float momentum, bool nesterov, float weight_decay);

#define VOX_OPTIM_GROUP_NAME_MAX 64
typedef struct vox_optim_group {
  char name[VOX_OPTIM_GROUP_NAME_MAX];
  float lr, weight_decay; /* base values; the schedule's factor multiplies lr */
} vox_optim_group;

typedef struct vox_optim_entry {
  char name[VOX_PARAM_NAME_MAX];
  vox_tensor *param;    /* retained leaf */
  int group;
  bool decay;           /* false for norms, biases and other 1-D tensors (vox_optim_default_decay) */
  vox_tensor *state[2]; /* AdamW: m, v; SGD: momentum (or none); zeros, owned */
} vox_optim_entry;

typedef struct vox_optim {
  vox_optim_config cfg;
  vox_optim_group *groups;
  int n_groups;
  vox_optim_entry *entries;
  int n_entries, cap_entries;
  int64_t step;      /* completed optimizer steps (AdamW bias correction uses step + 1) */
  float lr_factor;   /* set by the schedule each step; 1 by default */
  float grad_scale;  /* multiplies gradients inside the step kernel: 1/accum_steps for accumulation */
} vox_optim;

vox_status vox_optim_new(const vox_optim_config *cfg, vox_optim **out);
void vox_optim_free(vox_optim *opt); /* NULL is fine */

/* A new group; lr or weight_decay < 0 take the config's defaults. Its index goes to *group (may be NULL). */
vox_status vox_optim_add_group(vox_optim *opt, const char *name, float lr, float weight_decay, int *group);
/* Whether a parameter gets weight decay by default: no for tensors of fewer than 2 dims, names ending in
 * ".bias" and names containing "norm" (RMSNorm/LayerNorm weights, whatever their shape). */
bool vox_optim_default_decay(const char *name, const vox_tensor *t);
/* Adds one parameter (retained) to a group; state is allocated zeroed on its device. */
vox_status vox_optim_add_param(vox_optim *opt, int group, const char *name, vox_tensor *param);
/* Adds every parameter of reg that matches glob, requires grad and is not yet in the optimizer; *n (may be
 * NULL) gets how many. NULL glob means "*". */
vox_status vox_optim_add_params(vox_optim *opt, int group, const vox_params *reg, const char *glob, int *n);

/* Effective learning rate of a group (base lr times the schedule factor). */
float vox_optim_group_lr(const vox_optim *opt, int group);
void vox_optim_set_lr_factor(vox_optim *opt, float factor);
/* Gradients are multiplied by this inside the step (1/accum_steps after accumulating that many backwards). */
void vox_optim_set_grad_scale(vox_optim *opt, float scale);

/* L2 norm over all gradients of the optimizer's parameters, times grad_scale (the gradient the step sees). */
vox_status vox_optim_grad_norm(vox_optim *opt, double *norm);
/* Computes that norm; when max_norm > 0 and the norm exceeds it, scales every gradient in place by
 * max_norm / (norm + 1e-6) (PyTorch's clip_grad_norm_). *norm gets the norm before clipping. */
vox_status vox_optim_clip_grad_norm(vox_optim *opt, double max_norm, double *norm);

/* One update of every parameter that has a gradient (those without one are skipped, as in PyTorch), with one
 * fused kernel per tensor (AdamW: one multi-tensor kernel for all when the device has it); then step++. */
vox_status vox_optim_step(vox_optim *opt);
/* ---- sharded optimizer support (dist/zero.c keeps only its shard of the state) ---- */
/* Number of state slots per parameter (AdamW 2: "m", "v"; SGD 1 "momentum" or 0) and the name of slot k. */
int vox_optim_slot_count(const vox_optim *opt);
const char *vox_optim_slot_name(const vox_optim *opt, int k);
/* The update vox_optim_step applies, restricted to elements [start, start + count) of entry `entry`'s flattened
 * (contiguous) parameter: `grad` and each state[k] are the matching count-element slices (any contiguous 1-D
 * tensors on the parameter's device). Uses the entry's group lr/decay, lr_factor, grad_scale and step + 1 for
 * bias correction; does not advance opt->step (the caller does once per step). */
vox_status vox_optim_step_range(vox_optim *opt, int entry, int64_t start, int64_t count, vox_tensor *grad,
                                vox_tensor *const *state);
/* Frees every entry's state tensors (a sharded optimizer holds its own slices instead); vox_optim_step then fails
 * and vox_optim_state_at reports NULL tensors. */
void vox_optim_drop_state(vox_optim *opt);

/* Drops every parameter's gradient (they are re-created by the next backward). */
void vox_optim_zero_grad(vox_optim *opt);

/* ---- named state, for checkpoints: "<param name>" x slot "m"/"v" (AdamW) or "momentum" (SGD) ---- */
int vox_optim_state_count(const vox_optim *opt);
/* The i-th state tensor (borrowed) with its parameter name and slot name. */
vox_status vox_optim_state_at(const vox_optim *opt, int i, const char **param_name, const char **slot,
                              vox_tensor **t);
vox_status vox_optim_state_find(const vox_optim *opt, const char *param_name, const char *slot, vox_tensor **t);

#endif
