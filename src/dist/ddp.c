/* Data-parallel gradient exchange: buckets in reverse registration order, gradient hooks that launch each bucket's
 * non-blocking average as soon as it is complete (in bucket order), the finish before the optimizer step, and the
 * replicated step; the ZeRO-1 step lives in zero.c. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "dist/ddp_internal.h"
#include "dist/zero.h"

vox_ddp_opts vox_ddp_opts_default(void) {
  return (vox_ddp_opts){.bucket_mb = 25.0, .zero = 0, .broadcast_params = true};
}

vox_status vox_ddp_flat_view(const vox_tensor *t, int64_t start, int64_t count, vox_tensor **out) {
  char b[96];
  if (!vox_tensor_is_contiguous(t) || start < 0 || start + count > vox_tensor_numel(t))
    return vox_errorf(VOX_ERR_INVALID, "ddp: flat view [%lld, %lld) of %s (must be contiguous and in range)",
                      (long long)start, (long long)(start + count), vox_tensor_describe(t, b, sizeof b));
  int64_t shape[1] = {count}, stride[1] = {1};
  return vox_tensor_view(t, 1, shape, stride, t->offset + start, out);
}

/* Copies between a whole (contiguous) tensor and its region of a bucket. */
static vox_status copy_region(vox_tensor *bucket_buf, int64_t offset, vox_tensor *t, bool to_bucket) {
  int64_t n = vox_tensor_numel(t);
  vox_tensor *region = NULL, *flat = NULL;
  vox_status st = vox_ddp_flat_view(bucket_buf, offset, n, &region);
  if (st == VOX_OK) st = vox_ddp_flat_view(t, 0, n, &flat);
  if (st == VOX_OK) st = to_bucket ? vox_tensor_copy_(region, flat) : vox_tensor_copy_(flat, region);
  vox_tensor_release(region);
  vox_tensor_release(flat);
  return st;
}

static vox_status fail_hook(vox_ddp *d, vox_status st) {
  if (d->error == VOX_OK) {
    d->error = st;
    snprintf(d->error_msg, sizeof d->error_msg, "%s", vox_last_error());
  }
  return st;
}

static vox_status launch(vox_ddp *d, ddp_bucket *b) {
  vox_status st = d->opts.zero ? vox_comm_reduce_scatter_async(d->comm, b->buf, b->shard, VOX_COMM_AVG, &b->req)
                               : vox_comm_allreduce_async(d->comm, b->buf, VOX_COMM_AVG, &b->req);
  if (st != VOX_OK) return vox_error_context(st, "ddp: launching bucket %d: ", (int)(b - d->buckets));
  b->launched = true;
  d->next_launch++;
  return VOX_OK;
}

/* Launches, in order, every bucket whose gradients are all in. */
static vox_status launch_ready(vox_ddp *d) {
  while (d->next_launch < d->n_buckets) {
    ddp_bucket *b = &d->buckets[d->next_launch];
    if (b->n_ready < b->count) break;
    VOX_TRY(launch(d, b));
  }
  return VOX_OK;
}

static void ddp_hook(vox_tensor *leaf, void *ctx) {
  ddp_slot *s = ctx;
  vox_ddp *d = s->d;
  if (!d->sync || d->error != VOX_OK) return;
  const char *name = d->opt->entries[s->entry].name;
  if (s->ready || d->finished) {
    fail_hook(d, vox_errorf(VOX_ERR_STATE,
                            "ddp: the gradient of '%s' changed after it was sent (a second synchronising backward "
                            "before the step? set_sync(false) for all but the last micro-batch)", name));
    return;
  }
  if (!leaf->grad || vox_tensor_numel(leaf->grad) != s->numel) {
    fail_hook(d, vox_errorf(VOX_ERR_STATE, "ddp: gradient hook of '%s' without a matching gradient", name));
    return;
  }
  vox_status st = copy_region(d->buckets[s->bucket].buf, s->offset, leaf->grad, true);
  if (st != VOX_OK) {
    fail_hook(d, vox_error_context(st, "ddp: bucketing the gradient of '%s': ", name));
    return;
  }
  s->ready = true;
  d->buckets[s->bucket].n_ready++;
  st = launch_ready(d);
  if (st != VOX_OK) fail_hook(d, st);
  d->overlapped = d->next_launch;
  vox_comm_progress(d->comm);
}

