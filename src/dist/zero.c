/* ZeRO-1: each rank keeps the optimizer state of its part of every gradient bucket, updates those parameter
 * elements with the optimizer's kernels (vox_optim_step_range) and all-gathers the buckets' parameters; state
 * checkpoints are gathered to / broadcast from rank 0 in unsharded form. */
#include <stdlib.h>
#include <string.h>

#include "core/backend.h"
#include "core/kernel_params.h"
#include "dist/ddp_internal.h"
#include "dist/zero.h"

static int64_t shard_len(const vox_ddp *d, const ddp_bucket *b) { return b->padded / vox_comm_world(d->comm); }

vox_status vox_zero_setup(vox_ddp *d) {
  int world = vox_comm_world(d->comm), rank = vox_comm_rank(d->comm), slots = vox_optim_slot_count(d->opt);
  for (int bi = 0; bi < d->n_buckets; bi++) {
    ddp_bucket *b = &d->buckets[bi];
    int64_t S = b->padded / world, lo = (int64_t)rank * S, hi = lo + S;
    int64_t shape[1] = {S};
    VOX_TRY(vox_tensor_zeros(VOX_F32, b->buf->device, 1, shape, &b->shard));
    for (int k = 0; k < slots; k++) VOX_TRY(vox_tensor_zeros(VOX_F32, b->buf->device, 1, shape, &b->state[k]));
    b->pieces = calloc((size_t)(b->count ? b->count : 1), sizeof *b->pieces);
    if (!b->pieces) return vox_errorf(VOX_ERR_NOMEM, "zero: out of memory");
    for (int k = b->first; k < b->first + b->count; k++) {
      const ddp_slot *s = &d->slots[k];
      int64_t a = s->offset > lo ? s->offset : lo, e = s->offset + s->numel < hi ? s->offset + s->numel : hi;
      if (a >= e) continue;
      b->pieces[b->n_pieces++] = (zero_piece){.slot = k, .param_start = a - s->offset, .shard_start = a - lo,
                                              .count = e - a};
    }
  }
  /* State already in the optimizer (restored from a checkpoint before sharding): keep this rank's part. */
  for (int bi = 0; bi < d->n_buckets; bi++) {
    ddp_bucket *b = &d->buckets[bi];
    for (int i = 0; i < b->n_pieces; i++)
      for (int k = 0; k < slots; k++) {
        const zero_piece *pc = &b->pieces[i];
        vox_tensor *full = d->opt->entries[d->slots[pc->slot].entry].state[k], *src = NULL, *dst = NULL;
        if (!full) continue;
        vox_status st = vox_ddp_flat_view(full, pc->param_start, pc->count, &src);
        if (st == VOX_OK) st = vox_ddp_flat_view(b->state[k], pc->shard_start, pc->count, &dst);
        if (st == VOX_OK) st = vox_tensor_copy_(dst, src);
        vox_tensor_release(src);
        vox_tensor_release(dst);
        VOX_TRY(st);
      }
  }
  vox_optim_drop_state(d->opt);
  return VOX_OK;
}

void vox_zero_release(vox_ddp *d) {
  for (int bi = 0; bi < d->n_buckets; bi++) {
    ddp_bucket *b = &d->buckets[bi];
    vox_tensor_drop(&b->shard);
    vox_tensor_drop(&b->state[0]);
    vox_tensor_drop(&b->state[1]);
    free(b->pieces);
    b->pieces = NULL;
  }
}

int64_t vox_zero_shard_numel(const vox_ddp *d) {
  if (!d || !d->opts.zero) return 0;
  int64_t n = 0;
  for (int bi = 0; bi < d->n_buckets; bi++) n += shard_len(d, &d->buckets[bi]);
  return n;
}

vox_status vox_zero_local_sumsq(vox_ddp *d, double *sumsq) {
  *sumsq = 0;
  for (int bi = 0; bi < d->n_buckets; bi++) {
    vox_tensor *g = d->buckets[bi].shard, *s = NULL;
    int64_t one[1] = {1};
    VOX_TRY(vox_tensor_empty(VOX_F32, g->device, 1, one, &s));
    vox_reduce_params p = {.op = VOX_RED_SUMSQ, .dims = 1u};
    vox_kernel_args a = {.n_in = 1, .n_out = 1, .in = {g}, .out = {s}, .params = &p};
    double v = 0;
    vox_status st = vox_kernel_run("zero grad norm", VOX_K_REDUCE, &a);
    if (st == VOX_OK) st = vox_tensor_item(s, &v);
    vox_tensor_release(s);
    VOX_TRY(st);
    *sumsq += v;
  }
  return VOX_OK;
}

