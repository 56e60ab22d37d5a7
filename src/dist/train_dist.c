/* The trainer's data-parallel hooks: one DDP (or ZeRO-1) engine per stage optimizer, overlapped gradient exchange
 * on the last micro-batch, checkpoint-time gathering of sharded optimizer state, resume agreement and the data
 * position translation across world sizes. */
#include "dist/train_dist.h"

#include <stdlib.h>
#include <string.h>

#include "dist/ddp_internal.h"

struct vox_train_dist_ctx {
  vox_comm *comm;
  vox_ddp_opts opts;
  vox_ddp *ddp; /* of the current stage's optimizer */
};

static vox_status h_allreduce_grads(void *c, vox_optim *opt) {
  vox_train_dist_ctx *x = c;
  return x->ddp ? vox_ddp_finish_grads(x->ddp) : VOX_OK;
}
static vox_status h_allreduce_sum(void *c, double *v, int n) {
  return vox_comm_allreduce_host_f64(((vox_train_dist_ctx *)c)->comm, v, n, VOX_COMM_SUM);
}
static vox_status h_attach(void *c, vox_optim *opt) {
  vox_train_dist_ctx *x = c;
  vox_ddp_free(x->ddp);
  x->ddp = NULL;
  return vox_ddp_new(x->comm, opt, &x->opts, &x->ddp);
}
static void h_detach(void *c, vox_optim *opt) {
  vox_train_dist_ctx *x = c;
  vox_ddp_free(x->ddp);
  x->ddp = NULL;
}
static void h_begin_micro(void *c, int64_t k, int64_t accum) {
  vox_train_dist_ctx *x = c;
  if (!x->ddp) return;
  if (k == 0) vox_ddp_begin_step(x->ddp);
  vox_ddp_set_sync(x->ddp, k == accum - 1);
}
static vox_status h_clip(void *c, vox_optim *opt, double max_norm, double *norm) {
  vox_train_dist_ctx *x = c;
  return x->ddp ? vox_ddp_clip_grad_norm(x->ddp, max_norm, norm) : vox_optim_clip_grad_norm(opt, max_norm, norm);
}
static vox_status h_step(void *c, vox_optim *opt) {
  vox_train_dist_ctx *x = c;
  return x->ddp ? vox_ddp_optim_step(x->ddp) : vox_optim_step(opt);
}
static vox_status h_before_ckpt(void *c, vox_optim *opt) {
  vox_train_dist_ctx *x = c;
  return x->ddp ? vox_ddp_materialize_state(x->ddp) : VOX_OK;
}
static vox_status h_after_ckpt(void *c, vox_optim *opt) {
  vox_train_dist_ctx *x = c;
  if (x->ddp) vox_ddp_release_materialized_state(x->ddp);
  return vox_comm_barrier(x->comm);
}
static vox_status h_agree_resume(void *c, char **path, int *stage, int64_t *step) {
  vox_train_dist_ctx *x = c;
  int64_t v[2] = {*stage, *step};
  VOX_TRY(vox_comm_broadcast_string(x->comm, path, 0));
  VOX_TRY(vox_comm_broadcast_host(x->comm, v, sizeof v, 0));
  *stage = (int)v[0];
  *step = v[1];
  return VOX_OK;
}
static vox_status h_translate(void *c, int64_t saved_world, vox_task_pos *pos) {
  vox_train_dist_translate_pos(pos->v, pos->n, saved_world, vox_comm_world(((vox_train_dist_ctx *)c)->comm));
  return VOX_OK;
}

void vox_train_dist_translate_pos(int64_t *v, int n, int64_t saved_world, int64_t world) {
  if (saved_world < 1) saved_world = 1;
  if (world < 1) world = 1;
  for (int i = 1; i < n; i += 2) v[i] = v[i] * saved_world / world;
}

vox_status vox_train_dist_new(const vox_config *root, vox_device device, vox_train_dist_ctx **out, vox_train_dist *seam) {
  *out = NULL;
  memset(seam, 0, sizeof *seam);
  vox_ddp_opts o = vox_ddp_opts_default();
  vox_config *node = vox_config_get(root, "distributed");
  if (node) {
    static const char *const keys[] = {"bucket_mb", "zero", NULL};
    int64_t zero = 0;
    VOX_TRY(vox_config_check_keys(node, keys));
    VOX_TRY(vox_config_float(node, "bucket_mb", o.bucket_mb, &o.bucket_mb));
    VOX_TRY(vox_config_int(node, "zero", 0, &zero));
    char w[256];
    if (zero != 0 && zero != 1)
      return vox_errorf(VOX_ERR_INVALID, "%s: distributed.zero must be 0 or 1 (ZeRO stage), got %lld",
                        vox_config_where(node, w, sizeof w), (long long)zero);
    if (!(o.bucket_mb > 0))
      return vox_errorf(VOX_ERR_INVALID, "%s: distributed.bucket_mb must be > 0", vox_config_where(node, w, sizeof w));
    o.zero = (int)zero;
  }
  vox_train_dist_ctx *x = calloc(1, sizeof *x);
  if (!x) return vox_errorf(VOX_ERR_NOMEM, "train dist: out of memory");
  x->opts = o;
  vox_status st = vox_comm_init(device, &x->comm);
  if (st != VOX_OK) {
    free(x);
    return st;
  }
  *seam = (vox_train_dist){.rank = vox_comm_rank(x->comm), .world_size = vox_comm_world(x->comm), .comm = x,
                           .allreduce_grads = h_allreduce_grads, .allreduce_sum = h_allreduce_sum,
                           .attach = h_attach, .detach = h_detach, .begin_micro_batch = h_begin_micro,
                           .clip_grad_norm = h_clip, .optim_step = h_step, .before_checkpoint = h_before_ckpt,
                           .after_checkpoint = h_after_ckpt, .agree_resume = h_agree_resume,
                           .translate_position = h_translate};
  *out = x;
  return VOX_OK;
}

void vox_train_dist_free(vox_train_dist_ctx *x) {
  if (!x) return;
  vox_ddp_free(x->ddp);
  vox_comm_free(x->comm);
  free(x);
}

vox_comm *vox_train_dist_comm(const vox_train_dist_ctx *x) { return x ? x->comm : NULL; }

void vox_train_dist_abort(vox_train_dist_ctx *x, const char *message) {
  if (x) vox_comm_abort(x->comm, 1, message);
}
