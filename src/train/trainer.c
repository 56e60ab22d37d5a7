/* The training loop, top to bottom: vox_train_run walks the stages; run_stage builds the model, applies init and
 * freezing, restores a checkpoint when resuming, and runs the steps (micro-batches, all-reduce hook, NaN/Inf skip,
 * clipping, schedule, update, log, eval, checkpoint). Only rank 0 logs and writes checkpoints. */
#include "train/trainer.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "core/autograd.h"
#include "core/backend.h"
#include "core/log.h"
#include "core/ops.h"
#include "models/model_config.h"
#include "nn/lora.h"
#include "train/ckpt.h"
#include "train/recipe.h"
#include "train/task.h"
#include "train/train_log.h"
#include "train/train_model.h"

/* ---- stop requests ---------------------------------------------------------------------------------------- */

static volatile sig_atomic_t stop_requested;

void vox_train_request_stop(void) { stop_requested = 1; }

static void on_signal(int sig) {
  (void)sig;
  stop_requested = 1;
}

vox_status vox_train_install_signal_handlers(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  if (sigaction(SIGTERM, &sa, NULL) || sigaction(SIGUSR1, &sa, NULL))
    return vox_errorf(VOX_ERR_IO, "cannot install SIGTERM/SIGUSR1 handlers (%s)", strerror(errno));
  return VOX_OK;
}

/* ---- the run ------------------------------------------------------------------------------------------------ */

typedef struct run {
  vox_recipe recipe;
  const vox_config *root;
  char run_dir[PATH_MAX];
  char *config_yaml;
  vox_tokenizer *tokenizer;
  int32_t *vocab_subset; /* the LLM's kept token ids (model.llm.vocab_subset); NULL: the whole vocabulary */
  int32_t n_vocab_subset;
  vox_train_log *log; /* rank 0 only */
  const vox_train_dist *dist;
  int rank, world;
  int64_t stop_after, steps_this_run;
  FILE *out;
} run;

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static vox_status make_dir(const char *path) {
  char buf[PATH_MAX];
  snprintf(buf, sizeof buf, "%s", path);
  for (char *p = buf + 1; *p; p++)
    if (*p == '/') {
      *p = 0;
      if (mkdir(buf, 0777) && errno != EEXIST) return vox_errorf(VOX_ERR_IO, "%s: cannot create (%s)", buf, strerror(errno));
      *p = '/';
    }
  if (mkdir(buf, 0777) && errno != EEXIST) return vox_errorf(VOX_ERR_IO, "%s: cannot create (%s)", buf, strerror(errno));
  return VOX_OK;
}

/* Parameter sources of stage si, applied after random initialisation: the previous stage's final checkpoint for
 * the whole model, then the stage's own init entries ("previous" = that same checkpoint, one part). */
static char *stage_sources(const run *R, int si) {
  size_t cap = 8192;
  char *s = calloc(1, cap), prev[PATH_MAX + 8] = "";
  if (!s) return NULL;
  if (si > 0) {
    char p[PATH_MAX];
    vox_train_ckpt_path(p, sizeof p, R->run_dir, si - 1, R->recipe.stages[si - 1].steps);
    snprintf(prev, sizeof prev, "ckpt:%s", p);
    snprintf(s, cap, "all\t%s\n", prev);
  }
  const vox_recipe_stage *st = &R->recipe.stages[si];
  for (int i = 0; i < st->n_init; i++) {
    size_t l = strlen(s);
    snprintf(s + l, cap - l, "%s\t%s\n", st->init[i].part, strcmp(st->init[i].source, "previous") ? st->init[i].source : prev);
  }
  return s;
}

static vox_status hf_loader(void *ctx, const char *part, const char *dir) {
  return vox_train_model_load_hf(ctx, part, dir);
}
static const char *part_prefix(void *ctx, const char *part) { return vox_train_model_part_prefix(ctx, part); }

/* trainable / frozen globs: with `trainable`, exactly the matching parameters train; `frozen` then removes some.
 * A glob that matches nothing is an error (a typo must not silently train everything or nothing). */
