/* The NCCL communicator for CUDA tensors: bootstrapped through MPI (rank 0's ncclUniqueId broadcast), one GPU per
 * rank chosen by node-local rank, collectives on a dedicated stream ordered after the compute stream by events,
 * and waits that poll ncclCommGetAsyncError so a dead peer ends in an error (after ncclCommAbort) not a hang. */
#include <cuda_runtime.h>
#include <mpi.h>
#include <nccl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/backend.h"
#include "core/log.h"
#include "dist/comm_internal.h"

typedef struct nccl_impl {
  ncclComm_t comm;
  cudaStream_t stream;       /* collectives run here */
  cudaEvent_t compute_ready; /* recorded on the compute stream before each collective */
  double timeout_s;          /* VOX_NCCL_TIMEOUT (seconds, default 1800) */
  int aborted;
} nccl_impl;

struct vox_comm_req {
  cudaEvent_t done;
  const char *what;
};

static vox_status cu_check(cudaError_t e, const char *what) {
  if (e == cudaSuccess) return VOX_OK;
  return vox_errorf(VOX_ERR_DEVICE, "comm nccl: %s: %s", what, cudaGetErrorString(e));
}
static vox_status nccl_check(ncclResult_t r, const char *what) {
  if (r == ncclSuccess) return VOX_OK;
  return vox_errorf(VOX_ERR_DEVICE, "comm nccl: %s: %s", what, ncclGetErrorString(r));
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static ncclRedOp_t nccl_op(vox_comm_op op) {
  return op == VOX_COMM_AVG ? ncclAvg : op == VOX_COMM_MAX ? ncclMax : op == VOX_COMM_MIN ? ncclMin : ncclSum;
}

/* The compute stream is the legacy default stream (the CUDA backend launches there): the collective waits for
 * every kernel queued so far, i.e. for the gradients it reduces. */
static vox_status order_after_compute(nccl_impl *m) {
  VOX_TRY(cu_check(cudaEventRecord(m->compute_ready, cudaStreamLegacy), "cudaEventRecord"));
  return cu_check(cudaStreamWaitEvent(m->stream, m->compute_ready, 0), "cudaStreamWaitEvent");
}

/* Polls the event until it completes, checking NCCL's asynchronous error state and the timeout; on either the
 * communicator is aborted (ncclCommAbort) so no later call can hang on it. */
static vox_status poll_event(vox_comm *c, cudaEvent_t ev, const char *what) {
  nccl_impl *m = c->impl;
  if (m->aborted) return vox_errorf(VOX_ERR_STATE, "comm nccl: %s after the communicator was aborted", what);
  double t0 = now_s();
  for (unsigned spin = 0;; spin++) {
    cudaError_t e = cudaEventQuery(ev);
    if (e == cudaSuccess) return VOX_OK;
    if (e != cudaErrorNotReady) return cu_check(e, what);
    ncclResult_t async = ncclSuccess;
    ncclResult_t r = ncclCommGetAsyncError(m->comm, &async);
    if (r != ncclSuccess || (async != ncclSuccess && async != ncclInProgress)) {
      ncclCommAbort(m->comm);
      m->aborted = 1;
      return vox_errorf(VOX_ERR_DEVICE, "comm nccl: rank %d: %s failed asynchronously: %s", c->rank, what,
                        ncclGetErrorString(r != ncclSuccess ? r : async));
    }
    if (now_s() - t0 > m->timeout_s) {
      ncclCommAbort(m->comm);
      m->aborted = 1;
      return vox_errorf(VOX_ERR_DEVICE,
                        "comm nccl: rank %d: %s did not complete within %.0f s (VOX_NCCL_TIMEOUT); a peer rank is "
                        "probably dead or stuck; communicator aborted", c->rank, what, m->timeout_s);
    }
    if (spin > 1000) usleep(100);
  }
}

static vox_status finish(vox_comm *c, const char *what, vox_comm_req **req) {
  nccl_impl *m = c->impl;
  vox_comm_req *q = calloc(1, sizeof *q);
  if (!q) return vox_errorf(VOX_ERR_NOMEM, "comm nccl %s: out of memory", what);
  q->what = what;
  vox_status st = cu_check(cudaEventCreateWithFlags(&q->done, cudaEventDisableTiming), "cudaEventCreate");
  if (st == VOX_OK) st = cu_check(cudaEventRecord(q->done, m->stream), "cudaEventRecord");
  if (st != VOX_OK) {
    free(q);
    return st;
  }
  if (req) {
    *req = q;
    return VOX_OK;
  }
  return c->vt->wait(c, q);
}

static vox_status nccl_wait(vox_comm *c, vox_comm_req *q) {
  vox_status st = poll_event(c, q->done, q->what);
  /* Later compute (the optimizer reading the reduced gradients) is ordered after the collective. */
  if (st == VOX_OK) st = cu_check(cudaStreamWaitEvent(cudaStreamLegacy, q->done, 0), "cudaStreamWaitEvent");
  cudaEventDestroy(q->done);
  free(q);
  return st;
}

static void nccl_progress(vox_comm *c) {} /* NCCL progresses on the GPU by itself */

static vox_status nccl_allreduce(vox_comm *c, vox_tensor *t, vox_comm_op op, vox_comm_req **req) {
  nccl_impl *m = c->impl;
  VOX_TRY(vox_comm_check_tensor(c, "allreduce", t, -1));
  VOX_TRY(order_after_compute(m));
  void *p = vox_tensor_data(t);
  VOX_TRY(nccl_check(ncclAllReduce(p, p, (size_t)vox_tensor_numel(t), ncclFloat32, nccl_op(op), m->comm, m->stream),
                     "ncclAllReduce"));
  return finish(c, "ncclAllReduce", req);
}

static vox_status nccl_reduce_scatter(vox_comm *c, const vox_tensor *in, vox_tensor *out, vox_comm_op op,
                                      vox_comm_req **req) {
  nccl_impl *m = c->impl;
  VOX_TRY(vox_comm_check_tensor(c, "reduce_scatter", out, -1));
  int64_t n = vox_tensor_numel(out);
  VOX_TRY(vox_comm_check_tensor(c, "reduce_scatter", in, n * c->world));
  VOX_TRY(order_after_compute(m));
  VOX_TRY(nccl_check(ncclReduceScatter(vox_tensor_data(in), vox_tensor_data(out), (size_t)n, ncclFloat32, nccl_op(op),
                                       m->comm, m->stream), "ncclReduceScatter"));
  return finish(c, "ncclReduceScatter", req);
}

static vox_status nccl_allgather(vox_comm *c, const vox_tensor *in, vox_tensor *out) {
  nccl_impl *m = c->impl;
  VOX_TRY(vox_comm_check_tensor(c, "allgather", in, -1));
  int64_t n = vox_tensor_numel(in);
  VOX_TRY(vox_comm_check_tensor(c, "allgather", out, n * c->world));
  VOX_TRY(order_after_compute(m));
  VOX_TRY(nccl_check(ncclAllGather(vox_tensor_data(in), vox_tensor_data(out), (size_t)n, ncclFloat32, m->comm,
                                   m->stream), "ncclAllGather"));
  return finish(c, "ncclAllGather", NULL);
}

static vox_status nccl_broadcast(vox_comm *c, vox_tensor *t, int root) {
  nccl_impl *m = c->impl;
  VOX_TRY(vox_comm_check_tensor(c, "broadcast", t, -1));
  VOX_TRY(order_after_compute(m));
  void *p = vox_tensor_data(t);
  VOX_TRY(nccl_check(ncclBroadcast(p, p, (size_t)vox_tensor_numel(t), ncclFloat32, root, m->comm, m->stream),
                     "ncclBroadcast"));
  return finish(c, "ncclBroadcast", NULL);
}

/* Control data (flags, positions, paths) is host memory: it goes through MPI, which bootstrapped NCCL. */
static vox_status nccl_allreduce_f64(vox_comm *c, double *v, int n, vox_comm_op op) {
  return vox_mpi_allreduce_f64(v, n, op);
}
static vox_status nccl_broadcast_host(vox_comm *c, void *data, size_t nbytes, int root) {
  return vox_mpi_bcast_bytes(data, nbytes, root);
}
static vox_status nccl_barrier(vox_comm *c) { return vox_mpi_barrier(); }

static void nccl_abort(vox_comm *c, int code) {
  nccl_impl *m = c->impl;
  if (m && m->comm && !m->aborted) {
    ncclCommAbort(m->comm);
    m->aborted = 1;
  }
  vox_mpi_abort(code);
}

static void nccl_destroy(vox_comm *c) {
  nccl_impl *m = c->impl;
  if (m) {
    if (m->comm && !m->aborted) {
      cudaStreamSynchronize(m->stream);
      ncclCommDestroy(m->comm);
    }
    if (m->compute_ready) cudaEventDestroy(m->compute_ready);
    if (m->stream) cudaStreamDestroy(m->stream);
    free(m);
  }
  vox_mpi_release();
}

static const vox_comm_vtable nccl_vt = {
    .allreduce = nccl_allreduce, .reduce_scatter = nccl_reduce_scatter, .allgather = nccl_allgather,
    .broadcast = nccl_broadcast, .wait = nccl_wait, .progress = nccl_progress, .allreduce_host_f64 = nccl_allreduce_f64,
    .broadcast_host = nccl_broadcast_host, .barrier = nccl_barrier, .abort = nccl_abort, .destroy = nccl_destroy};

vox_status vox_comm_nccl_new(vox_comm **out) {
  *out = NULL;
  vox_comm *c = calloc(1, sizeof *c);
  nccl_impl *m = calloc(1, sizeof *m);
  if (!c || !m) {
    free(c);
    free(m);
    return vox_errorf(VOX_ERR_NOMEM, "comm nccl: out of memory");
  }
  c->vt = &nccl_vt;
  c->kind = VOX_COMM_NCCL;
  c->device = VOX_CUDA;
  c->impl = m;
  const char *tmo = getenv("VOX_NCCL_TIMEOUT");
  m->timeout_s = tmo && atof(tmo) > 0 ? atof(tmo) : 1800.0;
  vox_status st = vox_mpi_acquire(&c->rank, &c->world, &c->local_rank, &c->local_world);
  if (st != VOX_OK) {
    free(m);
    free(c);
    return st;
  }
  /* One GPU per rank: the node-local rank picks it (the launcher's value when it gave one, else MPI's shared-memory
   * split), unless VOX_CUDA_DEVICE was set explicitly (e.g. by a wrapper that already did the mapping). The CUDA
   * backend reads VOX_CUDA_DEVICE when it first probes the device, which happens below. */
  int count = 0;
  st = cu_check(cudaGetDeviceCount(&count), "cudaGetDeviceCount");
  if (st == VOX_OK && count < 1) st = vox_errorf(VOX_ERR_DEVICE, "comm nccl: rank %d sees no CUDA device", c->rank);
  if (st == VOX_OK && !getenv("VOX_CUDA_DEVICE")) {
    int env_local = vox_comm_env_local_rank();
    int local = env_local >= 0 ? env_local : c->local_rank;
    if (c->local_world > count)
      vox_log_warn("comm nccl: %d ranks on this node share %d GPUs", c->local_world, count);
    char dev[16];
    snprintf(dev, sizeof dev, "%d", local % count);
    setenv("VOX_CUDA_DEVICE", dev, 1);
  }
  if (st == VOX_OK && !vox_backend_get(VOX_CUDA)->available)
    st = vox_errorf(VOX_ERR_DEVICE, "comm nccl: rank %d: CUDA device %s is not usable", c->rank,
                    getenv("VOX_CUDA_DEVICE"));
  if (st == VOX_OK)
    st = cu_check(cudaStreamCreateWithFlags(&m->stream, cudaStreamNonBlocking), "cudaStreamCreate");
  if (st == VOX_OK)
    st = cu_check(cudaEventCreateWithFlags(&m->compute_ready, cudaEventDisableTiming), "cudaEventCreate");
  /* Every rank takes the bootstrap broadcast even when an earlier step failed locally, so that no rank waits in
   * MPI_Bcast for a peer that returned: the failure is agreed on right after. */
  ncclUniqueId id;
  memset(&id, 0, sizeof id);
  vox_status id_st = VOX_OK;
  if (c->rank == 0 && st == VOX_OK) id_st = nccl_check(ncclGetUniqueId(&id), "ncclGetUniqueId");
  double bad = (st != VOX_OK || id_st != VOX_OK) ? 1.0 : 0.0;
  vox_status agree = vox_mpi_allreduce_f64(&bad, 1, VOX_COMM_MAX);
  if (agree == VOX_OK && bad == 0.0) agree = vox_mpi_bcast_bytes(&id, sizeof id, 0);
  if (st == VOX_OK) st = id_st;
  if (st == VOX_OK) st = agree;
  if (st == VOX_OK && bad != 0.0)
    st = vox_errorf(VOX_ERR_DEVICE, "comm nccl: rank %d: another rank failed to set up its GPU", c->rank);
  if (st == VOX_OK) st = nccl_check(ncclCommInitRank(&m->comm, c->world, id, c->rank), "ncclCommInitRank");
  if (st != VOX_OK) {
    vox_error_context(st, "comm nccl (rank %d of %d): ", c->rank, c->world);
    nccl_destroy(c);
    free(c);
    return st;
  }
  vox_log_debug("comm nccl: rank %d of %d on GPU %s", c->rank, c->world, getenv("VOX_CUDA_DEVICE"));
  *out = c;
  return VOX_OK;
}
