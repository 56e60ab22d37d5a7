/* Training checkpoints (module prefix vox_train_ckpt_) over io/checkpoint.h: what a run stores (parameters —
 * all, or only the trainable ones plus references to the sources of the rest —, optimizer state, step, stage,
 * RNG, data position, resolved config, version), how a model is rebuilt from one, and finding the newest valid
 * checkpoint of a run directory. Layout: docs/file-formats.md. */
#ifndef VOX_TRAIN_CKPT_H
#define VOX_TRAIN_CKPT_H

#include <stdbool.h>
#include <stdint.h>

#include "core/rng.h"
#include "optim/optim.h"
#include "train/task.h"

/* The trainer's state besides parameters and optimizer moments. */
typedef struct vox_train_state {
  int stage;          /* index into the recipe's stages */
  int64_t step;       /* completed optimizer steps of this stage (bad steps included) */
  int64_t bad_in_row; /* consecutive non-finite steps so far */
  int64_t n_bad;      /* non-finite steps of this stage in total */
  vox_rng rng;        /* dropout/augmentation stream of the stage */
  vox_task_pos pos;   /* the task's data position */
  int64_t world_size; /* data-parallel ranks when it was saved (pos is counted per rank); 1 in older files */
} vox_train_state;

typedef struct vox_train_ckpt_info {
  const char *config_yaml; /* the resolved recipe */
  const char *stage_name;
  uint64_t seed;           /* the recipe seed the random initialisation came from */
  const char *sources;     /* "part\tsource\n" lines applied after random init, in order (hf:DIR, ckpt:PATH) */
  bool save_all;           /* every parameter, or only those that require grad */
  int64_t hang_before_commit; /* test hook: when == state.step, pause() before the commit (never returns) */
  const int32_t *vocab_subset; /* the LLM's kept token ids (model.llm.vocab_subset), stored as /state/vocab_subset */
  int32_t n_vocab_subset;      /* 0: the whole vocabulary (nothing stored) */
} vox_train_ckpt_info;

/* Writes path atomically. */
vox_status vox_train_ckpt_save(const char *path, const vox_train_ckpt_info *info, const vox_params *params,
                               const vox_optim *opt, const vox_train_state *state);

/* Loads parameters into params: first the checkpoint's sources (recursively), then its stored tensors. Only
 * parameters whose names start with `prefix` are touched ("" = all). Every stored parameter must exist in params
 * with the same shape, and a checkpoint saved with save: all must hold every parameter under prefix; errors name
 * the file and the tensor. load_hf(part, dir, ctx) loads an hf: source (may be NULL: then hf: sources fail). */
typedef vox_status (*vox_train_hf_loader)(void *ctx, const char *part, const char *dir);
typedef const char *(*vox_train_part_prefix)(void *ctx, const char *part);
typedef struct vox_train_sources {
  vox_train_hf_loader load_hf;
  vox_train_part_prefix part_prefix; /* "llm" -> "llm."; NULL return: unknown part */
  void *ctx;
  /* The model's LLM vocabulary subset (n 0: whole vocabulary): a checkpoint whose embedding rows stand for other
   * tokens is refused even when the shapes agree. */
  const int32_t *vocab_subset;
  int32_t n_vocab_subset;
} vox_train_sources;
vox_status vox_train_ckpt_load_params(const char *path, vox_params *params, const char *prefix,
                                      const vox_train_sources *src);
/* Applies one source line ("hf:DIR" or "ckpt:PATH") to a part ("all" = every parameter). */
vox_status vox_train_apply_source(vox_params *params, const char *part, const char *source,
                                  const vox_train_sources *src);

/* Restores optimizer moments/step and the trainer state. The optimizer must hold the same parameters. */
vox_status vox_train_ckpt_load_state(const char *path, vox_optim *opt, vox_train_state *state);

/* "<run_dir>/checkpoints/s<stage>-step<step>.h5" into buf. */
const char *vox_train_ckpt_path(char *buf, size_t cap, const char *run_dir, int stage, int64_t step);
/* The newest checkpoint of run_dir that opens and holds its metadata; corrupt or truncated newer ones are
 * skipped with a warning. *path NULL (and VOX_OK) when there is none. Caller frees *path. */
vox_status vox_train_ckpt_find_latest(const char *run_dir, char **path, int *stage, int64_t *step);
/* Deletes periodic checkpoints of `stage` beyond the newest keep_last (keep_last 0: keep all); never the one at
 * step `protect`. Stale temporary files of interrupted writes are removed too. */
void vox_train_ckpt_prune(const char *run_dir, int stage, int64_t keep_last, int64_t protect);

#endif