static vox_status apply_freezing(const vox_recipe_stage *st, vox_params *params) {
  char w[256];
  if (st->n_trainable > 0)
    for (int i = 0; i < params->count; i++) params->items[i].tensor->requires_grad = false;
  for (int g = 0; g < st->n_trainable; g++)
    if (vox_params_set_trainable(params, st->trainable[g]->scalar, true, NULL) != VOX_OK)
      return vox_errorf(VOX_ERR_NOT_FOUND, "%s: trainable glob '%s' matches no parameter of the model",
                        vox_config_where(st->trainable[g], w, sizeof w), st->trainable[g]->scalar);
  for (int g = 0; g < st->n_frozen; g++)
    if (vox_params_set_trainable(params, st->frozen[g]->scalar, false, NULL) != VOX_OK)
      return vox_errorf(VOX_ERR_NOT_FOUND, "%s: frozen glob '%s' matches no parameter of the model",
                        vox_config_where(st->frozen[g], w, sizeof w), st->frozen[g]->scalar);
  if (vox_params_count(params, true) == 0)
    return vox_errorf(VOX_ERR_INVALID, "%s: stage '%s' leaves no parameter trainable",
                      vox_config_where(st->node, w, sizeof w), st->name);
  return VOX_OK;
}

/* Groups in recipe order (a parameter joins the first group whose glob matches), then "default" for the rest. */
static vox_status build_optimizer(const vox_recipe_stage *st, vox_params *params, vox_optim **out) {
  char w[256];
  vox_optim *opt = NULL;
  VOX_TRY(vox_optim_new(&st->optim, &opt));
  vox_status s = VOX_OK;
  for (int g = 0; g < st->n_groups && s == VOX_OK; g++) {
    const vox_recipe_group *rg = &st->groups[g];
    int idx, n = 0;
    s = vox_optim_add_group(opt, rg->name, (float)rg->lr, (float)rg->weight_decay, &idx);
    if (s == VOX_OK) s = vox_optim_add_params(opt, idx, params, rg->params, &n);
    if (s == VOX_OK && n == 0)
      s = vox_errorf(VOX_ERR_NOT_FOUND, "%s: optimizer group '%s': glob '%s' matches no trainable parameter",
                     vox_config_where(rg->node, w, sizeof w), rg->name, rg->params);
  }
  int idx;
  if (s == VOX_OK) s = vox_optim_add_group(opt, "default", -1, -1, &idx);
  if (s == VOX_OK) s = vox_optim_add_params(opt, idx, params, NULL, NULL);
  if (s != VOX_OK) {
    vox_optim_free(opt);
    return s;
  }
  *out = opt;
  return VOX_OK;
}

static bool inject_nan(const run *R, int64_t step1) {
  for (int i = 0; i < R->recipe.n_inject_nan; i++)
    if (R->recipe.inject_nan[i] == step1) return true;
  return false;
}

static vox_status sum_across_ranks(const run *R, double *v, int n) {
  if (!R->dist || R->world <= 1 || !R->dist->allreduce_sum) return VOX_OK;
  return R->dist->allreduce_sum(R->dist->comm, v, n);
}

typedef struct stage_ctx {
  run *R;
  int si;
  const vox_recipe_stage *st;
  vox_train_model *model;
  vox_optim *opt;
  const vox_task_vtable *vt;
  void *task;
  vox_train_state state;
  char *sources;
  int64_t last_ckpt_step, last_eval_step;
} stage_ctx;

static vox_status save_checkpoint_rank0(stage_ctx *S);
static vox_status save_checkpoint(stage_ctx *S) {
  run *R = S->R;
  if (S->last_ckpt_step == S->state.step) return VOX_OK;
  S->last_ckpt_step = S->state.step;
  S->state.world_size = R->world;
  if (R->dist && R->dist->before_checkpoint) VOX_TRY(R->dist->before_checkpoint(R->dist->comm, S->opt));
  vox_status s = save_checkpoint_rank0(S);
  if (R->dist && R->dist->after_checkpoint) { /* also: no rank reads the file before rank 0 committed it */
    vox_status s2 = R->dist->after_checkpoint(R->dist->comm, S->opt);
    if (s == VOX_OK) s = s2;
  }
  return s;
}

