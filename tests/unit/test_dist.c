/* Distributed layer without MPI: launcher environment detection, the local communicator's collectives, bucket
 * layout in reverse registration order, ZeRO-1 at world 1 equal to the plain optimizer (incl. clipping and a
 * parameter without gradient), optimizer-state save/load through the unsharded names, step_range = step. */
#include <stdlib.h>
#include <string.h>

#include "dist/comm.h"
#include "dist/ddp.h"
#include "dist/zero.h"
#include "optim/optim.h"
#include "vox_test.h"

Test(dist, env_detection) {
  unsetenv("OMPI_COMM_WORLD_SIZE");
  unsetenv("PMI_SIZE");
  unsetenv("PMIX_SIZE");
  unsetenv("SLURM_NTASKS");
  unsetenv("MV2_COMM_WORLD_SIZE");
  cr_assert_eq(vox_comm_env_world_size(), 1);
  setenv("SLURM_NTASKS", "8", 1);
  cr_assert_eq(vox_comm_env_world_size(), 8);
  setenv("OMPI_COMM_WORLD_SIZE", "2", 1); /* Open MPI's variable wins over Slurm's */
  cr_assert_eq(vox_comm_env_world_size(), 2);
  setenv("SLURM_LOCALID", "3", 1);
  cr_assert_eq(vox_comm_env_local_rank(), 3);
}

Test(dist, local_comm_collectives) {
  unsetenv("OMPI_COMM_WORLD_SIZE");
  unsetenv("SLURM_NTASKS");
  unsetenv("VOX_COMM");
  vox_comm *c = NULL;
  VT_OK(vox_comm_init(VOX_CPU, &c));
  cr_assert_eq(vox_comm_get_kind(c), VOX_COMM_LOCAL);
  cr_assert_eq(vox_comm_world(c), 1);
  cr_assert_eq(vox_comm_rank(c), 0);
  float v[4] = {1, 2, 3, 4};
  vox_tensor *t = vt_from_f32(VT_SHAPE(4), v), *o = NULL;
  VT_OK(vox_comm_allreduce(c, t, VOX_COMM_AVG));
  vt_assert_close_f32(t, v, 0, 0, "allreduce at world 1");
  VT_OK(vox_tensor_zeros(VOX_F32, VOX_CPU, 1, (int64_t[]){4}, &o));
  VT_OK(vox_comm_reduce_scatter(c, t, o, VOX_COMM_SUM));
  vt_assert_close_f32(o, v, 0, 0, "reduce_scatter at world 1");
  vox_tensor *bad = vt_from_f32(VT_SHAPE(3), v);
  cr_assert_neq(vox_comm_allgather(c, t, bad), VOX_OK);
  cr_assert(strstr(vox_last_error(), "expected 4 elements"), "%s", vox_last_error());
  char *s = strdup("ckpt/step-10.h5");
  VT_OK(vox_comm_broadcast_string(c, &s, 0));
  cr_assert_str_eq(s, "ckpt/step-10.h5");
  double x[2] = {1.5, -2};
  VT_OK(vox_comm_allreduce_host_f64(c, x, 2, VOX_COMM_SUM));
  cr_assert(x[0] == 1.5 && x[1] == -2);
  vox_comm_abort(c, 1, "must return at world 1");
  free(s);
  vox_tensor_release(t);
  vox_tensor_release(o);
  vox_tensor_release(bad);
  vox_comm_free(c);
}

/* Three parameters; grads set by a tiny graph: loss = sum(w1*x) + sum(w2*x) (w3 gets none). */
typedef struct toy {
  vox_tensor *w[3];
  vox_optim *opt;
} toy;

