/* Communicators for data-parallel training (module prefix vox_comm_): rank/world queries and the collectives
 * (all-reduce, reduce-scatter, all-gather, broadcast, barrier, abort) with local, MPI (CPU) and NCCL (CUDA) backends.
 *
 * vox_comm_init picks the implementation: a process launched by mpirun/srun with more than one rank
 * (OMPI_COMM_WORLD_SIZE, PMI_SIZE or SLURM_NTASKS > 1) gets MPI for CPU tensors or NCCL (bootstrapped through
 * MPI) for CUDA tensors; any other process gets the local communicator (world 1), which needs neither MPI nor
 * NCCL at run time and never calls MPI_Init. Collectives run in place on contiguous f32 tensors (the dtype all
 * gradients and master weights have); every rank must call the same collectives in the same order with the
 * same sizes. The asynchronous variants return a request that vox_comm_wait completes; requests complete in
 * any order, but they must be issued in the same order on every rank. */
#ifndef VOX_DIST_COMM_H
#define VOX_DIST_COMM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/tensor.h"

typedef enum vox_comm_kind { VOX_COMM_LOCAL = 0, VOX_COMM_MPI, VOX_COMM_NCCL } vox_comm_kind;
typedef enum vox_comm_op { VOX_COMM_SUM = 0, VOX_COMM_AVG, VOX_COMM_MAX, VOX_COMM_MIN } vox_comm_op;

typedef struct vox_comm vox_comm;
typedef struct vox_comm_req vox_comm_req;

/* Environment detection: the world size the launcher announced (1 when not launched by mpirun/srun). */
int vox_comm_env_world_size(void);
/* The node-local rank the launcher announced (OMPI_COMM_WORLD_LOCAL_RANK, SLURM_LOCALID, MPI_LOCALRANKID), or -1. */
int vox_comm_env_local_rank(void);

/* The communicator for training on `device` (see the header comment). VOX_ERR_UNSUPPORTED when launched with
 * several ranks but this build lacks MPI (or NCCL for CUDA): running N independent copies would be wrong. */
vox_status vox_comm_init(vox_device device, vox_comm **out);
/* Explicit constructors. MPI and NCCL return VOX_ERR_UNSUPPORTED in builds without them. */
vox_status vox_comm_local_new(vox_comm **out);
vox_status vox_comm_mpi_new(vox_comm **out);
vox_status vox_comm_nccl_new(vox_comm **out);
/* Finishes pending work and releases the communicator (MPI_Finalize for the last MPI-based one). NULL is fine. */
void vox_comm_free(vox_comm *c);

vox_comm_kind vox_comm_get_kind(const vox_comm *c);
const char *vox_comm_kind_name(vox_comm_kind kind);
int vox_comm_rank(const vox_comm *c);
int vox_comm_world(const vox_comm *c);
int vox_comm_local_rank(const vox_comm *c);
int vox_comm_local_world(const vox_comm *c);
/* The device whose tensors the collectives take (VOX_CPU for local and MPI, VOX_CUDA for NCCL; the local
 * communicator accepts any device). */
vox_device vox_comm_device(const vox_comm *c);
static inline bool vox_comm_is_root(const vox_comm *c) { return !c || vox_comm_rank(c) == 0; }

/* ---- tensor collectives (contiguous f32 tensors on the communicator's device) ---- */
/* t = op over ranks of t, in place. */
vox_status vox_comm_allreduce(vox_comm *c, vox_tensor *t, vox_comm_op op);
vox_status vox_comm_allreduce_async(vox_comm *c, vox_tensor *t, vox_comm_op op, vox_comm_req **req);
/* out (numel n) = op over ranks of the rank-th slice of in (numel n * world). */
vox_status vox_comm_reduce_scatter(vox_comm *c, const vox_tensor *in, vox_tensor *out, vox_comm_op op);
vox_status vox_comm_reduce_scatter_async(vox_comm *c, const vox_tensor *in, vox_tensor *out, vox_comm_op op,
                                         vox_comm_req **req);
/* out (numel n * world) = the concatenation over ranks of in (numel n). */
vox_status vox_comm_allgather(vox_comm *c, const vox_tensor *in, vox_tensor *out);
vox_status vox_comm_broadcast(vox_comm *c, vox_tensor *t, int root);
/* Completes and frees a request (NULL is fine). On failure the communicator is unusable: abort. */
vox_status vox_comm_wait(vox_comm *c, vox_comm_req *req);
/* Drives progress of pending requests without blocking (MPI progresses non-blocking collectives only inside
 * MPI calls, so the gradient hooks call this between launches). */
void vox_comm_progress(vox_comm *c);

/* ---- host-memory helpers (small control data: flags, positions, paths) ---- */
vox_status vox_comm_allreduce_host_f64(vox_comm *c, double *values, int n, vox_comm_op op);
vox_status vox_comm_broadcast_host(vox_comm *c, void *data, size_t nbytes, int root);
/* Broadcasts a malloc()ed string from root: on other ranks *s is replaced by a new malloc()ed copy (NULL
 * stays NULL everywhere when root's is NULL). */
vox_status vox_comm_broadcast_string(vox_comm *c, char **s, int root);
vox_status vox_comm_barrier(vox_comm *c);

/* Ends the whole job after a failure on this rank: prints "vox: rank R of W: <message>" to stderr and calls
 * MPI_Abort so that every other rank is terminated within seconds instead of waiting forever in a collective.
 * With the local communicator (or NULL) it prints nothing and returns: the caller exits with its error. */
void vox_comm_abort(vox_comm *c, int code, const char *message);

#endif
