/* The MPI communicator for CPU tensors (non-blocking MPI_Iallreduce / MPI_Ireduce_scatter_block so gradient
 * buckets overlap backward), and the process-wide MPI bootstrap the NCCL communicator shares. */
#include <limits.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dist/comm_internal.h"

/* ---- process-wide MPI state ---------------------------------------------------------------------------- */

static int g_mpi_refs;
static int g_mpi_owned; /* we called MPI_Init, so we call MPI_Finalize */

static vox_status mpi_check(int rc, const char *what) {
  if (rc == MPI_SUCCESS) return VOX_OK;
  char msg[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, msg, &len);
  return vox_errorf(VOX_ERR_DEVICE, "mpi: %s failed: %.*s", what, len, msg);
}

vox_status vox_mpi_acquire(int *rank, int *world, int *local_rank, int *local_world) {
  int inited = 0, finalized = 0;
  MPI_Initialized(&inited);
  MPI_Finalized(&finalized);
  if (finalized) return vox_errorf(VOX_ERR_STATE, "mpi: MPI was already finalised in this process");
  if (!inited) {
    /* FUNNELED: only the thread that created the communicator calls MPI (the loader's workers never do). */
    int provided = 0;
    VOX_TRY(mpi_check(MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread"));
    g_mpi_owned = 1;
    /* Errors come back as codes that we turn into messages, rather than MPI killing the process silently. */
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  }
  VOX_TRY(mpi_check(MPI_Comm_rank(MPI_COMM_WORLD, rank), "MPI_Comm_rank"));
  VOX_TRY(mpi_check(MPI_Comm_size(MPI_COMM_WORLD, world), "MPI_Comm_size"));
  /* Ranks sharing a node: the launcher's local rank can be absent (e.g. mpiexec from other MPIs), the shared-memory
   * split never is. */
  MPI_Comm node;
  VOX_TRY(mpi_check(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, *rank, MPI_INFO_NULL, &node),
                    "MPI_Comm_split_type"));
  MPI_Comm_rank(node, local_rank);
  MPI_Comm_size(node, local_world);
  MPI_Comm_free(&node);
  g_mpi_refs++;
  return VOX_OK;
}

void vox_mpi_release(void) {
  if (g_mpi_refs > 0 && --g_mpi_refs == 0 && g_mpi_owned) {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) MPI_Finalize();
    g_mpi_owned = 0;
  }
}

void vox_mpi_abort(int code) {
  int inited = 0;
  MPI_Initialized(&inited);
  if (inited) MPI_Abort(MPI_COMM_WORLD, code);
}

static MPI_Op mpi_op(vox_comm_op op) {
  return op == VOX_COMM_MAX ? MPI_MAX : op == VOX_COMM_MIN ? MPI_MIN : MPI_SUM; /* AVG: sum, then scale */
}

vox_status vox_mpi_bcast_bytes(void *data, size_t nbytes, int root) {
  char *p = data;
  while (nbytes > 0) { /* MPI counts are int: send in chunks of at most 1 GiB */
    int chunk = nbytes > (1u << 30) ? (1 << 30) : (int)nbytes;
    VOX_TRY(mpi_check(MPI_Bcast(p, chunk, MPI_BYTE, root, MPI_COMM_WORLD), "MPI_Bcast"));
    p += chunk;
    nbytes -= (size_t)chunk;
  }
  return VOX_OK;
}

vox_status vox_mpi_allreduce_f64(double *values, int n, vox_comm_op op) {
  VOX_TRY(mpi_check(MPI_Allreduce(MPI_IN_PLACE, values, n, MPI_DOUBLE, mpi_op(op), MPI_COMM_WORLD), "MPI_Allreduce"));
  if (op == VOX_COMM_AVG) {
    int world = 1;
    MPI_Comm_size(MPI_COMM_WORLD, &world);
    for (int i = 0; i < n; i++) values[i] /= world;
  }
  return VOX_OK;
}

vox_status vox_mpi_barrier(void) { return mpi_check(MPI_Barrier(MPI_COMM_WORLD), "MPI_Barrier"); }

/* ---- the communicator ---------------------------------------------------------------------------------- */

struct vox_comm_req {
  MPI_Request request;
  vox_tensor *scale; /* retained: the result to divide by world after completion (AVG), or NULL */
  const char *what;
  struct vox_comm_req *next; /* pending list, for progress() */
};