static vox_status save_checkpoint_rank0(stage_ctx *S) {
  run *R = S->R;
  if (R->rank != 0) return VOX_OK;
  char path[PATH_MAX];
  vox_train_ckpt_path(path, sizeof path, R->run_dir, S->si, S->state.step);
  VOX_TRY(S->vt->get_position(S->task, &S->state.pos));
  vox_train_ckpt_info info = {.config_yaml = R->config_yaml, .stage_name = S->st->name, .seed = R->recipe.seed,
                              .sources = S->sources, .save_all = S->st->save_all,
                              .hang_before_commit = R->recipe.hang_in_ckpt_at_step,
                              .vocab_subset = R->vocab_subset, .n_vocab_subset = R->n_vocab_subset};
  double t0 = now_s();
  VOX_TRY(vox_train_ckpt_save(path, &info, S->model->params, S->opt, &S->state));
  vox_train_ckpt_prune(R->run_dir, S->si, S->st->keep_last, S->state.step);
  vox_train_log_event(R->log, "checkpoint", S->st->name, S->si, S->state.step, "checkpoint %s (%.2f s)", path,
                      now_s() - t0);
  return VOX_OK;
}

static vox_status run_eval(stage_ctx *S) {
  if (S->last_eval_step == S->state.step) return VOX_OK;
  S->last_eval_step = S->state.step;
  vox_task_metrics m = {0};
  if (S->st->lora) vox_lora_set_mode(S->model->params, false, 0);
  VOX_TRY(S->vt->eval(S->task, S->st->eval, S->st->eval_max_batches, &m));
  if (m.n > 0 && S->R->rank == 0) vox_train_log_eval(S->R->log, S->st->name, S->si, S->state.step, &m);
  return VOX_OK;
}

/* One optimizer step: grad_accum micro-batches, all-reduce, finite checks, clipping, update. */
static vox_status train_step(stage_ctx *S, double *loss_out, double *norm_out, vox_task_counts *counts, bool *bad) {
  run *R = S->R;
  int64_t accum = S->st->grad_accum;
  double loss_sum = 0;
  *bad = false;
  *counts = (vox_task_counts){0};
  vox_optim_set_lr_factor(S->opt, (float)vox_schedule_factor(&S->st->schedule, S->state.step));
  for (int64_t k = 0; k < accum; k++) {
    vox_tensor *loss = NULL;
    vox_task_counts c = {0};
    double v = 0;
    if (R->dist && R->dist->begin_micro_batch) R->dist->begin_micro_batch(R->dist->comm, k, accum);
    /* LoRA dropout draws a fresh mask seed per micro-batch from the stage's (checkpointed) stream */
    if (S->st->lora) vox_lora_set_mode(S->model->params, true, vox_rng_next_u64(&S->state.rng));
    VOX_TRY(S->vt->train_batch(S->task, &S->state.rng, &loss, &c));
    if (inject_nan(R, S->state.step + 1)) { /* test hook: a real NaN through the loss and every gradient */
      vox_tensor *poisoned = NULL;
      vox_status s = vox_op_affine(loss, NAN, 0.0, &poisoned);
      vox_tensor_release(loss);
      if (s != VOX_OK) return s;
      loss = poisoned;
    }
    vox_status s = vox_tensor_item(loss, &v);
    /* every micro-batch is consumed even after a bad one, so the data position never depends on the values */
    if (s == VOX_OK && isfinite(v) && !*bad) s = vox_backward(loss, NULL);
    vox_tensor_release(loss);
    if (s != VOX_OK) return s;
    if (!isfinite(v)) *bad = true;
    loss_sum += v;
    counts->tokens += c.tokens, counts->frames += c.frames, counts->samples += c.samples;
  }
  /* seam for data parallelism: average the gradients, agree on the loss and on skipping (collective: every rank
   * takes part, also one whose loss was not finite) */
  if (R->dist && R->world > 1 && R->dist->allreduce_grads)
    VOX_TRY(R->dist->allreduce_grads(R->dist->comm, S->opt));
  double agree[5] = {*bad ? 1.0 : 0.0, loss_sum, (double)counts->tokens, (double)counts->frames,
                     (double)counts->samples};
  VOX_TRY(sum_across_ranks(R, agree, 5));
  *bad = agree[0] > 0;
  *loss_out = agree[1] / (double)(accum * (R->world > 0 ? R->world : 1));
  counts->tokens = (int64_t)agree[2], counts->frames = (int64_t)agree[3], counts->samples = (int64_t)agree[4];
  vox_optim_set_grad_scale(S->opt, 1.0f / (float)accum);
  *norm_out = NAN;
  if (!*bad) {
    if (R->dist && R->dist->clip_grad_norm)
      VOX_TRY(R->dist->clip_grad_norm(R->dist->comm, S->opt, S->st->clip_grad_norm, norm_out));
    else
      VOX_TRY(vox_optim_clip_grad_norm(S->opt, S->st->clip_grad_norm, norm_out));
    if (!isfinite(*norm_out)) *bad = true; /* a finite loss with non-finite gradients */
  }
  if (!*bad) VOX_TRY(R->dist && R->dist->optim_step ? R->dist->optim_step(R->dist->comm, S->opt) : vox_optim_step(S->opt));
  vox_optim_zero_grad(S->opt);
  return VOX_OK;
}