static vox_status build_buckets(vox_ddp *d) {
  vox_optim *opt = d->opt;
  int n = opt->n_entries, world = vox_comm_world(d->comm);
  d->slots = calloc((size_t)(n ? n : 1), sizeof *d->slots);
  d->slot_of_entry = calloc((size_t)(n ? n : 1), sizeof *d->slot_of_entry);
  d->buckets = calloc((size_t)(n ? n : 1), sizeof *d->buckets);
  if (!d->slots || !d->slot_of_entry || !d->buckets) return vox_errorf(VOX_ERR_NOMEM, "ddp: out of memory");
  double mb = d->opts.bucket_mb > 0 ? d->opts.bucket_mb : 25.0;
  int64_t cap = (int64_t)(mb * 1024.0 * 1024.0 / 4.0);
  if (cap < 1) cap = 1;
  ddp_bucket *cur = NULL;
  for (int k = 0; k < n; k++) {
    int e = n - 1 - k; /* reverse registration order: backward finishes the last layers first */
    vox_tensor *p = opt->entries[e].param;
    if (!cur || cur->numel >= cap) {
      cur = &d->buckets[d->n_buckets++];
      cur->first = k;
    }
    ddp_slot *s = &d->slots[k];
    s->d = d;
    s->entry = e;
    s->bucket = (int)(cur - d->buckets);
    s->offset = cur->numel;
    s->numel = vox_tensor_numel(p);
    cur->numel += s->numel;
    cur->count++;
    d->slot_of_entry[e] = k;
    d->n_slots++;
  }
  vox_device dev = n ? opt->entries[0].param->device : VOX_CPU;
  for (int b = 0; b < d->n_buckets; b++) {
    ddp_bucket *bk = &d->buckets[b];
    bk->padded = (bk->numel + world - 1) / world * world;
    int64_t shape[1] = {bk->padded};
    VOX_TRY(vox_tensor_zeros(VOX_F32, dev, 1, shape, &bk->buf));
  }
  return VOX_OK;
}

vox_status vox_ddp_new(vox_comm *comm, vox_optim *opt, const vox_ddp_opts *opts, vox_ddp **out) {
  char b1[96];
  *out = NULL;
  vox_ddp_opts o = opts ? *opts : vox_ddp_opts_default();
  if (o.zero != 0 && o.zero != 1)
    return vox_errorf(VOX_ERR_INVALID, "ddp: zero stage %d is not supported (0 or 1)", o.zero);
  if (o.zero && opt->cfg.kind != VOX_OPTIM_ADAMW && vox_optim_slot_count(opt) == 0)
    vox_log_info("ddp: ZeRO-1 with a stateless optimizer shards nothing");
  for (int i = 0; i < opt->n_entries; i++) {
    vox_tensor *p = opt->entries[i].param;
    if (p->device != opt->entries[0].param->device)
      return vox_errorf(VOX_ERR_INVALID, "ddp: parameters on several devices ('%s' on %s, '%s' on %s)",
                        opt->entries[0].name, vox_device_name(opt->entries[0].param->device), opt->entries[i].name,
                        vox_device_name(p->device));
    if (vox_comm_get_kind(comm) != VOX_COMM_LOCAL && p->device != vox_comm_device(comm))
      return vox_errorf(VOX_ERR_INVALID, "ddp: '%s' is %s on %s but the %s communicator works on %s",
                        opt->entries[i].name, vox_tensor_describe(p, b1, sizeof b1), vox_device_name(p->device),
                        vox_comm_kind_name(vox_comm_get_kind(comm)), vox_device_name(vox_comm_device(comm)));
    if (p->grad_hook)
      return vox_errorf(VOX_ERR_STATE, "ddp: '%s' already has a gradient hook", opt->entries[i].name);
  }
  vox_ddp *d = calloc(1, sizeof *d);
  if (!d) return vox_errorf(VOX_ERR_NOMEM, "ddp: out of memory");
  d->comm = comm;
  d->opt = opt;
  d->opts = o;
  d->sync = true;
  d->active = vox_comm_world(comm) > 1 || o.zero;
  vox_status st = VOX_OK;
  if (o.broadcast_params && vox_comm_world(comm) > 1) st = vox_ddp_broadcast_params(d, 0);
  if (st == VOX_OK && d->active) st = build_buckets(d);
  if (st == VOX_OK && d->active && o.zero) st = vox_zero_setup(d);
  if (st != VOX_OK) {
    vox_ddp_free(d);
    return st;
  }
  if (d->active)
    for (int k = 0; k < d->n_slots; k++) {
      vox_tensor *p = opt->entries[d->slots[k].entry].param;
      p->grad_hook = ddp_hook;
      p->grad_hook_ctx = &d->slots[k];
    }
  if (d->active && vox_comm_is_root(comm))
    vox_log_info("ddp: %d ranks (%s), %d parameters in %d buckets of <= %.1f MiB, ZeRO-%d", vox_comm_world(comm),
                 vox_comm_kind_name(vox_comm_get_kind(comm)), d->n_slots, d->n_buckets, o.bucket_mb, o.zero);
  *out = d;
  return VOX_OK;
}