vox_status vox_zero_scale_grads(vox_ddp *d, double coef) {
  for (int bi = 0; bi < d->n_buckets; bi++) {
    vox_tensor *g = d->buckets[bi].shard;
    vox_unary_params p = {.op = VOX_UN_AFFINE, .alpha = coef, .beta = 0.0};
    vox_kernel_args a = {.n_in = 1, .n_out = 1, .in = {g}, .out = {g}, .params = &p};
    VOX_TRY(vox_kernel_run("zero clip grad norm", VOX_K_UNARY, &a));
  }
  return VOX_OK;
}

/* Copies this rank's piece `pc` of a parameter into / out of the bucket-wide buffer `buf` at the rank's part. */
static vox_status piece_copy(vox_ddp *d, ddp_bucket *b, const zero_piece *pc, vox_tensor *buf, bool to_buf) {
  vox_tensor *param = d->opt->entries[d->slots[pc->slot].entry].param, *pv = NULL, *bv = NULL;
  int64_t base = (int64_t)vox_comm_rank(d->comm) * shard_len(d, b);
  vox_status st = vox_ddp_flat_view(param, pc->param_start, pc->count, &pv);
  if (st == VOX_OK) st = vox_ddp_flat_view(buf, base + pc->shard_start, pc->count, &bv);
  if (st == VOX_OK) st = to_buf ? vox_tensor_copy_(bv, pv) : vox_tensor_copy_(pv, bv);
  vox_tensor_release(pv);
  vox_tensor_release(bv);
  return st;
}

/* All-gathers the bucket's parts (each rank's part already in place in buf). */
static vox_status gather_bucket(vox_ddp *d, ddp_bucket *b, vox_tensor *buf) {
  int64_t S = shard_len(d, b);
  vox_tensor *mine = NULL;
  VOX_TRY(vox_ddp_flat_view(buf, (int64_t)vox_comm_rank(d->comm) * S, S, &mine));
  vox_status st = vox_comm_allgather(d->comm, mine, buf);
  vox_tensor_release(mine);
  return st;
}

vox_status vox_zero_step(vox_ddp *d) {
  int slots = vox_optim_slot_count(d->opt);
  for (int bi = 0; bi < d->n_buckets; bi++) {
    ddp_bucket *b = &d->buckets[bi];
    for (int i = 0; i < b->n_pieces; i++) {
      const zero_piece *pc = &b->pieces[i];
      if (!d->slots[pc->slot].present) continue; /* no rank had a gradient: skipped, as by vox_optim_step */
      vox_tensor *g = NULL, *state[2] = {NULL, NULL};
      vox_status st = vox_ddp_flat_view(b->shard, pc->shard_start, pc->count, &g);
      for (int k = 0; k < slots && st == VOX_OK; k++)
        st = vox_ddp_flat_view(b->state[k], pc->shard_start, pc->count, &state[k]);
      if (st == VOX_OK)
        st = vox_optim_step_range(d->opt, d->slots[pc->slot].entry, pc->param_start, pc->count, g, state);
      vox_tensor_release(g);
      vox_tensor_release(state[0]);
      vox_tensor_release(state[1]);
      VOX_TRY(st);
    }
  }
  d->opt->step++;
  /* Every rank's updated part goes to all ranks; buf is free after the reduce-scatter. */
  for (int bi = 0; bi < d->n_buckets; bi++) {
    ddp_bucket *b = &d->buckets[bi];
    for (int i = 0; i < b->n_pieces; i++) VOX_TRY(piece_copy(d, b, &b->pieces[i], b->buf, true));
    vox_status st = gather_bucket(d, b, b->buf);
    if (st != VOX_OK) return vox_error_context(st, "zero: all-gather of bucket %d: ", bi);
    for (int k = b->first; k < b->first + b->count; k++) {
      const ddp_slot *s = &d->slots[k];
      vox_tensor *param = d->opt->entries[s->entry].param, *src = NULL, *dst = NULL;
      st = vox_ddp_flat_view(b->buf, s->offset, s->numel, &src);
      if (st == VOX_OK) st = vox_ddp_flat_view(param, 0, s->numel, &dst);
      if (st == VOX_OK) st = vox_tensor_copy_(dst, src);
      vox_tensor_release(src);
      vox_tensor_release(dst);
      VOX_TRY(st);
    }
  }
  return VOX_OK;
}

