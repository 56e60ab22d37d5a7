/* The training loop (module prefix vox_train_): runs a recipe's stages one after another — build the model, apply
 * each stage's init, freeze, optimizer, then steps of grad_accum micro-batches with clipping, NaN/Inf skipping,
 * schedule, eval and checkpoints — and resumes exactly from the newest valid checkpoint. SIGTERM/SIGUSR1 ask for
 * a checkpoint at the next step boundary and a clean stop. */
#ifndef VOX_TRAIN_TRAINER_H
#define VOX_TRAIN_TRAINER_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "io/config.h"
#include "optim/optim.h"
#include "train/task.h"

/* The seam data parallelism (src/dist/) plugs into. NULL (or world_size 1) means one process. */
typedef struct vox_train_dist {
  int rank, world_size;
  void *comm; /* the communicator, passed back to the hooks */
  /* After the micro-batches' backward, before clipping and the optimizer step: make every rank's gradients the
   * average over ranks (the optimizer's parameters that have a gradient). */
  vox_status (*allreduce_grads)(void *comm, vox_optim *opt);
  /* Sums n doubles in place across ranks (loss, token counts, non-finite flags), so every rank takes the same
   * skip / stop decisions. */
  vox_status (*allreduce_sum)(void *comm, double *v, int n);
  /* Optional hooks (NULL: not used), implemented by dist/train_dist.c. */
  /* The stage's optimizer was built (and its state restored on resume) / is about to be freed: data parallelism
   * attaches to it (gradient hooks, ZeRO shards). Collective. */
  vox_status (*attach)(void *comm, vox_optim *opt);
  void (*detach)(void *comm, vox_optim *opt);
  /* Before micro-batch k (0-based) of accum: only the last one's backward exchanges gradients (overlapped). */
  void (*begin_micro_batch)(void *comm, int64_t k, int64_t accum);
  /* Replace vox_optim_clip_grad_norm / vox_optim_step (a sharded optimizer). Collective. */
  vox_status (*clip_grad_norm)(void *comm, vox_optim *opt, double max_norm, double *norm);
  vox_status (*optim_step)(void *comm, vox_optim *opt);
  /* Around every checkpoint write, on every rank: complete the optimizer state on rank 0 / shard it again. */
  vox_status (*before_checkpoint)(void *comm, vox_optim *opt);
  vox_status (*after_checkpoint)(void *comm, vox_optim *opt);
  /* Every rank resumes from rank 0's choice of checkpoint (path, stage, step). Collective. */
  vox_status (*agree_resume)(void *comm, char **path, int *stage, int64_t *step);
  /* A checkpoint written at world size `saved_world` resumes at this world size: translate the data position. */
  vox_status (*translate_position)(void *comm, int64_t saved_world, vox_task_pos *pos);
} vox_train_dist;

typedef struct vox_train_opts {
  const vox_train_dist *dist; /* NULL: one process */
  int64_t stop_after;         /* checkpoint and stop after this many steps in this invocation (0: no limit) */
  FILE *out;                  /* progress output (stdout when NULL); only rank 0 prints */
} vox_train_opts;

typedef enum vox_train_outcome {
  VOX_TRAIN_COMPLETE = 0, /* every stage finished (or already had) */
  VOX_TRAIN_STOPPED       /* stopped on request (signal, stop_after) after writing a checkpoint */
} vox_train_outcome;

/* Runs the recipe `root` (resolved: extends, overrides, references). */
vox_status vox_train_run(const vox_config *root, const vox_train_opts *opts, vox_train_outcome *outcome);

/* SIGTERM and SIGUSR1 call vox_train_request_stop. */
vox_status vox_train_install_signal_handlers(void);
/* Async-signal-safe: the loop checkpoints at the next step boundary and returns VOX_TRAIN_STOPPED. */
void vox_train_request_stop(void);

#endif