void vox_ddp_free(vox_ddp *d) {
  if (!d) return;
  for (int k = 0; k < d->n_slots; k++) {
    vox_tensor *p = d->opt->entries[d->slots[k].entry].param;
    if (p->grad_hook == ddp_hook && p->grad_hook_ctx == &d->slots[k]) {
      p->grad_hook = NULL;
      p->grad_hook_ctx = NULL;
    }
  }
  for (int b = 0; b < d->n_buckets; b++) {
    if (d->buckets[b].req) vox_comm_wait(d->comm, d->buckets[b].req);
    vox_tensor_release(d->buckets[b].buf);
  }
  if (d->opts.zero) vox_zero_release(d);
  free(d->buckets);
  free(d->slots);
  free(d->slot_of_entry);
  free(d);
}

void vox_ddp_set_sync(vox_ddp *d, bool sync) { d->sync = sync; }

vox_status vox_ddp_finish_grads(vox_ddp *d) {
  if (!d->active || d->finished) return VOX_OK;
  if (d->error != VOX_OK) return vox_errorf(d->error, "%s", d->error_msg);
  if (!d->sync)
    return vox_errorf(VOX_ERR_STATE, "ddp: finishing gradients after a non-synchronising backward (call "
                                     "vox_ddp_set_sync(d, true) before the last micro-batch's backward)");
  d->overlapped = d->next_launch;
  /* The buckets not launched yet. A parameter whose hook did not fire in the synchronising backward may still hold
   * a gradient accumulated by earlier micro-batches: that one is sent as it is; the others contribute zeros. */
  for (int bi = d->next_launch; bi < d->n_buckets; bi++) {
    ddp_bucket *b = &d->buckets[bi];
    for (int k = b->first; k < b->first + b->count; k++) {
      ddp_slot *s = &d->slots[k];
      if (s->ready) continue;
      vox_tensor *g = d->opt->entries[s->entry].param->grad;
      if (g) {
        VOX_TRY(copy_region(b->buf, s->offset, g, true));
        s->ready = true;
        continue;
      }
      vox_tensor *region = NULL;
      VOX_TRY(vox_ddp_flat_view(b->buf, s->offset, s->numel, &region));
      vox_status st = vox_tensor_fill_(region, 0.0);
      vox_tensor_release(region);
      VOX_TRY(st);
    }
    VOX_TRY(launch(d, b));
  }
  /* Which parameters got a gradient anywhere (overlaps with the bucket transfers). */
  double *present = malloc((size_t)(d->n_slots ? d->n_slots : 1) * sizeof *present);
  if (!present) return vox_errorf(VOX_ERR_NOMEM, "ddp: out of memory");
  for (int k = 0; k < d->n_slots; k++) present[k] = d->slots[k].ready ? 1.0 : 0.0;
  vox_status st = vox_comm_allreduce_host_f64(d->comm, present, d->n_slots, VOX_COMM_SUM);
  for (int k = 0; k < d->n_slots; k++) d->slots[k].present = present[k] > 0.5;
  free(present);
  for (int bi = 0; bi < d->n_buckets; bi++) {
    vox_status w = vox_comm_wait(d->comm, d->buckets[bi].req);
    d->buckets[bi].req = NULL;
    if (st == VOX_OK) st = w;
  }
  if (st != VOX_OK) return vox_error_context(st, "ddp: gradient exchange: ");
  if (!d->opts.zero) {
    for (int k = 0; k < d->n_slots; k++) {
      ddp_slot *s = &d->slots[k];
      vox_tensor *p = d->opt->entries[s->entry].param;
      if (!s->present) {
        vox_tensor_drop(&p->grad);
        continue;
      }
      if (!p->grad) VOX_TRY(vox_tensor_empty_like(p, &p->grad));
      VOX_TRY(copy_region(d->buckets[s->bucket].buf, s->offset, p->grad, false));
    }
  }
  d->finished = true;
  return VOX_OK;
}

