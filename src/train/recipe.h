/* Training recipes (module prefix vox_recipe_): the schema of a `vox train` YAML file checked in one place and read
 * into plain structs. Every unknown key, wrong type or missing required key is an error naming file:line and the
 * key path; docs/recipes.md documents each key. The tree itself (vox_config) stays the source of truth: the
 * structs only hold what it says, and tasks read their own keys from the stage node. */
#ifndef VOX_TRAIN_RECIPE_H
#define VOX_TRAIN_RECIPE_H

#include <stdbool.h>
#include <stdint.h>

#include "core/dtype.h"
#include "io/config.h"
#include "optim/optim.h"
#include "optim/schedule.h"

#define VOX_RECIPE_MAX_GLOBS 32
#define VOX_RECIPE_MAX_INIT 16
#define VOX_RECIPE_MAX_GROUPS 8

typedef struct vox_recipe_init {
  const char *part;   /* "llm", "audio_encoder", ... or "all" */
  const char *source; /* "hf:DIR", "ckpt:PATH" or "previous" */
  const vox_config *node;
} vox_recipe_init;

typedef struct vox_recipe_group {
  const char *name;
  const char *params; /* glob over parameter names */
  double lr, weight_decay; /* < 0: the optimizer's */
  const vox_config *node;
} vox_recipe_group;

typedef struct vox_recipe_stage {
  const vox_config *node;
  const char *name, *task;
  int n_init;
  vox_recipe_init init[VOX_RECIPE_MAX_INIT];
  int n_trainable, n_frozen;
  const vox_config *trainable[VOX_RECIPE_MAX_GLOBS], *frozen[VOX_RECIPE_MAX_GLOBS]; /* scalar nodes (for where) */
  const vox_config *lora; /* NULL when absent */
  const vox_config *lora_targets[VOX_RECIPE_MAX_GLOBS]; /* scalar nodes: Linear name globs */
  int n_lora_targets;
  int lora_rank;          /* 8 */
  float lora_alpha;       /* 2 * rank */
  float lora_dropout;     /* 0 */
  vox_optim_config optim;
  int n_groups;
  vox_recipe_group groups[VOX_RECIPE_MAX_GROUPS];
  vox_schedule schedule;
  int64_t steps;
  int64_t grad_accum;
  double clip_grad_norm; /* 0: off */
  bool activation_checkpointing;
  int64_t eval_every, eval_max_batches; /* 0: only at the stage's end / all batches */
  bool eval_at_start;                   /* also evaluate before the first step (the stage's baseline) */
  const vox_config *eval;                /* NULL when absent */
  int64_t ckpt_every, keep_last;         /* 0: only at the stage's end / keep all */
  bool save_all;                         /* checkpoint.save: all (else trainable) */
  int64_t max_bad_steps;
  int64_t log_every;
} vox_recipe_stage;

typedef enum vox_recipe_resume { VOX_RESUME_AUTO = 0, VOX_RESUME_NEVER } vox_recipe_resume;

typedef struct vox_recipe {
  const vox_config *root; /* borrowed */
  const char *run_dir;
  uint64_t seed;
  vox_device device;
  const char *precision; /* "f32", or "bf16" (GPU mixed precision: bf16 GEMM and attention operands) */
  const vox_config *model;
  const char *tokenizer; /* path of tokenizer.json, resolved against the recipe file's folder; NULL if absent */
  char *tokenizer_owned;
  vox_recipe_resume resume;
  int n_stages;
  vox_recipe_stage *stages;
  /* test hooks (debug:), documented in docs/recipes.md */
  int n_inject_nan;
  int64_t inject_nan[32];       /* global optimizer steps (1-based) whose loss is multiplied by NaN */
  int64_t hang_in_ckpt_at_step; /* the checkpoint of this step stops before its commit (pause()) */
} vox_recipe;

/* Checks the whole recipe against the schema and fills *out (pointers borrow from root). Tasks named by stages
 * must be registered; their extra data/eval keys are accepted. */
vox_status vox_recipe_parse(const vox_config *root, vox_recipe *out);
/* The device a recipe's `device` key resolves to (auto: CUDA when the build has it and a device is present), without
 * validating the key: for choosing the communicator before the recipe is parsed; vox_recipe_parse reports errors. */
vox_device vox_recipe_device(const vox_config *root);
void vox_recipe_clear(vox_recipe *r);

#endif
