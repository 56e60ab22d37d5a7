/* Training tasks: what a stage trains (next-token LM, speech-to-text, ...) as a vtable registered by name, so the
 * trainer's loop never knows a task's data or loss. Owns the task registry and the handle tasks get on the model.
 *
 * Life of a task inside one stage (src/train/trainer.c):
 *   open(ctx)            -> state: read the stage's `data`/`eval` nodes, open datasets, check the model fits
 *   repeat per optimizer step, grad_accum times:
 *     train_batch(state) -> a scalar loss tensor (mean over the micro-batch's target units, requires grad)
 *                           and counts; the trainer calls vox_backward on it and releases it
 *   every eval.every steps and at the stage's end:
 *     eval(state)        -> named metrics (loss, ppl, wer, ...), with autograd off
 *   at checkpoints:
 *     get_position       -> the data position, stored in the checkpoint (/state/loader)
 *   on resume:
 *     seek(position)     -> continue with exactly the batches an uninterrupted run would have seen
 *   close(state)
 *
 * Rules every task follows (they make resume bit-exact and data parallelism correct):
 *   - batches depend only on (recipe, seed, epoch, position, rank, world_size), never on time or threads;
 *   - every random draw of a forward (dropout, SpecAugment, ...) comes from the `rng` the trainer passes, whose
 *     state the checkpoint stores;
 *   - rank r of W takes its own share of each epoch (ctx->rank, ctx->world_size) and every rank gets the same
 *     number of batches, so all-reduces line up;
 *   - errors name the manifest file:line or the recipe file:line (vox_config_where) and what was expected.
 *
 * Adding a task: write src/train/task_<name>.c with a static const vox_task_vtable and register it with
 * VOX_TASK_REGISTER(vtable); the recipe's `stages[i].task: <name>` selects it. */
#ifndef VOX_TRAIN_TASK_H
#define VOX_TRAIN_TASK_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "core/rng.h"
#include "core/tensor.h"
#include "io/config.h"
#include "nn/module.h"
#include "text/tokenizer.h"

struct vox_speech_llm; /* models/speech_llm.h */
struct vox_qwen2;      /* models/qwen2.h */

/* The model a stage trains, as tasks see it. Built by the trainer from the recipe's `model:` node
 * (src/train/train_model.c); tasks borrow it. */
typedef struct vox_train_model {
  vox_params *params;          /* every parameter by full name ("llm.model.layers.0..."); the optimizer's source */
  struct vox_speech_llm *slm;  /* the composite model (audio encoder, projectors, LLM, ...); NULL for a text-only
                                  model */
  struct vox_qwen2 *llm;       /* the text LLM (borrowed from slm or owned by the trainer's model) */
  const char *llm_prefix;      /* the LLM's parameter prefix ("llm.") */
} vox_train_model;

/* What a task is opened with. Everything is borrowed and outlives the task. */
typedef struct vox_task_ctx {
  const vox_config *recipe;       /* the resolved recipe (root) */
  const vox_config *stage;        /* this stage's node, stages.<stage_index> */
  int stage_index;
  const char *run_dir;            /* where the run writes (tasks may write eval samples under it) */
  vox_train_model *model;
  const vox_tokenizer *tokenizer; /* from the recipe's `tokenizer` */
  uint64_t seed;                  /* the recipe's seed (tasks derive data seeds from it) */
  int rank, world_size;           /* data-parallel position (0, 1 on one process) */
  vox_device device;              /* where batches go */
} vox_task_ctx;

/* What one micro-batch held, for throughput and for weighting. */
typedef struct vox_task_counts {
  int64_t tokens;  /* target tokens that carried loss */
  int64_t frames;  /* input feature frames (0 for text tasks) */
  int64_t samples; /* manifest samples */
} vox_task_counts;

