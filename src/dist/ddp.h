/* Data-parallel training (module prefix vox_ddp_): bucketed gradient averaging overlapped with backward, and the
 * optimizer step that follows it, replicated (every rank updates everything) or ZeRO-1 sharded (dist/zero.h).
 *
 * The parameters are the optimizer's entries (its registration order). They are packed into buckets of about
 * `bucket_mb` in reverse registration order, the order backward finishes them. Every parameter gets a gradient
 * hook (core/autograd.h: it fires once its gradient of a backward pass is final); on the synchronising backward
 * the hook copies the gradient into its bucket and, as soon as a bucket is complete and every earlier bucket has
 * been launched, starts a non-blocking average over ranks (all-reduce, or reduce-scatter under ZeRO-1). Buckets
 * are launched strictly in order so that every rank issues the same collectives in the same order.
 *
 * Per optimizer step:
 *   for each micro-batch m of k:  vox_ddp_set_sync(d, m == k - 1); forward; backward
 *   vox_ddp_step(d, max_norm, &norm)    (waits, averages, clips on the global norm, steps, re-gathers under ZeRO)
 * Only the last micro-batch communicates: earlier backwards just accumulate into ->grad locally.
 *
 * What is averaged: the rank-local gradients (each the gradient of that rank's mean loss over its micro-batches,
 * with the optimizer's grad_scale 1/k applied in the step) are averaged over ranks, so N ranks with batch B match
 * one rank with batch N*B when every rank's batches hold the same number of loss tokens (as with PyTorch DDP).
 * A parameter that received no gradient on a rank this step contributes zeros; one that received none on any
 * rank keeps no gradient and is skipped by the step (as a single process would), so ranks never disagree on
 * bucket contents or on which parameters move. */
#ifndef VOX_DIST_DDP_H
#define VOX_DIST_DDP_H

#include <stdbool.h>

#include "dist/comm.h"
#include "optim/optim.h"

typedef struct vox_ddp_opts {
  double bucket_mb;      /* bucket capacity in MiB of f32 gradients; default 25 */
  int zero;              /* 0: replicated optimizer state; 1: ZeRO-1 (state sharded across ranks) */
  bool broadcast_params; /* default true: rank 0's parameter values are copied to every rank at creation */
} vox_ddp_opts;

vox_ddp_opts vox_ddp_opts_default(void);

typedef struct vox_ddp vox_ddp;

/* Wraps `opt` (borrowed; it must outlive the ddp and already hold every trainable parameter) for training over
 * `comm` (borrowed). Installs the gradient hooks (VOX_ERR_STATE if a parameter already has one). With world 1 and
 * zero 0 nothing is installed and vox_ddp_step is clip + vox_optim_step. Under ZeRO-1 the optimizer's own state
 * tensors are dropped (vox_optim_drop_state) and each rank keeps only its shard (copied from the optimizer's state,
 * so state restored into the optimizer before this call, e.g. on resume, carries over). Collective. */
vox_status vox_ddp_new(vox_comm *comm, vox_optim *opt, const vox_ddp_opts *opts, vox_ddp **out);
/* Removes the hooks and frees the buckets (waits for nothing: call only between steps). NULL is fine. */
void vox_ddp_free(vox_ddp *d);

/* Whether the next backward synchronises gradients: true for the last micro-batch of a step (the default),
 * false for earlier ones. */
void vox_ddp_set_sync(vox_ddp *d, bool sync);

/* Completes the gradient exchange of this step: launches the buckets still pending (zero-filling parameters
 * without a gradient), waits for all of them and makes the averaged gradients available — as each parameter's
 * ->grad (replicated mode), or as this rank's shard (ZeRO-1). Collective; idempotent within a step. */
