/* Data-parallel test driver: trains a tiny Qwen2 LM for N steps on a deterministic synthetic global batch
 * split over the ranks (and micro-batches), optionally with ZeRO-1, checkpoint save/resume, and compares results.
 * Run under mpirun by tests/integration/mpi_*.sh; `--compare A B` checks two parameter files agree. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/autograd.h"
#include "core/backend.h"
#include "core/ops.h"
#include "dist/comm.h"
#include "dist/ddp.h"
#include "dist/zero.h"
#include "io/checkpoint.h"
#include "models/qwen2.h"
#include "optim/optim.h"

enum { VOCAB = 61, SEQ = 16 };

typedef struct opts {
  int steps, global_batch, accum, zero, fail_rank, fail_step;
  double bucket_mb, lr;
  const char *out, *save, *resume;
} opts;

/* Sample g of step t: a noisy affine recurrence (learnable, so the loss falls), the same on every rank. */
static void make_sample(int t, int g, int32_t *ids, int32_t *tg) {
  vox_rng rng = vox_rng_make(0x5eedull * 1000003ull + (uint64_t)t * 4099ull + (uint64_t)g);
  int32_t tok[SEQ + 1];
  tok[0] = (int32_t)(vox_rng_next_u64(&rng) % VOCAB);
  for (int i = 1; i <= SEQ; i++)
    tok[i] = (vox_rng_next_u64(&rng) % 8 == 0) ? (int32_t)(vox_rng_next_u64(&rng) % VOCAB) : (tok[i - 1] * 3 + 1) % VOCAB;
  for (int i = 0; i < SEQ; i++) {
    ids[i] = tok[i];
    tg[i] = tok[i + 1];
  }
}

/* The loss of one micro-batch: LM cross-entropy plus a term in aux.weight for the samples whose global index is a
 * multiple of 7, weighted 1/b like the cross-entropy's mean, so that aux gets a gradient on some ranks only. */
static vox_status micro_loss(vox_qwen2 *m, vox_tensor *aux, int step, int first, int b, vox_tensor **loss) {
  int32_t *ids = malloc(sizeof(int32_t) * (size_t)b * SEQ), *tg = malloc(sizeof(int32_t) * (size_t)b * SEQ);
  int flagged = 0;
  for (int i = 0; i < b; i++) {
    make_sample(step, first + i, ids + i * SEQ, tg + i * SEQ);
    flagged += (first + i) % 7 == 0;
  }
  int64_t shape[2] = {b, SEQ};
  vox_tensor *tid = NULL, *ttg = NULL, *sq = NULL, *s = NULL, *term = NULL, *ce = NULL;
  vox_status st = vox_tensor_from_host(VOX_I32, VOX_CPU, 2, shape, ids, &tid);
  if (st == VOX_OK) st = vox_tensor_from_host(VOX_I32, VOX_CPU, 2, shape, tg, &ttg);
  if (st == VOX_OK) st = vox_qwen2_forward(m, tid, ttg, true, NULL, NULL, &ce);
  if (st == VOX_OK && flagged) {
    int dim0 = 0;
    st = vox_op_square(aux, &sq);
    if (st == VOX_OK) st = vox_op_sum(sq, 1, &dim0, false, &s);
    if (st == VOX_OK) st = vox_op_affine(s, 0.05 * flagged / b, 0.0, &term);
    if (st == VOX_OK) st = vox_op_add(ce, term, loss);
  } else if (st == VOX_OK) {
    *loss = vox_tensor_retain(ce);
  }
  vox_tensor_release(tid);
  vox_tensor_release(ttg);
  vox_tensor_release(sq);
  vox_tensor_release(s);
  vox_tensor_release(term);
  vox_tensor_release(ce);
  free(ids);
  free(tg);
  return st;
}

static vox_status save_state_fn(void *ctx, const char *name, const char *slot, const vox_tensor *full) {
  char key[256];
  snprintf(key, sizeof key, "%s.%s", name, slot);
  return vox_ckpt_write_tensor(ctx, "optim", key, full);
}
static vox_status load_state_fn(void *ctx, const char *name, const char *slot, vox_tensor *full) {
  char key[256];
  snprintf(key, sizeof key, "%s.%s", name, slot);
  if (!vox_ckpt_has(ctx, "optim", key)) return vox_errorf(VOX_ERR_NOT_FOUND, "no optimizer state %s", key);
  return vox_ckpt_read_into(ctx, "optim", key, full);
}