/* LoRA adapters on the Linears the stage's `lora.targets` name: added after freezing (the wrapped weights freeze,
 * the adapters train) and before a resume loads them back. Their initial A comes from the stage's own stream. */
static vox_status apply_lora(stage_ctx *S) {
  const vox_recipe_stage *st = S->st;
  const char *globs[VOX_RECIPE_MAX_GLOBS + 1];
  for (int i = 0; i < st->n_lora_targets; i++) globs[i] = st->lora_targets[i]->scalar;
  globs[st->n_lora_targets] = NULL;
  vox_rng rng = vox_rng_make(S->R->recipe.seed * 1000003u + (uint64_t)S->si * 7919u + 0x10aau);
  int n = 0;
  vox_status s = vox_lora_apply(S->model->params, globs, st->lora_rank, st->lora_alpha, st->lora_dropout, &rng, &n);
  if (s != VOX_OK) {
    char w[256];
    return vox_error_context(s, "%s: lora: ", vox_config_where(st->lora, w, sizeof w));
  }
  return VOX_OK;
}

static vox_status open_stage(stage_ctx *S, const char *resume_path) {
  run *R = S->R;
  const vox_recipe_stage *st = S->st;
  char w[256];
  VOX_TRY(vox_train_model_new(R->recipe.model, R->recipe.seed, R->recipe.device, st->activation_checkpointing,
                              &S->model));
  S->sources = stage_sources(R, S->si);
  if (!S->sources) return vox_errorf(VOX_ERR_NOMEM, "out of memory");
  vox_train_sources src = {.load_hf = hf_loader, .part_prefix = part_prefix, .ctx = S->model,
                           .vocab_subset = R->vocab_subset, .n_vocab_subset = R->n_vocab_subset};
  if (S->si > 0) { /* the first source line: the previous stage's final checkpoint, whole model */
    char first[PATH_MAX + 8];
    snprintf(first, sizeof first, "%.*s", (int)strcspn(strchr(S->sources, '\t') + 1, "\n"),
             strchr(S->sources, '\t') + 1);
    vox_status s = vox_train_apply_source(S->model->params, "all", first, &src);
    if (s != VOX_OK) return vox_error_context(s, "starting from the previous stage's final checkpoint: ");
  }
  for (int i = 0; i < st->n_init; i++) {
    const char *source = st->init[i].source;
    char prev[PATH_MAX + 8];
    if (!strcmp(source, "previous")) {
      char p[PATH_MAX];
      snprintf(prev, sizeof prev, "ckpt:%s", vox_train_ckpt_path(p, sizeof p, R->run_dir, S->si - 1,
                                                                R->recipe.stages[S->si - 1].steps));
      source = prev;
    }
    vox_status s = vox_train_apply_source(S->model->params, st->init[i].part, source, &src);
    if (s != VOX_OK)
      return vox_error_context(s, "%s: init.%s: ", vox_config_where(st->init[i].node, w, sizeof w), st->init[i].part);
  }
  VOX_TRY(apply_freezing(st, S->model->params));
  if (st->lora) VOX_TRY(apply_lora(S));
  if (resume_path) VOX_TRY(vox_train_ckpt_load_params(resume_path, S->model->params, "", &src));
  VOX_TRY(build_optimizer(st, S->model->params, &S->opt));
  /* the stage's RNG stream: recipe seed, stage and rank */
  S->state = (vox_train_state){.stage = S->si,
                               .rng = vox_rng_make(R->recipe.seed * 1000003u + (uint64_t)S->si * 7919u + 17u)};
  VOX_TRY(vox_task_find(st->task, &S->vt));
  vox_task_ctx tctx = {.recipe = R->root, .stage = st->node, .stage_index = S->si, .run_dir = R->run_dir,
                       .model = S->model, .tokenizer = R->tokenizer, .seed = R->recipe.seed, .rank = R->rank,
                       .world_size = R->world, .device = R->recipe.device};
  VOX_TRY(S->vt->open(&tctx, &S->task));
  if (resume_path) {
    VOX_TRY(vox_train_ckpt_load_state(resume_path, S->opt, &S->state));
    if (S->state.stage != S->si)
      return vox_errorf(VOX_ERR_STATE, "%s: checkpoint of stage %d resumed as stage %d", resume_path, S->state.stage,
                        S->si);
    S->state.rng.seed += (uint64_t)R->rank * 0x9E3779B97F4A7C15ull; /* each rank its own stream */
    if (S->state.world_size != R->world && R->dist && R->dist->translate_position)
      VOX_TRY(R->dist->translate_position(R->dist->comm, S->state.world_size, &S->state.pos));
    VOX_TRY(S->vt->seek(S->task, &S->state.pos));
    S->last_ckpt_step = S->state.step;
  } else {
    S->state.rng.seed += (uint64_t)R->rank * 0x9E3779B97F4A7C15ull;
  }
  if (R->dist && R->dist->attach) VOX_TRY(R->dist->attach(R->dist->comm, S->opt));
  return VOX_OK;
}