static void reset_step(vox_ddp *d) {
  for (int k = 0; k < d->n_slots; k++) d->slots[k].ready = false;
  for (int b = 0; b < d->n_buckets; b++) {
    d->buckets[b].n_ready = 0;
    d->buckets[b].launched = false;
  }
  d->next_launch = 0;
  d->finished = false;
  d->sync = true;
}

void vox_ddp_begin_step(vox_ddp *d) {
  for (int b = 0; b < d->n_buckets; b++)
    if (d->buckets[b].req) { /* only after an error: drain it so the buffers can be reused */
      vox_comm_wait(d->comm, d->buckets[b].req);
      d->buckets[b].req = NULL;
    }
  reset_step(d);
  d->error = VOX_OK;
}

vox_status vox_ddp_clip_grad_norm(vox_ddp *d, double max_norm, double *norm) {
  if (!d->active || !d->opts.zero) {
    VOX_TRY(vox_ddp_finish_grads(d));
    return vox_optim_clip_grad_norm(d->opt, max_norm, norm);
  }
  VOX_TRY(vox_ddp_finish_grads(d));
  double sumsq = 0;
  VOX_TRY(vox_zero_local_sumsq(d, &sumsq));
  VOX_TRY(vox_comm_allreduce_host_f64(d->comm, &sumsq, 1, VOX_COMM_SUM));
  *norm = sqrt(sumsq) * fabs((double)d->opt->grad_scale);
  if (!isfinite(*norm)) return vox_errorf(VOX_ERR_NUMERIC, "ddp: global gradient norm is %g", *norm);
  if (max_norm > 0 && *norm > max_norm) VOX_TRY(vox_zero_scale_grads(d, max_norm / (*norm + 1e-6)));
  return VOX_OK;
}

vox_status vox_ddp_optim_step(vox_ddp *d) {
  vox_status st = VOX_OK;
  if (d->active) st = vox_ddp_finish_grads(d);
  if (st == VOX_OK) st = d->active && d->opts.zero ? vox_zero_step(d) : vox_optim_step(d->opt);
  reset_step(d);
  return st;
}

vox_status vox_ddp_step(vox_ddp *d, double max_norm, double *norm) {
  double nrm = 0;
  vox_status st = vox_ddp_clip_grad_norm(d, max_norm, &nrm);
  if (norm) *norm = nrm;
  if (st != VOX_OK) {
    reset_step(d);
    return st;
  }
  return vox_ddp_optim_step(d);
}

static vox_status materialize_fn(void *ctx, const char *param_name, const char *slot, const vox_tensor *full) {
  vox_tensor *dst = NULL;
  VOX_TRY(vox_optim_state_find(ctx, param_name, slot, &dst));
  return vox_tensor_copy_(dst, full);
}

vox_status vox_ddp_materialize_state(vox_ddp *d) {
  if (!d->active || !d->opts.zero) return VOX_OK;
  vox_optim *opt = d->opt;
  if (vox_comm_is_root(d->comm))
    for (int i = 0; i < opt->n_entries; i++)
      for (int k = 0; k < vox_optim_slot_count(opt); k++)
        if (!opt->entries[i].state[k]) VOX_TRY(vox_tensor_zeros_like(opt->entries[i].param, &opt->entries[i].state[k]));
  return vox_zero_state_save(d, materialize_fn, opt);
}