/* A view of slot k's region of buf shaped like its parameter. */
static vox_status region_as_param(vox_ddp *d, const ddp_slot *s, vox_tensor *buf, vox_tensor **out) {
  const vox_tensor *param = d->opt->entries[s->entry].param;
  vox_tensor *flat = NULL;
  VOX_TRY(vox_ddp_flat_view(buf, s->offset, s->numel, &flat));
  vox_status st = vox_tensor_view_reshape(flat, param->ndim, param->shape, out);
  vox_tensor_release(flat);
  return st;
}

/* Copies state slot k between the rank's part of buf and the shard state. */
static vox_status shard_state_copy(vox_ddp *d, ddp_bucket *b, int k, bool to_buf) {
  int64_t S = shard_len(d, b);
  vox_tensor *mine = NULL;
  VOX_TRY(vox_ddp_flat_view(b->buf, (int64_t)vox_comm_rank(d->comm) * S, S, &mine));
  vox_status st = to_buf ? vox_tensor_copy_(mine, b->state[k]) : vox_tensor_copy_(b->state[k], mine);
  vox_tensor_release(mine);
  return st;
}

/* Between steps every bucket buffer is scratch (the parameters were copied out after the all-gather). */
vox_status vox_zero_state_save(vox_ddp *d, vox_ddp_state_save_fn fn, void *ctx) {
  int slots = vox_optim_slot_count(d->opt);
  bool root = vox_comm_is_root(d->comm);
  for (int bi = 0; bi < d->n_buckets; bi++) {
    ddp_bucket *b = &d->buckets[bi];
    for (int k = 0; k < slots; k++) {
      VOX_TRY(shard_state_copy(d, b, k, true));
      VOX_TRY(gather_bucket(d, b, b->buf));
      if (!root) continue;
      for (int j = b->first; j < b->first + b->count; j++) {
        vox_tensor *full = NULL;
        VOX_TRY(region_as_param(d, &d->slots[j], b->buf, &full));
        vox_status st = fn(ctx, d->opt->entries[d->slots[j].entry].name, vox_optim_slot_name(d->opt, k), full);
        vox_tensor_release(full);
        VOX_TRY(st);
      }
    }
  }
  return VOX_OK;
}

vox_status vox_zero_state_load(vox_ddp *d, vox_ddp_state_load_fn fn, void *ctx) {
  int slots = vox_optim_slot_count(d->opt);
  bool root = vox_comm_is_root(d->comm);
  for (int bi = 0; bi < d->n_buckets; bi++) {
    ddp_bucket *b = &d->buckets[bi];
    for (int k = 0; k < slots; k++) {
      vox_status st = VOX_OK;
      if (root) {
        st = vox_tensor_fill_(b->buf, 0.0);
        for (int j = b->first; j < b->first + b->count && st == VOX_OK; j++) {
          vox_tensor *full = NULL;
          st = region_as_param(d, &d->slots[j], b->buf, &full);
          if (st == VOX_OK) st = fn(ctx, d->opt->entries[d->slots[j].entry].name, vox_optim_slot_name(d->opt, k), full);
          if (st == VOX_ERR_NOT_FOUND) { /* absent from the checkpoint: fresh (zero) state */
            vox_error_clear();
            st = vox_tensor_fill_(full, 0.0);
          }
          vox_tensor_release(full);
        }
      }
      VOX_TRY(vox_ddp_agree(d->comm, st, "loading the optimizer state"));
      VOX_TRY(vox_comm_broadcast(d->comm, b->buf, 0));
      VOX_TRY(shard_state_copy(d, b, k, false));
    }
  }
  return VOX_OK;
}