typedef struct mpi_impl {
  vox_comm_req *pending;
} mpi_impl;

static void scale_f32(vox_tensor *t, float s) {
  float *p = vox_tensor_f32(t);
  int64_t n = vox_tensor_numel(t);
  for (int64_t i = 0; i < n; i++) p[i] *= s;
}

static vox_status check_count(const char *op, int64_t n) {
  if (n > INT_MAX)
    return vox_errorf(VOX_ERR_UNSUPPORTED, "comm mpi %s: %lld elements exceed MPI's int count; use smaller buckets", op,
                      (long long)n);
  return VOX_OK;
}

static vox_status track(vox_comm *c, MPI_Request r, vox_tensor *scale, const char *what, vox_comm_req **req) {
  vox_comm_req *q = calloc(1, sizeof *q);
  if (!q) {
    MPI_Wait(&r, MPI_STATUS_IGNORE);
    return vox_errorf(VOX_ERR_NOMEM, "comm mpi %s: out of memory", what);
  }
  q->request = r;
  q->scale = scale ? vox_tensor_retain(scale) : NULL;
  q->what = what;
  mpi_impl *m = c->impl;
  q->next = m->pending;
  m->pending = q;
  *req = q;
  return VOX_OK;
}

static vox_status mpi_wait(vox_comm *c, vox_comm_req *q) {
  mpi_impl *m = c->impl;
  for (vox_comm_req **p = &m->pending; *p; p = &(*p)->next)
    if (*p == q) {
      *p = q->next;
      break;
    }
  vox_status st = mpi_check(MPI_Wait(&q->request, MPI_STATUS_IGNORE), q->what);
  if (st == VOX_OK && q->scale) scale_f32(q->scale, 1.0f / (float)c->world);
  vox_tensor_release(q->scale);
  free(q);
  return st;
}

static void mpi_progress(vox_comm *c) {
  mpi_impl *m = c->impl;
  for (vox_comm_req *q = m->pending; q; q = q->next) {
    int done = 0;
    if (q->request != MPI_REQUEST_NULL) MPI_Test(&q->request, &done, MPI_STATUS_IGNORE);
  }
}

static vox_status mpi_allreduce(vox_comm *c, vox_tensor *t, vox_comm_op op, vox_comm_req **req) {
  VOX_TRY(vox_comm_check_tensor(c, "allreduce", t, -1));
  int64_t n = vox_tensor_numel(t);
  if (req) {
    VOX_TRY(check_count("allreduce", n));
    MPI_Request r;
    VOX_TRY(mpi_check(MPI_Iallreduce(MPI_IN_PLACE, vox_tensor_data(t), (int)n, MPI_FLOAT, mpi_op(op), MPI_COMM_WORLD,
                                     &r), "MPI_Iallreduce"));
    return track(c, r, op == VOX_COMM_AVG ? t : NULL, "MPI_Iallreduce", req);
  }
  float *p = vox_tensor_f32(t);
  for (int64_t off = 0; off < n; off += INT_MAX / 2) {
    int cnt = (int)(n - off < INT_MAX / 2 ? n - off : INT_MAX / 2);
    VOX_TRY(mpi_check(MPI_Allreduce(MPI_IN_PLACE, p + off, cnt, MPI_FLOAT, mpi_op(op), MPI_COMM_WORLD), "MPI_Allreduce"));
  }
  if (op == VOX_COMM_AVG) scale_f32(t, 1.0f / (float)c->world);
  return VOX_OK;
}