void vox_ddp_release_materialized_state(vox_ddp *d) {
  if (d->active && d->opts.zero) vox_optim_drop_state(d->opt);
}

vox_status vox_ddp_broadcast_params(vox_ddp *d, int root) {
  for (int i = 0; i < d->opt->n_entries; i++) {
    vox_status st = vox_comm_broadcast(d->comm, d->opt->entries[i].param, root);
    if (st != VOX_OK) return vox_error_context(st, "ddp: broadcasting '%s': ", d->opt->entries[i].name);
  }
  return VOX_OK;
}

int vox_ddp_num_buckets(const vox_ddp *d) { return d->n_buckets; }
int vox_ddp_bucket_entries(const vox_ddp *d, int b, int *idx, int cap, int64_t *numel) {
  if (b < 0 || b >= d->n_buckets) return 0;
  const ddp_bucket *bk = &d->buckets[b];
  for (int k = 0; k < bk->count && k < cap; k++) idx[k] = d->slots[bk->first + k].entry;
  if (numel) *numel = bk->numel;
  return bk->count;
}
int vox_ddp_overlapped_buckets(const vox_ddp *d) { return d->overlapped; }
vox_comm *vox_ddp_comm(const vox_ddp *d) { return d->comm; }
vox_optim *vox_ddp_optim(const vox_ddp *d) { return d->opt; }
int vox_ddp_zero_stage(const vox_ddp *d) { return d->opts.zero; }

/* ---- optimizer state across world sizes --------------------------------------------------------------- */

vox_status vox_ddp_state_save(vox_ddp *d, vox_ddp_state_save_fn fn, void *ctx) {
  if (d->active && d->opts.zero) return vox_zero_state_save(d, fn, ctx);
  /* Replicated: every rank holds the same complete state; rank 0 writes its own. */
  if (!vox_comm_is_root(d->comm)) return VOX_OK;
  vox_optim *opt = d->opt;
  for (int i = 0; i < vox_optim_state_count(opt); i++) {
    const char *name, *slot;
    vox_tensor *t;
    VOX_TRY(vox_optim_state_at(opt, i, &name, &slot, &t));
    VOX_TRY(fn(ctx, name, slot, t));
  }
  return VOX_OK;
}

/* Rank 0's outcome of a step every rank must agree on. */
vox_status vox_ddp_agree(vox_comm *comm, vox_status st, const char *what) {
  double code = (double)st;
  vox_status c = vox_comm_broadcast_host(comm, &code, sizeof code, 0);
  if (c != VOX_OK) return c;
  if (vox_comm_is_root(comm) || code == 0.0) return st;
  return vox_errorf((vox_status)code, "%s failed on rank 0 (see its message)", what);
}

vox_status vox_ddp_state_load(vox_ddp *d, vox_ddp_state_load_fn fn, void *ctx) {
  if (d->active && d->opts.zero) return vox_zero_state_load(d, fn, ctx);
  vox_optim *opt = d->opt;
  for (int i = 0; i < vox_optim_state_count(opt); i++) {
    const char *name, *slot;
    vox_tensor *t;
    VOX_TRY(vox_optim_state_at(opt, i, &name, &slot, &t));
    vox_status st = VOX_OK;
    if (vox_comm_is_root(d->comm)) {
      st = vox_tensor_fill_(t, 0.0);
      if (st == VOX_OK) st = fn(ctx, name, slot, t);
      if (st == VOX_ERR_NOT_FOUND) {
        vox_error_clear();
        st = vox_tensor_fill_(t, 0.0);
      }
    }
    VOX_TRY(vox_ddp_agree(d->comm, st, "loading the optimizer state"));
    VOX_TRY(vox_comm_broadcast(d->comm, t, 0));
  }
  return VOX_OK;
}

vox_status vox_dist_allreduce_avg(vox_comm *comm, vox_tensor *const *tensors, int n) {
  if (!comm || vox_comm_world(comm) == 1) return VOX_OK;
  for (int i = 0; i < n; i++) VOX_TRY(vox_comm_allreduce(comm, tensors[i], VOX_COMM_AVG));
  return VOX_OK;
}
