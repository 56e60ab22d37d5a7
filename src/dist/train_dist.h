/* Data parallelism for the trainer (module prefix vox_train_dist_): the communicator chosen from the launcher's
 * environment, the recipe's `distributed:` options and the hooks of train/trainer.h's vox_train_dist seam (DDP or
 * ZeRO-1 attached to each stage's optimizer, overlapped gradient exchange, checkpoint and resume agreement, data
 * position across world sizes).
 *
 * Recipe keys (top level, all optional):
 *   distributed:
 *     bucket_mb: 25        # gradient bucket size in MiB
 *     zero: 0              # 1: ZeRO-1, optimizer state sharded across ranks
 *
 * Data position across world sizes: the task position is (epoch, batch counted on this rank) pairs. Rank r of W
 * takes batches r, r + W, ... of the epoch's plan, so b batches per rank are b * W batches of the epoch. A
 * checkpoint written at world W1 resumes at world W2 at batch floor(b * W1 / W2) of the same epoch: the same
 * fraction of the epoch, rounded towards repeating rather than skipping data. Because the epoch plan's last-batch
 * balancing depends on W, samples near that point may be seen twice or not at all in that one epoch; the following
 * epochs are exact. */
#ifndef VOX_DIST_TRAIN_DIST_H
#define VOX_DIST_TRAIN_DIST_H

#include "dist/comm.h"
#include "dist/ddp.h"
#include "io/config.h"
#include "train/trainer.h"

typedef struct vox_train_dist_ctx vox_train_dist_ctx;

/* Reads root's `distributed:` node (unknown keys are errors), creates the communicator for `device` (the local
 * one when not launched by mpirun/srun) and fills *seam with hooks bound to it. Collective. */
vox_status vox_train_dist_new(const vox_config *root, vox_device device, vox_train_dist_ctx **out, vox_train_dist *seam);
void vox_train_dist_free(vox_train_dist_ctx *ctx); /* NULL is fine; finalises MPI when it was initialised */
vox_comm *vox_train_dist_comm(const vox_train_dist_ctx *ctx);
/* After a failure: ends every rank (MPI_Abort) with `message` naming this rank; returns at world 1. */
void vox_train_dist_abort(vox_train_dist_ctx *ctx, const char *message);

/* (epoch, batch) pairs of a position saved at world `saved_world`, translated to `world` (see above). */
void vox_train_dist_translate_pos(int64_t *v, int n, int64_t saved_world, int64_t world);

#endif
