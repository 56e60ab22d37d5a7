/* Communicator dispatch, the local (world 1) communicator and the choice of backend from the launcher's
 * environment. The local communicator needs neither MPI nor NCCL, so a plain `vox train` never initialises MPI. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "dist/comm_internal.h"

static int env_int(const char *name) {
  const char *v = getenv(name);
  if (!v || !*v) return -1;
  char *end = NULL;
  long x = strtol(v, &end, 10);
  return (*end || x < 0 || x > 1 << 24) ? -1 : (int)x;
}

int vox_comm_env_world_size(void) {
  static const char *names[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "SLURM_NTASKS", "MV2_COMM_WORLD_SIZE"};
  for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
    int n = env_int(names[i]);
    if (n >= 1) return n;
  }
  return 1;
}

int vox_comm_env_local_rank(void) {
  static const char *names[] = {"OMPI_COMM_WORLD_LOCAL_RANK", "SLURM_LOCALID", "MPI_LOCALRANKID", "MV2_COMM_WORLD_LOCAL_RANK"};
  for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
    int n = env_int(names[i]);
    if (n >= 0) return n;
  }
  return -1;
}

vox_status vox_comm_check_tensor(const vox_comm *c, const char *op, const vox_tensor *t, int64_t expect) {
  char b[96];
  if (!t) return vox_errorf(VOX_ERR_INVALID, "comm %s: NULL tensor", op);
  if (t->dtype != VOX_F32 || !vox_tensor_is_contiguous(t))
    return vox_errorf(VOX_ERR_DTYPE, "comm %s: expected a contiguous f32 tensor, got %s", op,
                      vox_tensor_describe(t, b, sizeof b));
  if (c->kind != VOX_COMM_LOCAL && t->device != c->device)
    return vox_errorf(VOX_ERR_INVALID, "comm %s: the %s communicator takes %s tensors, got %s on %s", op,
                      vox_comm_kind_name(c->kind), vox_device_name(c->device), vox_tensor_describe(t, b, sizeof b),
                      vox_device_name(t->device));
  if (expect >= 0 && vox_tensor_numel(t) != expect)
    return vox_errorf(VOX_ERR_SHAPE, "comm %s: expected %lld elements, got %s", op, (long long)expect,
                      vox_tensor_describe(t, b, sizeof b));
  return VOX_OK;
}

/* ---- local communicator: world 1, collectives are identities (copies where in and out differ) ---- */

static vox_status local_allreduce(vox_comm *c, vox_tensor *t, vox_comm_op op, vox_comm_req **req) {
  if (req) *req = NULL;
  return vox_comm_check_tensor(c, "allreduce", t, -1);
}
static vox_status local_reduce_scatter(vox_comm *c, const vox_tensor *in, vox_tensor *out, vox_comm_op op,
                                       vox_comm_req **req) {
  if (req) *req = NULL;
  VOX_TRY(vox_comm_check_tensor(c, "reduce_scatter", in, -1));
  VOX_TRY(vox_comm_check_tensor(c, "reduce_scatter", out, vox_tensor_numel(in)));
  return in == out ? VOX_OK : vox_tensor_copy_(out, in);
}
static vox_status local_allgather(vox_comm *c, const vox_tensor *in, vox_tensor *out) {
  VOX_TRY(vox_comm_check_tensor(c, "allgather", in, -1));
  VOX_TRY(vox_comm_check_tensor(c, "allgather", out, vox_tensor_numel(in)));
  return in == out ? VOX_OK : vox_tensor_copy_(out, in);
}
static vox_status local_broadcast(vox_comm *c, vox_tensor *t, int root) {
  return vox_comm_check_tensor(c, "broadcast", t, -1);
}
static vox_status local_wait(vox_comm *c, vox_comm_req *req) { return VOX_OK; }
static void local_progress(vox_comm *c) {}
static vox_status local_allreduce_f64(vox_comm *c, double *v, int n, vox_comm_op op) { return VOX_OK; }
static vox_status local_broadcast_host(vox_comm *c, void *data, size_t nbytes, int root) { return VOX_OK; }
static vox_status local_barrier(vox_comm *c) { return VOX_OK; }
static void local_abort(vox_comm *c, int code) {}
static void local_destroy(vox_comm *c) {}

static const vox_comm_vtable local_vt = {
    .allreduce = local_allreduce, .reduce_scatter = local_reduce_scatter, .allgather = local_allgather,
    .broadcast = local_broadcast, .wait = local_wait, .progress = local_progress,
    .allreduce_host_f64 = local_allreduce_f64, .broadcast_host = local_broadcast_host, .barrier = local_barrier,
    .abort = local_abort, .destroy = local_destroy};

vox_status vox_comm_local_new(vox_comm **out) {
  vox_comm *c = calloc(1, sizeof *c);
  if (!c) return vox_errorf(VOX_ERR_NOMEM, "comm: out of memory");
  c->vt = &local_vt;
  c->kind = VOX_COMM_LOCAL;
  c->device = VOX_CPU;
  c->world = c->local_world = 1;
  *out = c;
  return VOX_OK;
}

#ifndef VOX_HAVE_MPI
vox_status vox_comm_mpi_new(vox_comm **out) {
  *out = NULL;
  return vox_errorf(VOX_ERR_UNSUPPORTED, "comm: this build has no MPI (install an MPI and rebuild)");
}
#endif
#if !defined(VOX_HAVE_NCCL)
vox_status vox_comm_nccl_new(vox_comm **out) {
  *out = NULL;
  return vox_errorf(VOX_ERR_UNSUPPORTED, "comm: this build has no NCCL (needs CUDA, NCCL and MPI at build time)");
}
#endif