static void toy_new(toy *t, uint64_t seed) {
  t->w[0] = vt_randn(VT_SHAPE(5, 3), seed, 1.0f, true);
  t->w[1] = vt_randn(VT_SHAPE(7), seed + 1, 1.0f, true);
  t->w[2] = vt_randn(VT_SHAPE(2, 2), seed + 2, 1.0f, true);
  vox_optim_config oc = vox_optim_adamw_config(0.05f, 0.1f);
  VT_OK(vox_optim_new(&oc, &t->opt));
  VT_OK(vox_optim_add_group(t->opt, "g", -1, -1, NULL));
  const char *names[3] = {"a.weight", "b.bias", "c.weight"};
  for (int i = 0; i < 3; i++) VT_OK(vox_optim_add_param(t->opt, 0, names[i], t->w[i]));
}

static void toy_free(toy *t) {
  vox_optim_free(t->opt);
  for (int i = 0; i < 3; i++) vox_tensor_release(t->w[i]);
}

static void toy_backward(toy *t, int step) {
  vox_tensor *x0 = vt_randn(VT_SHAPE(5, 3), 100 + step, 1.0f, false), *x1 = vt_randn(VT_SHAPE(7), 200 + step, 1.0f, false);
  vox_tensor *p0 = NULL, *p1 = NULL, *s0 = NULL, *s1 = NULL, *l = NULL, *q = NULL;
  int dims[2] = {0, 1};
  VT_OK(vox_op_mul(t->w[0], x0, &p0));
  VT_OK(vox_op_square(t->w[1], &q));
  VT_OK(vox_op_mul(q, x1, &p1));
  VT_OK(vox_op_sum(p0, 2, dims, false, &s0));
  VT_OK(vox_op_sum(p1, 1, dims, false, &s1));
  VT_OK(vox_op_add(s0, s1, &l));
  VT_OK(vox_backward(l, NULL));
  vox_tensor *all[] = {x0, x1, p0, p1, s0, s1, l, q};
  for (int i = 0; i < 8; i++) vox_tensor_release(all[i]);
}

Test(dist, bucket_layout_reverse_order) {
  toy t;
  toy_new(&t, 1);
  vox_comm *c = NULL;
  VT_OK(vox_comm_local_new(&c));
  vox_ddp_opts o = vox_ddp_opts_default();
  o.zero = 1;
  o.bucket_mb = 10.0 * 4 / (1024.0 * 1024.0); /* 10 floats: c.weight (4) + b.bias (7) fill the first bucket */
  vox_ddp *d = NULL;
  VT_OK(vox_ddp_new(c, t.opt, &o, &d));
  cr_assert_eq(vox_ddp_num_buckets(d), 2);
  int idx[4];
  int64_t n = 0;
  cr_assert_eq(vox_ddp_bucket_entries(d, 0, idx, 4, &n), 2);
  cr_assert(idx[0] == 2 && idx[1] == 1 && n == 11, "bucket 0: %d %d (%lld)", idx[0], idx[1], (long long)n);
  cr_assert_eq(vox_ddp_bucket_entries(d, 1, idx, 4, &n), 1);
  cr_assert(idx[0] == 0 && n == 15);
  cr_assert_eq(vox_zero_shard_numel(d), 26);
  vox_tensor *st = NULL;
  VT_OK(vox_optim_state_find(t.opt, "a.weight", "m", &st));
  cr_assert_null(st, "ZeRO-1 drops the optimizer's own state");
  vox_ddp_free(d);
  cr_assert_null(t.w[0]->grad_hook, "hooks removed");
  vox_comm_free(c);
  toy_free(&t);
}

static vox_status save_fn(void *ctx, const char *name, const char *slot, const vox_tensor *full) {
  vox_tensor **store = ctx;
  int i = !strcmp(name, "a.weight") ? 0 : !strcmp(name, "b.bias") ? 1 : 2;
  int k = !strcmp(slot, "m") ? 0 : 1;
  return vox_tensor_clone(full, &store[i * 2 + k]);
}
static vox_status load_fn(void *ctx, const char *name, const char *slot, vox_tensor *full) {
  vox_tensor **store = ctx;
  int i = !strcmp(name, "a.weight") ? 0 : !strcmp(name, "b.bias") ? 1 : 2;
  int k = !strcmp(slot, "m") ? 0 : 1;
  return vox_tensor_copy_(full, store[i * 2 + k]);
}