static void close_stage(stage_ctx *S) {
  if (S->vt && S->task) S->vt->close(S->task);
  if (S->opt && S->R->dist && S->R->dist->detach) S->R->dist->detach(S->R->dist->comm, S->opt);
  vox_optim_free(S->opt);
  vox_train_model_free(S->model);
  free(S->sources);
}

static vox_status run_stage(run *R, int si, const char *resume_path, vox_train_outcome *outcome) {
  stage_ctx S = {.R = R, .si = si, .st = &R->recipe.stages[si], .last_ckpt_step = -1, .last_eval_step = -1};
  const vox_recipe_stage *st = S.st;
  vox_status s = open_stage(&S, resume_path);
  if (s != VOX_OK) {
    close_stage(&S);
    return vox_error_context(s, "stage %d '%s': ", si, st->name);
  }
  if (R->rank == 0)
    vox_train_log_event(R->log, resume_path ? "resume" : "stage_start", st->name, si, S.state.step,
                        "%s stage %d/%d '%s' (task %s) at step %lld/%lld: %lld of %lld parameters train, on %s (%s)",
                        resume_path ? "resuming" : "starting", si + 1, R->recipe.n_stages, st->name, st->task,
                        (long long)S.state.step, (long long)st->steps,
                        (long long)vox_params_numel(S.model->params, true),
                        (long long)vox_params_numel(S.model->params, false), vox_device_name(R->recipe.device),
                        R->recipe.precision);
  double t_start = now_s(), t_last = t_start;
  int64_t step0 = S.state.step, tok_since = 0, smp_since = 0;
  *outcome = VOX_TRAIN_COMPLETE;
  if (st->eval_at_start && S.state.step == 0) s = run_eval(&S);
  while (s == VOX_OK && S.state.step < st->steps) {
    if (stop_requested || (R->stop_after > 0 && R->steps_this_run >= R->stop_after)) {
      *outcome = VOX_TRAIN_STOPPED;
      s = save_checkpoint(&S);
      if (s == VOX_OK && R->rank == 0)
        vox_train_log_event(R->log, "stop", st->name, si, S.state.step, "stopped at step %lld (%s); resume with the "
                            "same command", (long long)S.state.step, stop_requested ? "signal" : "stop_after");
      break;
    }
    double loss = 0, norm = 0;
    vox_task_counts c;
    bool bad = false;
    if ((s = train_step(&S, &loss, &norm, &c, &bad)) != VOX_OK) break;
    S.state.step++;
    R->steps_this_run++;
    tok_since += c.tokens, smp_since += c.samples;
    if (bad) {
      S.state.bad_in_row++, S.state.n_bad++;
      if (R->rank == 0)
        vox_train_log_event(R->log, "bad_step", st->name, si, S.state.step,
                            "step %lld: non-finite %s (loss %g, grad-norm %g); update skipped (%lld in a row, limit "
                            "%lld)", (long long)S.state.step, isfinite(loss) ? "gradient" : "loss", loss, norm,
                            (long long)S.state.bad_in_row, (long long)st->max_bad_steps);
      if (S.state.bad_in_row >= st->max_bad_steps) {
        char w[256];
        s = vox_errorf(VOX_ERR_NUMERIC, "%s: %lld non-finite steps in a row (max_bad_steps %lld) at step %lld; the "
                       "last good checkpoint is kept", vox_config_where(st->node, w, sizeof w),
                       (long long)S.state.bad_in_row, (long long)st->max_bad_steps, (long long)S.state.step);
        break;
      }
    } else {
      S.state.bad_in_row = 0;
    }
    if (R->rank == 0) {
      double t = now_s(), dt = t - t_last;
      bool record = S.state.step % st->log_every == 0 || S.state.step == st->steps;
      vox_train_log_step ls = {.stage_name = st->name, .stage = si, .step = S.state.step, .steps = st->steps,
                               .loss = loss, .lr = vox_optim_group_lr(S.opt, 0), .grad_norm = norm,
                               .tokens_per_s = dt > 0 ? (double)tok_since / dt : 0,
                               .samples_per_s = dt > 0 ? (double)smp_since / dt : 0,
                               .eta_s = (t - t_start) / (double)(S.state.step - step0) * (double)(st->steps - S.state.step),
                               .tokens = c.tokens, .frames = c.frames, .samples = c.samples};
      vox_train_log_step_event(R->log, &ls, record);
      if (record) t_last = t, tok_since = 0, smp_since = 0;
    }
    if (st->eval_every > 0 && S.state.step % st->eval_every == 0 && (s = run_eval(&S)) != VOX_OK) break;
    if (st->ckpt_every > 0 && S.state.step % st->ckpt_every == 0 && (s = save_checkpoint(&S)) != VOX_OK) break;
  }
  if (s == VOX_OK && *outcome == VOX_TRAIN_COMPLETE) {
    s = run_eval(&S);
    if (s == VOX_OK) s = save_checkpoint(&S); /* the stage's final checkpoint: the next stage starts from it */
  }
  close_stage(&S);
  if (s != VOX_OK) return vox_error_context(s, "stage %d '%s': ", si, st->name);
  return VOX_OK;
}