static vox_status write_params(const vox_params *reg, vox_ddp *d, int64_t step, const char *path, bool with_state) {
  vox_comm *comm = vox_ddp_comm(d);
  vox_ckpt_writer *w = NULL;
  vox_status st = VOX_OK;
  if (vox_comm_is_root(comm)) {
    st = vox_ckpt_writer_new(path, &w);
    for (int i = 0; i < reg->count && st == VOX_OK; i++)
      st = vox_ckpt_write_tensor(w, "params", reg->items[i].name, reg->items[i].tensor);
    if (st == VOX_OK) st = vox_ckpt_write_attr_int(w, "step", step);
    if (st == VOX_OK) st = vox_ckpt_write_attr_int(w, "world_size", vox_comm_world(comm));
  }
  if (with_state) { /* collective: every rank takes part even if rank 0 already failed */
    vox_status s2 = vox_ddp_state_save(d, save_state_fn, w);
    if (st == VOX_OK) st = s2;
  }
  if (w) {
    if (st == VOX_OK) st = vox_ckpt_writer_commit(w);
    else vox_ckpt_writer_abort(w);
  }
  return st;
}

static int compare(const char *a, const char *b, double tol) {
  vox_ckpt_reader *ra = NULL, *rb = NULL;
  char **names = NULL;
  int n = 0;
  if (vox_ckpt_reader_open(a, &ra) || vox_ckpt_reader_open(b, &rb) || vox_ckpt_list(ra, "params", &names, &n)) {
    fprintf(stderr, "dist_driver compare: %s\n", vox_last_error());
    return 2;
  }
  double worst = 0, max_param = 0;
  const char *worst_name = "";
  int bad = 0;
  for (int i = 0; i < n; i++) {
    vox_tensor *ta = NULL, *tb = NULL;
    if (vox_ckpt_read_tensor(ra, "params", names[i], &ta) || vox_ckpt_read_tensor(rb, "params", names[i], &tb) ||
        vox_tensor_numel(ta) != vox_tensor_numel(tb)) {
      fprintf(stderr, "dist_driver compare: '%s': %s\n", names[i], vox_last_error());
      bad = 1;
    } else {
      const float *pa = vox_tensor_f32(ta), *pb = vox_tensor_f32(tb);
      for (int64_t k = 0; k < vox_tensor_numel(ta); k++) {
        double dlt = fabs((double)pa[k] - (double)pb[k]);
        if (!(dlt <= worst)) {
          worst = dlt;
          worst_name = names[i];
        }
        if (fabs(pa[k]) > max_param) max_param = fabs(pa[k]);
      }
    }
    vox_tensor_release(ta);
    vox_tensor_release(tb);
  }
  printf("compare %s vs %s: %d tensors, max |diff| %.3g (in %s), max |param| %.3g, tolerance %.3g\n", a, b, n, worst,
         worst_name, max_param, tol);
  if (!(worst <= tol)) bad = 1;
  for (int i = 0; i < n; i++) free(names[i]);
  free(names);
  vox_ckpt_reader_close(ra);
  vox_ckpt_reader_close(rb);
  return bad;
}

static int usage(void) {
  fprintf(stderr,
          "usage: dist_driver [--steps N] [--global-batch G] [--accum K] [--zero 0|1] [--bucket-mb X] [--lr LR]\n"
          "                   [--out params.h5] [--save ckpt.h5] [--resume ckpt.h5] [--fail-rank R --fail-step S]\n"
          "       dist_driver --compare A.h5 B.h5 [TOL]\n");
  return 2;
}