Test(dist, zero_world1_matches_plain_optimizer) {
  toy a, b;
  toy_new(&a, 11);
  toy_new(&b, 11);
  vox_comm *c = NULL;
  VT_OK(vox_comm_local_new(&c));
  vox_ddp_opts o = vox_ddp_opts_default();
  o.zero = 1;
  o.bucket_mb = 1e-5;
  vox_ddp *d = NULL;
  VT_OK(vox_ddp_new(c, b.opt, &o, &d));
  for (int step = 0; step < 3; step++) {
    double na = 0, nb = 0;
    toy_backward(&a, step);
    VT_OK(vox_optim_clip_grad_norm(a.opt, 2.0, &na));
    VT_OK(vox_optim_step(a.opt));
    vox_optim_zero_grad(a.opt);
    toy_backward(&b, step);
    VT_OK(vox_ddp_step(d, 2.0, &nb));
    vox_optim_zero_grad(b.opt);
    cr_assert_float_eq(na, nb, 1e-9 * na, "norm at step %d: %g vs %g", step, na, nb);
  }
  for (int i = 0; i < 3; i++) vt_assert_close(b.w[i], a.w[i], 0, 0, "ZeRO-1 at world 1 vs plain AdamW");
  /* The state gathered under ZeRO equals the plain optimizer's, and loads back. */
  vox_tensor *store[6] = {0};
  VT_OK(vox_ddp_state_save(d, save_fn, store));
  for (int i = 0; i < 3; i++)
    for (int k = 0; k < 2; k++) {
      vox_tensor *ref = NULL;
      VT_OK(vox_optim_state_find(a.opt, i == 0 ? "a.weight" : i == 1 ? "b.bias" : "c.weight", k ? "v" : "m", &ref));
      vt_assert_close(store[i * 2 + k], ref, 0, 0, "gathered state");
    }
  vox_ddp_free(d);
  toy c2;
  toy_new(&c2, 99);
  VT_OK(vox_ddp_new(c, c2.opt, &o, &d));
  VT_OK(vox_ddp_state_load(d, load_fn, store));
  vox_tensor *again[6] = {0};
  VT_OK(vox_ddp_state_save(d, save_fn, again));
  for (int i = 0; i < 6; i++) {
    vt_assert_close(again[i], store[i], 0, 0, "state round trip");
    vox_tensor_release(store[i]);
    vox_tensor_release(again[i]);
  }
  vox_ddp_free(d);
  vox_comm_free(c);
  toy_free(&a);
  toy_free(&b);
  toy_free(&c2);
}

Test(dist, step_range_equals_step) {
  toy a, b;
  toy_new(&a, 5);
  toy_new(&b, 5);
  toy_backward(&a, 0);
  toy_backward(&b, 0);
  VT_OK(vox_optim_step(a.opt));
  /* entry 0 in two slices with separate state */
  vox_tensor *g = b.w[0]->grad, *gv[2], *s[2][2];
  for (int h = 0; h < 2; h++) {
    int64_t start = h ? 6 : 0, cnt = h ? 9 : 6;
    VT_OK(vox_tensor_view(g, 1, (int64_t[]){cnt}, (int64_t[]){1}, g->offset + start, &gv[h]));
    for (int k = 0; k < 2; k++) VT_OK(vox_tensor_zeros(VOX_F32, VOX_CPU, 1, (int64_t[]){cnt}, &s[h][k]));
    VT_OK(vox_optim_step_range(b.opt, 0, start, cnt, gv[h], s[h]));
  }
  vt_assert_close(b.w[0], a.w[0], 0, 0, "two ranges = one step");
  cr_assert_neq(vox_optim_step_range(b.opt, 0, 10, 9, gv[1], s[1]), VOX_OK);
  for (int h = 0; h < 2; h++) {
    vox_tensor_release(gv[h]);
    for (int k = 0; k < 2; k++) vox_tensor_release(s[h][k]);
  }
  toy_free(&a);
  toy_free(&b);
}