vox_status vox_comm_init(vox_device device, vox_comm **out) {
  *out = NULL;
  const char *force = getenv("VOX_COMM"); /* local | mpi | nccl: overrides the automatic choice */
  int world = vox_comm_env_world_size();
  if (force && *force) {
    if (!strcmp(force, "local")) return vox_comm_local_new(out);
    if (!strcmp(force, "mpi")) return vox_comm_mpi_new(out);
    if (!strcmp(force, "nccl")) return vox_comm_nccl_new(out);
    return vox_errorf(VOX_ERR_INVALID, "comm: VOX_COMM='%s' is not one of local, mpi, nccl", force);
  }
  if (world <= 1) return vox_comm_local_new(out);
  vox_status st = device == VOX_CUDA ? vox_comm_nccl_new(out) : vox_comm_mpi_new(out);
  if (st != VOX_OK)
    return vox_error_context(st, "comm: launched with %d ranks for %s training: ", world, vox_device_name(device));
  vox_log_debug("comm: %s rank %d of %d (local %d of %d)", vox_comm_kind_name((*out)->kind), (*out)->rank,
                (*out)->world, (*out)->local_rank, (*out)->local_world);
  return VOX_OK;
}

void vox_comm_free(vox_comm *c) {
  if (!c) return;
  c->vt->destroy(c);
  free(c);
}

vox_comm_kind vox_comm_get_kind(const vox_comm *c) { return c ? c->kind : VOX_COMM_LOCAL; }
const char *vox_comm_kind_name(vox_comm_kind kind) {
  return kind == VOX_COMM_MPI ? "mpi" : kind == VOX_COMM_NCCL ? "nccl" : "local";
}
int vox_comm_rank(const vox_comm *c) { return c ? c->rank : 0; }
int vox_comm_world(const vox_comm *c) { return c ? c->world : 1; }
int vox_comm_local_rank(const vox_comm *c) { return c ? c->local_rank : 0; }
int vox_comm_local_world(const vox_comm *c) { return c ? c->local_world : 1; }
vox_device vox_comm_device(const vox_comm *c) { return c ? c->device : VOX_CPU; }

vox_status vox_comm_allreduce(vox_comm *c, vox_tensor *t, vox_comm_op op) { return c->vt->allreduce(c, t, op, NULL); }
vox_status vox_comm_allreduce_async(vox_comm *c, vox_tensor *t, vox_comm_op op, vox_comm_req **req) {
  return c->vt->allreduce(c, t, op, req);
}
vox_status vox_comm_reduce_scatter(vox_comm *c, const vox_tensor *in, vox_tensor *out, vox_comm_op op) {
  return c->vt->reduce_scatter(c, in, out, op, NULL);
}
vox_status vox_comm_reduce_scatter_async(vox_comm *c, const vox_tensor *in, vox_tensor *out, vox_comm_op op,
                                         vox_comm_req **req) {
  return c->vt->reduce_scatter(c, in, out, op, req);
}
vox_status vox_comm_allgather(vox_comm *c, const vox_tensor *in, vox_tensor *out) {
  return c->vt->allgather(c, in, out);
}
vox_status vox_comm_broadcast(vox_comm *c, vox_tensor *t, int root) { return c->vt->broadcast(c, t, root); }
vox_status vox_comm_wait(vox_comm *c, vox_comm_req *req) { return req ? c->vt->wait(c, req) : VOX_OK; }
void vox_comm_progress(vox_comm *c) {
  if (c) c->vt->progress(c);
}
vox_status vox_comm_allreduce_host_f64(vox_comm *c, double *values, int n, vox_comm_op op) {
  return c->vt->allreduce_host_f64(c, values, n, op);
}
vox_status vox_comm_broadcast_host(vox_comm *c, void *data, size_t nbytes, int root) {
  return c->vt->broadcast_host(c, data, nbytes, root);
}
vox_status vox_comm_barrier(vox_comm *c) { return c->vt->barrier(c); }

vox_status vox_comm_broadcast_string(vox_comm *c, char **s, int root) {
  if (!c || c->world == 1) return VOX_OK;
  int64_t len = (c->rank == root) ? (*s ? (int64_t)strlen(*s) : -1) : 0;
  VOX_TRY(c->vt->broadcast_host(c, &len, sizeof len, root));
  if (c->rank != root) {
    free(*s);
    *s = NULL;
    if (len < 0) return VOX_OK;
    *s = malloc((size_t)len + 1);
    if (!*s) return vox_errorf(VOX_ERR_NOMEM, "comm broadcast_string: out of memory for %lld bytes", (long long)len);
    (*s)[len] = 0;
  }
  if (len <= 0) return VOX_OK;
  return c->vt->broadcast_host(c, *s, (size_t)len, root);
}

void vox_comm_abort(vox_comm *c, int code, const char *message) {
  if (!c || c->kind == VOX_COMM_LOCAL) return;
  fprintf(stderr, "vox: rank %d of %d failed, aborting the job: %s\n", c->rank, c->world,
          message && *message ? message : "(no message)");
  fflush(stderr);
  c->vt->abort(c, code ? code : 1);
}
