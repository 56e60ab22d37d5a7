/* ZeRO-1 (module prefix vox_zero_): the optimizer state sharded across data-parallel ranks. It is enabled with
 * vox_ddp_opts.zero = 1 and driven entirely through dist/ddp.h; this header only documents the scheme.
 *
 * Each gradient bucket of dist/ddp.c (padded to a multiple of the world size W) is split into W equal parts; rank
 * r owns part r of every bucket. Per step: the buckets are reduce-scattered (averaged) during backward, so rank r
 * receives only the averaged gradient of its parts; the global gradient norm is the all-reduced sum of the parts'
 * squares; rank r runs the optimizer's own fused kernels (vox_optim_step_range) on the parameter elements of its
 * parts, keeping AdamW m/v only for them (1/W of the state per rank); then every bucket's updated parameter
 * values are all-gathered, so all ranks end the step with identical parameters. The element-wise update is the
 * same arithmetic as the replicated optimizer, so ZeRO-1 and replicated training agree to reduction order.
 *
 * Checkpoints never see the sharding: vox_ddp_state_save gathers each parameter's full state to rank 0 (bucket by
 * bucket through all-gather), vox_ddp_state_load has rank 0 broadcast each full tensor and every rank keeps its
 * part, so a state written at any world size, with or without ZeRO, loads at any other. */
#ifndef VOX_DIST_ZERO_H
#define VOX_DIST_ZERO_H

#include "dist/ddp.h"

/* Elements of optimizer state (per slot) this rank holds under ZeRO-1, for logs and tests (0 when not sharded). */
int64_t vox_zero_shard_numel(const vox_ddp *d);

#endif