static vox_status mpi_reduce_scatter(vox_comm *c, const vox_tensor *in, vox_tensor *out, vox_comm_op op,
                                     vox_comm_req **req) {
  VOX_TRY(vox_comm_check_tensor(c, "reduce_scatter", out, -1));
  int64_t n = vox_tensor_numel(out);
  VOX_TRY(vox_comm_check_tensor(c, "reduce_scatter", in, n * c->world));
  VOX_TRY(check_count("reduce_scatter", n));
  const float *src = vox_tensor_f32(in);
  float *dst = vox_tensor_f32(out);
  if (src + n * c->rank < dst + n && dst < src + n * (c->rank + 1) && dst != src + n * c->rank)
    return vox_errorf(VOX_ERR_INVALID, "comm mpi reduce_scatter: output overlaps the input other than at this rank's slice");
  /* When out is this rank's slice of in, in itself is the send buffer: copy the slice aside first, since MPI's
   * in-place form puts the result at the start of the buffer, not at the rank's slice. Buckets avoid this case. */
  if (dst == src + n * c->rank)
    return vox_errorf(VOX_ERR_UNSUPPORTED, "comm mpi reduce_scatter: in-place (output = this rank's input slice)");
  MPI_Request r;
  VOX_TRY(mpi_check(MPI_Ireduce_scatter_block(src, dst, (int)n, MPI_FLOAT, mpi_op(op), MPI_COMM_WORLD, &r),
                    "MPI_Ireduce_scatter_block"));
  vox_comm_req *q = NULL;
  VOX_TRY(track(c, r, op == VOX_COMM_AVG ? out : NULL, "MPI_Ireduce_scatter_block", &q));
  if (req) {
    *req = q;
    return VOX_OK;
  }
  return mpi_wait(c, q);
}

static vox_status mpi_allgather(vox_comm *c, const vox_tensor *in, vox_tensor *out) {
  VOX_TRY(vox_comm_check_tensor(c, "allgather", in, -1));
  int64_t n = vox_tensor_numel(in);
  VOX_TRY(vox_comm_check_tensor(c, "allgather", out, n * c->world));
  VOX_TRY(check_count("allgather", n * c->world));
  const float *src = vox_tensor_f32(in);
  float *dst = vox_tensor_f32(out);
  /* The shard may already sit at this rank's slice of the output (ZeRO does that): MPI's in-place form. */
  const void *send = src == dst + n * c->rank ? MPI_IN_PLACE : (const void *)src;
  return mpi_check(MPI_Allgather(send, (int)n, MPI_FLOAT, dst, (int)n, MPI_FLOAT, MPI_COMM_WORLD), "MPI_Allgather");
}

static vox_status mpi_broadcast(vox_comm *c, vox_tensor *t, int root) {
  VOX_TRY(vox_comm_check_tensor(c, "broadcast", t, -1));
  if (root < 0 || root >= c->world)
    return vox_errorf(VOX_ERR_INDEX, "comm mpi broadcast: root %d of %d ranks", root, c->world);
  return vox_mpi_bcast_bytes(vox_tensor_data(t), vox_tensor_nbytes(t), root);
}

static vox_status mpi_allreduce_f64(vox_comm *c, double *v, int n, vox_comm_op op) {
  return vox_mpi_allreduce_f64(v, n, op);
}
static vox_status mpi_broadcast_host(vox_comm *c, void *data, size_t nbytes, int root) {
  return vox_mpi_bcast_bytes(data, nbytes, root);
}
static vox_status mpi_barrier(vox_comm *c) { return vox_mpi_barrier(); }
static void mpi_abort(vox_comm *c, int code) { vox_mpi_abort(code); }

static void mpi_destroy(vox_comm *c) {
  mpi_impl *m = c->impl;
  while (m && m->pending) mpi_wait(c, m->pending);
  free(m);
  vox_mpi_release();
}

static const vox_comm_vtable mpi_vt = {
    .allreduce = mpi_allreduce, .reduce_scatter = mpi_reduce_scatter, .allgather = mpi_allgather,
    .broadcast = mpi_broadcast, .wait = mpi_wait, .progress = mpi_progress, .allreduce_host_f64 = mpi_allreduce_f64,
    .broadcast_host = mpi_broadcast_host, .barrier = mpi_barrier, .abort = mpi_abort, .destroy = mpi_destroy};

vox_status vox_comm_mpi_new(vox_comm **out) {
  *out = NULL;
  vox_comm *c = calloc(1, sizeof *c);
  mpi_impl *m = calloc(1, sizeof *m);
  if (!c || !m) {
    free(c);
    free(m);
    return vox_errorf(VOX_ERR_NOMEM, "comm mpi: out of memory");
  }
  vox_status st = vox_mpi_acquire(&c->rank, &c->world, &c->local_rank, &c->local_world);
  if (st != VOX_OK) {
    free(c);
    free(m);
    return st;
  }
  c->vt = &mpi_vt;
  c->kind = VOX_COMM_MPI;
  c->device = VOX_CPU;
  c->impl = m;
  *out = c;
  return VOX_OK;
}