#define VOX_TASK_METRIC_NAME_MAX 32
#define VOX_TASK_MAX_METRICS 16
typedef struct vox_task_metrics {
  int n;
  char name[VOX_TASK_MAX_METRICS][VOX_TASK_METRIC_NAME_MAX]; /* "loss", "ppl", "wer", ... */
  double value[VOX_TASK_MAX_METRICS];
} vox_task_metrics;
/* Appends one metric (VOX_ERR_INVALID when full or the name is too long). */
vox_status vox_task_metrics_add(vox_task_metrics *m, const char *name, double value);

/* Eval hypotheses, for reading what a model says: <run_dir>/eval_<stage index>_hyp.jsonl, rewritten by each eval.
 * Open returns NULL off rank 0, without a run_dir, or when the file cannot be created (the eval goes on); each
 * line is {"key", "kind" ("asr", "qa", ...), "ref", "hyp"}. */
FILE *vox_task_hyp_log_open(const vox_task_ctx *ctx);
void vox_task_hyp_log(FILE *log, const char *key, const char *kind, const char *ref, const char *hyp); /* NULL log: no-op */

/* A task's data position: a few integers (e.g. epoch, batch of each dataset), stored verbatim in checkpoints. */
#define VOX_TASK_POS_MAX 16
typedef struct vox_task_pos {
  int n;
  int64_t v[VOX_TASK_POS_MAX];
} vox_task_pos;

typedef struct vox_task_vtable {
  const char *name; /* the recipe's `task:` value */
  const char *summary;
  /* Keys the task accepts under the stage's `data` and `eval` nodes besides the trainer's own (NULL-terminated,
   * may be NULL); the trainer rejects anything else with a suggestion. */
  const char *const *data_keys;
  const char *const *eval_keys;
  /* Keys the task accepts under the stage's `loss` node (loss weights); NULL: the stage may not have one. */
  const char *const *loss_keys;

  vox_status (*open)(const vox_task_ctx *ctx, void **state);
  /* Takes the next training micro-batch (epochs roll over by themselves) and runs the forward in training
   * mode: *loss is a scalar f32 that requires grad (mean over this micro-batch's target units); the caller
   * owns it. rng feeds dropout and augmentation. */
  vox_status (*train_batch)(void *state, vox_rng *rng, vox_tensor **loss, vox_task_counts *counts);
  /* Evaluates on the stage's eval data with autograd off: at most max_batches batches (<= 0: all), the same
   * batches every call. eval_node is the stage's `eval` node (decode options etc.; may be NULL). */
  vox_status (*eval)(void *state, const vox_config *eval_node, int64_t max_batches, vox_task_metrics *out);
  /* The position of the next training batch / move there (exact resume). */
  vox_status (*get_position)(void *state, vox_task_pos *pos);
  vox_status (*seek)(void *state, const vox_task_pos *pos);
  void (*close)(void *state); /* NULL state is fine */
} vox_task_vtable;

/* Registry. Registration happens at load time (VOX_TASK_REGISTER); lookups fail with the known names listed. */
void vox_task_register(const vox_task_vtable *vt);
vox_status vox_task_find(const char *name, const vox_task_vtable **out);
int vox_task_count(void);
const vox_task_vtable *vox_task_at(int i);
#define VOX_TASK_REGISTER(vt) \
  __attribute__((constructor)) static void vox_task_register_##vt(void) { vox_task_register(&vt); }

/* ---- helpers tasks share ---- */
/* The manifest path of the recipe's dataset `name` (data.<name>.manifest, resolved against the recipe file's
 * folder when relative); *node (may be NULL) gets the dataset's node for its other options. Errors name the
 * referring node's file:line. The returned path is malloc'ed. */
vox_status vox_task_dataset(const vox_task_ctx *ctx, const vox_config *ref, const char *name, char **manifest,
                            const vox_config **node);
/* The stage's training dataset names (stage.data.train: a name or a list) into a malloc'ed array of borrowed
 * strings. */
vox_status vox_task_train_sets(const vox_task_ctx *ctx, const char ***names, int *n);

#endif