int main(int argc, char **argv) {
  if (argc >= 4 && !strcmp(argv[1], "--compare")) return compare(argv[2], argv[3], argc > 4 ? atof(argv[4]) : 1e-5);
  opts o = {.steps = 4, .global_batch = 8, .accum = 1, .zero = 0, .bucket_mb = 0.01, .lr = 1e-2, .fail_rank = -1,
            .fail_step = -1};
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!v) return usage();
    if (!strcmp(a, "--steps")) o.steps = atoi(v);
    else if (!strcmp(a, "--global-batch")) o.global_batch = atoi(v);
    else if (!strcmp(a, "--accum")) o.accum = atoi(v);
    else if (!strcmp(a, "--zero")) o.zero = atoi(v);
    else if (!strcmp(a, "--bucket-mb")) o.bucket_mb = atof(v);
    else if (!strcmp(a, "--lr")) o.lr = atof(v);
    else if (!strcmp(a, "--out")) o.out = v;
    else if (!strcmp(a, "--save")) o.save = v;
    else if (!strcmp(a, "--resume")) o.resume = v;
    else if (!strcmp(a, "--fail-rank")) o.fail_rank = atoi(v);
    else if (!strcmp(a, "--fail-step")) o.fail_step = atoi(v);
    else return usage();
    i++;
  }
  vox_comm *comm = NULL;
  vox_qwen2 model = {0}, *m = &model;
  vox_params *reg = NULL;
  vox_optim *opt = NULL;
  vox_ddp *d = NULL;
  vox_ckpt_reader *rd = NULL;
  vox_status st = vox_comm_init(VOX_CPU, &comm);
  if (st != VOX_OK) {
    fprintf(stderr, "dist_driver: %s\n", vox_last_error());
    return 1;
  }
  int W = vox_comm_world(comm), R = vox_comm_rank(comm);
  if (o.global_batch % (W * o.accum)) {
    fprintf(stderr, "dist_driver: global batch %d is not a multiple of world %d x accum %d\n", o.global_batch, W, o.accum);
    vox_comm_abort(comm, 2, "bad arguments");
    return 2;
  }
  int b = o.global_batch / (W * o.accum);
  vox_qwen2_config cfg = vox_qwen2_config_default();
  cfg.vocab_size = VOCAB;
  cfg.hidden_size = 32;
  cfg.num_hidden_layers = 2;
  cfg.num_attention_heads = 4;
  cfg.num_key_value_heads = 2;
  cfg.intermediate_size = 64;
  cfg.max_position_embeddings = 64;
  cfg.tie_word_embeddings = true;
  /* Every rank initialises from a different seed: the broadcast from rank 0 must make them equal. */
  vox_rng init_rng = vox_rng_make(7u + (uint64_t)R);
  VOX_CHECK_GOTO(st, vox_params_new(&reg), fail);
  VOX_CHECK_GOTO(st, vox_qwen2_init(m, reg, "", &cfg, &init_rng), fail);
  vox_tensor *aux = NULL, *unused = NULL;
  int64_t s8[1] = {8}, s4[1] = {4};
  VOX_CHECK_GOTO(st, vox_params_create(reg, "aux.weight", VOX_CPU, 1, s8, &aux), fail);
  VOX_CHECK_GOTO(st, vox_params_create(reg, "unused.weight", VOX_CPU, 1, s4, &unused), fail);
  VOX_CHECK_GOTO(st, vox_init_constant(aux, 0.5), fail);
  VOX_CHECK_GOTO(st, vox_init_constant(unused, 0.25), fail);
  vox_optim_config oc = vox_optim_adamw_config((float)o.lr, 0.1f);
  VOX_CHECK_GOTO(st, vox_optim_new(&oc, &opt), fail);
  VOX_CHECK_GOTO(st, vox_optim_add_group(opt, "all", -1, -1, NULL), fail);
  /* aux and unused first: registered first means bucketed last, so they do not hold back the overlap of the
   * model's buckets (a bucket launches only once all of its gradients are in). */
  VOX_CHECK_GOTO(st, vox_optim_add_param(opt, 0, "aux.weight", aux), fail);
  VOX_CHECK_GOTO(st, vox_optim_add_param(opt, 0, "unused.weight", unused), fail);
  VOX_CHECK_GOTO(st, vox_optim_add_params(opt, 0, reg, NULL, NULL), fail);
  vox_optim_set_grad_scale(opt, 1.0f / (float)o.accum);
  int64_t start = 0;
  if (o.resume && R == 0) {
    VOX_CHECK_GOTO(st, vox_ckpt_reader_open(o.resume, &rd), fail);
    for (int i = 0; i < reg->count; i++)
      VOX_CHECK_GOTO(st, vox_ckpt_read_into(rd, "params", reg->items[i].name, reg->items[i].tensor), fail);
    VOX_CHECK_GOTO(st, vox_ckpt_read_attr_int(rd, "step", &start), fail);
  }
  VOX_CHECK_GOTO(st, vox_comm_broadcast_host(comm, &start, sizeof start, 0), fail);
  vox_ddp_opts dopts = vox_ddp_opts_default();
  dopts.bucket_mb = o.bucket_mb;
  dopts.zero = o.zero;
  VOX_CHECK_GOTO(st, vox_ddp_new(comm, opt, &dopts, &d), fail);
  if (o.resume) {
    VOX_CHECK_GOTO(st, vox_ddp_state_load(d, load_state_fn, rd), fail);
    opt->step = start;
  }
  if (R == 0)
    printf("dist_driver: world %d (%s), global batch %d = %d ranks x %d micro x %d, ZeRO-%d, %d buckets, steps %lld..%d\n",
           W, vox_comm_kind_name(vox_comm_get_kind(comm)), o.global_batch, W, o.accum, b, o.zero,
           vox_ddp_num_buckets(d), (long long)start, o.steps);
  for (int t = (int)start; t < o.steps; t++) {
    double lsum = 0;
    for (int mb = 0; mb < o.accum; mb++) {
      if (t == o.fail_step && R == o.fail_rank && mb == 0) {
        st = vox_errorf(VOX_ERR_PARSE, "dist_driver: corrupt sample in step %d (injected failure)", t);
        goto fail;
      }
      vox_tensor *loss = NULL;
      double lv = 0;
      vox_ddp_set_sync(d, mb == o.accum - 1);
      st = micro_loss(m, aux, t, (R * o.accum + mb) * b, b, &loss);
      if (st == VOX_OK) st = vox_backward(loss, NULL);
      if (st == VOX_OK) st = vox_tensor_item(loss, &lv);
      vox_tensor_release(loss);
      if (st != VOX_OK) goto fail;
      lsum += lv / o.accum;
    }
    double norm = 0;
    VOX_CHECK_GOTO(st, vox_ddp_step(d, 1.0, &norm), fail);
    vox_optim_zero_grad(opt);
    VOX_CHECK_GOTO(st, vox_comm_allreduce_host_f64(comm, &lsum, 1, VOX_COMM_AVG), fail);
    if (R == 0)
      printf("step %d loss %.6f grad-norm %.6f overlapped buckets %d/%d\n", t + 1, lsum, norm,
             vox_ddp_overlapped_buckets(d), vox_ddp_num_buckets(d));
  }
  if (o.zero && W > 1) {
    double shard = (double)vox_zero_shard_numel(d), total = (double)vox_params_numel(reg, true);
    double mx = shard;
    VOX_CHECK_GOTO(st, vox_comm_allreduce_host_f64(comm, &mx, 1, VOX_COMM_MAX), fail);
    if (R == 0) printf("zero: optimizer state per rank %.0f of %.0f elements (%.2f)\n", mx, total, mx / total);
  }
  if (o.out) VOX_CHECK_GOTO(st, write_params(reg, d, o.steps, o.out, false), fail);
  if (o.save) VOX_CHECK_GOTO(st, write_params(reg, d, o.steps, o.save, true), fail);
  vox_ckpt_reader_close(rd);
  vox_ddp_free(d);
  vox_optim_free(opt);
  vox_qwen2_release(m);
  vox_params_free(reg);
  vox_comm_free(comm);
  return 0;
fail: {
  char msg[600];
  snprintf(msg, sizeof msg, "%s", vox_last_error());
  fprintf(stderr, "dist_driver: rank %d: %s\n", R, msg);
  vox_comm_abort(comm, 1, msg); /* ends every rank when distributed */
  vox_ckpt_reader_close(rd);
  vox_ddp_free(d);
  vox_optim_free(opt);
  vox_qwen2_release(m);
  vox_params_free(reg);
  vox_comm_free(comm);
  return 1;
}
}
