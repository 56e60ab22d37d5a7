/* The communicator's implementation table, shared by comm.c (dispatch, local backend, selection) and the MPI and
 * NCCL backends (mpi_comm.c, nccl_comm.c). Not part of the public API. */
#ifndef VOX_DIST_COMM_INTERNAL_H
#define VOX_DIST_COMM_INTERNAL_H

#include "dist/comm.h"

typedef struct vox_comm_vtable {
  vox_status (*allreduce)(vox_comm *c, vox_tensor *t, vox_comm_op op, vox_comm_req **req); /* req NULL: blocking */
  vox_status (*reduce_scatter)(vox_comm *c, const vox_tensor *in, vox_tensor *out, vox_comm_op op,
                               vox_comm_req **req);
  vox_status (*allgather)(vox_comm *c, const vox_tensor *in, vox_tensor *out);
  vox_status (*broadcast)(vox_comm *c, vox_tensor *t, int root);
  vox_status (*wait)(vox_comm *c, vox_comm_req *req);
  void (*progress)(vox_comm *c);
  vox_status (*allreduce_host_f64)(vox_comm *c, double *values, int n, vox_comm_op op);
  vox_status (*broadcast_host)(vox_comm *c, void *data, size_t nbytes, int root);
  vox_status (*barrier)(vox_comm *c);
  void (*abort)(vox_comm *c, int code);
  void (*destroy)(vox_comm *c);
} vox_comm_vtable;

struct vox_comm {
  const vox_comm_vtable *vt;
  vox_comm_kind kind;
  vox_device device;
  int rank, world, local_rank, local_world;
  void *impl; /* the backend's own state */
};

/* Argument checks shared by the backends: contiguous f32 on the communicator's device, numel as expected
 * (expect < 0: any). */
vox_status vox_comm_check_tensor(const vox_comm *c, const char *op, const vox_tensor *t, int64_t expect);

#ifdef VOX_HAVE_MPI
/* MPI bootstrap shared by the MPI and NCCL communicators: MPI_Init_thread once per process, reference-counted
 * so MPI_Finalize runs when the last communicator goes. Fills rank/world/local rank/local world. */
vox_status vox_mpi_acquire(int *rank, int *world, int *local_rank, int *local_world);
void vox_mpi_release(void);
/* MPI_Abort on MPI_COMM_WORLD (never returns when MPI is initialised). */
void vox_mpi_abort(int code);
vox_status vox_mpi_bcast_bytes(void *data, size_t nbytes, int root);
vox_status vox_mpi_allreduce_f64(double *values, int n, vox_comm_op op);
vox_status vox_mpi_barrier(void);
#endif

#endif
