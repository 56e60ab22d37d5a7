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