vox_status vox_ddp_finish_grads(vox_ddp *d);
/* Global gradient norm (after averaging, times the optimizer's grad_scale), clipping to max_norm when > 0 (as
 * vox_optim_clip_grad_norm, on the global gradient in both modes), the optimizer step (sharded under ZeRO-1,
 * followed by the all-gather of the updated parameters) and the reset for the next step. *norm (may be NULL)
 * gets the norm before clipping. The caller still drops the gradients (vox_optim_zero_grad). Collective. */
vox_status vox_ddp_step(vox_ddp *d, double max_norm, double *norm);

/* The same in parts, for a loop that checks the norm in between (train/trainer.c): */
/* Resets the per-step state (call before the first micro-batch; needed when a step was skipped). */
void vox_ddp_begin_step(vox_ddp *d);
/* Finishes the gradients, then the global norm and clipping (VOX_ERR_NUMERIC for a non-finite norm, as
 * vox_optim_clip_grad_norm). Collective. */
vox_status vox_ddp_clip_grad_norm(vox_ddp *d, double max_norm, double *norm);
/* Finishes the gradients, then the (sharded) optimizer step and the reset. Collective. */
vox_status vox_ddp_optim_step(vox_ddp *d);

/* ZeRO-1: makes the optimizer's own state complete on rank 0 (allocating it there) for a checkpoint writer that
 * reads it with vox_optim_state_at; release drops it again. No-ops when not sharded. Collective. */
vox_status vox_ddp_materialize_state(vox_ddp *d);
void vox_ddp_release_materialized_state(vox_ddp *d);

/* Copies rank `root`'s values of every optimizer parameter to all ranks. Collective. */
vox_status vox_ddp_broadcast_params(vox_ddp *d, int root);

/* Bucket layout, for logs and tests. */
int vox_ddp_num_buckets(const vox_ddp *d);
/* Entries of bucket b in launch order (optimizer entry indices into idx, at most cap) and its element count;
 * returns the number of entries. */
int vox_ddp_bucket_entries(const vox_ddp *d, int b, int *idx, int cap, int64_t *numel);
/* Buckets launched during the last synchronising backward (before vox_ddp_finish_grads), i.e. overlapped. */
int vox_ddp_overlapped_buckets(const vox_ddp *d);
vox_comm *vox_ddp_comm(const vox_ddp *d);
vox_optim *vox_ddp_optim(const vox_ddp *d);
int vox_ddp_zero_stage(const vox_ddp *d);

/* ---- optimizer state across world sizes (checkpoints) ---- */
/* Called on rank 0 only, once per (parameter, slot), with the full state tensor (shaped like the parameter). */
typedef vox_status (*vox_ddp_state_save_fn)(void *ctx, const char *param_name, const char *slot,
                                            const vox_tensor *full);
/* Called on rank 0 only: fills `full` (zeros on entry, shaped like the parameter) for (parameter, slot); return
 * VOX_ERR_NOT_FOUND to leave zeros (a parameter absent from the checkpoint). */
typedef vox_status (*vox_ddp_state_load_fn)(void *ctx, const char *param_name, const char *slot, vox_tensor *full);
/* Gathers the complete optimizer state to rank 0 and hands it to fn there, one tensor at a time, in the same
 * names as an unsharded vox_optim (so a checkpoint does not depend on the world size or on ZeRO). Collective. */
vox_status vox_ddp_state_save(vox_ddp *d, vox_ddp_state_save_fn fn, void *ctx);
/* The converse: fn on rank 0 supplies each full state tensor, every rank keeps its part. Collective; an error
 * of fn on rank 0 is reported on every rank. */
vox_status vox_ddp_state_load(vox_ddp *d, vox_ddp_state_load_fn fn, void *ctx);

/* Averages arbitrary buffers across ranks in one collective per tensor (e.g. EMA codebook statistics of an
 * RVQ, which every rank updates from its own batch). Tensors: contiguous f32 on the communicator's device.
 * Collective. */
vox_status vox_dist_allreduce_avg(vox_comm *comm, vox_tensor *const *tensors, int n);

#endif