vox_status vox_train_run(const vox_config *root, const vox_train_opts *opts, vox_train_outcome *outcome) {
  run R = {.root = root, .dist = opts ? opts->dist : NULL, .rank = 0, .world = 1,
           .stop_after = opts ? opts->stop_after : 0, .out = opts && opts->out ? opts->out : stdout};
  if (R.dist) R.rank = R.dist->rank, R.world = R.dist->world_size;
  *outcome = VOX_TRAIN_COMPLETE;
  stop_requested = 0;
  VOX_TRY(vox_recipe_parse(root, &R.recipe));
  /* bf16 mixed precision is a setting of the device's GEMMs and attention (f32 master weights and optimizer state);
   * it holds for this run only */
  bool bf16 = R.recipe.device == VOX_CUDA && !strcmp(R.recipe.precision, "bf16");
  if (bf16) vox_set_matmul_precision(VOX_CUDA, VOX_PRECISION_BF16);
  vox_status s = VOX_OK;
  char *resume = NULL;
  VOX_CHECK_GOTO(s, make_dir(R.recipe.run_dir), done);
  if (!realpath(R.recipe.run_dir, R.run_dir)) {
    s = vox_errorf(VOX_ERR_IO, "%s: cannot resolve (%s)", R.recipe.run_dir, strerror(errno));
    goto done;
  }
  char ck[PATH_MAX + 16];
  snprintf(ck, sizeof ck, "%s/checkpoints", R.run_dir);
  VOX_CHECK_GOTO(s, make_dir(ck), done);
  VOX_CHECK_GOTO(s, vox_config_to_yaml(root, &R.config_yaml), done);
  vox_model_config mc;
  VOX_CHECK_GOTO(s, vox_model_config_parse(R.recipe.model, &mc), done);
  if (mc.vocab_subset[0]) VOX_CHECK_GOTO(s, vox_vocab_subset_read(mc.vocab_subset, &R.vocab_subset, &R.n_vocab_subset), done);
  if (R.recipe.tokenizer) {
    s = vox_tokenizer_new_from_file(R.recipe.tokenizer, &R.tokenizer);
    if (s != VOX_OK) {
      char w[256];
      vox_error_context(s, "%s: tokenizer: ", vox_config_where(vox_config_get(root, "tokenizer"), w, sizeof w));
      goto done;
    }
    /* A model with an audio encoder takes its audio at a placeholder token the tokenizer must know. */
    if (mc.has_encoder)
      VOX_CHECK_GOTO(s, vox_tokenizer_add_special_token(R.tokenizer, mc.audio_token_text, mc.audio_token_source_id), done);
    /* The model's ids index its kept rows: the tokenizer speaks them from here on. */
    if (R.vocab_subset)
      VOX_CHECK_GOTO(s, vox_tokenizer_restrict(R.tokenizer, R.vocab_subset, R.n_vocab_subset, mc.vocab_subset), done);
  }
  if (R.rank == 0) VOX_CHECK_GOTO(s, vox_train_log_open(R.run_dir, R.out, &R.log), done);
  int start = 0, rs = -1;
  int64_t rstep = -1;
  if (R.recipe.resume == VOX_RESUME_AUTO) {
    VOX_CHECK_GOTO(s, vox_train_ckpt_find_latest(R.run_dir, &resume, &rs, &rstep), done);
    if (R.dist && R.dist->agree_resume) VOX_CHECK_GOTO(s, R.dist->agree_resume(R.dist->comm, &resume, &rs, &rstep), done);
    if (resume && rs >= R.recipe.n_stages) {
      s = vox_errorf(VOX_ERR_STATE, "%s: checkpoint of stage %d, but the recipe has %d stages", resume, rs,
                     R.recipe.n_stages);
      goto done;
    }
    if (resume) start = rs;
    if (resume && rstep >= R.recipe.stages[rs].steps) { /* that stage is done: go on with the next */
      start = rs + 1;
      free(resume);
      resume = NULL;
    }
  }
  if (start >= R.recipe.n_stages && R.rank == 0)
    vox_train_log_event(R.log, "complete", R.recipe.stages[R.recipe.n_stages - 1].name, R.recipe.n_stages - 1,
                        rstep, "every stage is already complete in %s", R.run_dir);
  for (int si = start; si < R.recipe.n_stages && s == VOX_OK; si++) {
    s = run_stage(&R, si, si == start ? resume : NULL, outcome);
    if (*outcome == VOX_TRAIN_STOPPED) break;
  }
done:
  if (bf16) vox_set_matmul_precision(VOX_CUDA, VOX_PRECISION_F32);
  free(resume);
  vox_train_log_close(R.log);
  vox_tokenizer_free(R.tokenizer);
  free(R.vocab_subset);
  free(R.config_yaml);
  vox_recipe_clear(&R.recipe);
  return s;
}
