/* The data-parallel engine's state, shared by ddp.c (buckets, hooks, gradient exchange) and zero.c (the ZeRO-1
 * sharded optimizer over the same buckets). Not part of the public API. */
#ifndef VOX_DIST_DDP_INTERNAL_H
#define VOX_DIST_DDP_INTERNAL_H

#include "dist/ddp.h"

typedef struct ddp_slot {
  struct vox_ddp *d;
  int entry;       /* optimizer entry index */
  int bucket;
  int64_t offset;  /* first element in the bucket */
  int64_t numel;
  bool ready;      /* gradient copied into the bucket during this step */
  bool present;    /* after finish: some rank had a gradient (else the step skips it) */
} ddp_slot;

/* A contiguous element range of one entry's parameter inside this rank's shard of a bucket (ZeRO-1). */
typedef struct zero_piece {
  int slot;
  int64_t param_start; /* first element in the flattened parameter */
  int64_t shard_start; /* first element in the bucket's shard */
  int64_t count;
} zero_piece;

typedef struct ddp_bucket {
  int first, count;     /* slots[first .. first + count) */
  int64_t numel;        /* sum of the slots' elements */
  int64_t padded;       /* numel rounded up to a multiple of the world size (the reduce-scatter needs equal parts) */
  vox_tensor *buf;      /* [padded] gradients in, averages out (replicated mode); also the all-gather target */
  vox_tensor *shard;    /* ZeRO-1: [padded / world], this rank's averaged gradient part */
  vox_tensor *state[2]; /* ZeRO-1: [padded / world] optimizer state slices */
  zero_piece *pieces;   /* ZeRO-1: what the shard holds */
  int n_pieces;
  int n_ready;
  bool launched;
  vox_comm_req *req;
} ddp_bucket;

struct vox_ddp {
  vox_comm *comm;
  vox_optim *opt;
  vox_ddp_opts opts;
  bool active;          /* false: world 1 without ZeRO (plain optimizer) */
  ddp_slot *slots;      /* in bucket order (reverse registration) */
  int n_slots;
  int *slot_of_entry;   /* entry index -> slot index */
  ddp_bucket *buckets;
  int n_buckets;
  int next_launch;      /* buckets launch in index order */
  bool sync;
  bool finished;        /* finish_grads ran for this step */
  int overlapped;
  vox_status error;     /* first failure inside a hook, reported by finish_grads */
  char error_msg[512];
};

/* Zero-1 parts (zero.c). */
vox_status vox_zero_setup(vox_ddp *d);
void vox_zero_release(vox_ddp *d);
/* Sum of squares of this rank's shard of the averaged gradients (not yet scaled by grad_scale). */
vox_status vox_zero_local_sumsq(vox_ddp *d, double *sumsq);
vox_status vox_zero_scale_grads(vox_ddp *d, double coef);
/* The sharded update and the all-gather of the parameters; advances opt->step. */
vox_status vox_zero_step(vox_ddp *d);
vox_status vox_zero_state_save(vox_ddp *d, vox_ddp_state_save_fn fn, void *ctx);
vox_status vox_zero_state_load(vox_ddp *d, vox_ddp_state_load_fn fn, void *ctx);

/* Broadcasts rank 0's status `st` of a step that only rank 0 ran (reading a file) and returns it on every rank
 * (other ranks get an error naming `what`). Collective. */
vox_status vox_ddp_agree(vox_comm *comm, vox_status st, const char *what);
/* A 1-D view of elements [start, start + count) of a contiguous tensor. */
vox_status vox_ddp_flat_view(const vox_tensor *t, int64_t start, int64_t count, vox_tensor **out);

#endif
