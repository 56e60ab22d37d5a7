/* The recipe schema: top-level keys, stages and their sections are checked here (unknown keys with suggestions,
 * types, required keys, value ranges), each error naming file:line and the key path. */
#include "train/recipe.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/backend.h"
#include "core/log.h"
#include "data/manifest.h"
#include "nn/module.h"
#include "train/task.h"

static const char *const top_keys[] = {"run_dir", "seed", "device", "precision", "model", "tokenizer", "data",
                                       "stages", "resume", "debug", "name", "description",
                                       "distributed" /* read by dist/train_dist.c */, NULL};
static const char *const stage_keys[] = {"name", "task", "init", "trainable", "frozen", "lora", "data", "optimizer",
                                         "schedule", "steps", "batch", "clip_grad_norm", "activation_checkpointing",
                                         "eval", "checkpoint", "max_bad_steps", "log_every", "loss", NULL};
static const char *const optim_keys[] = {"kind", "lr", "weight_decay", "betas", "eps", "momentum", "nesterov",
                                         "groups", NULL};
static const char *const group_keys[] = {"name", "params", "lr", "weight_decay", NULL};
static const char *const sched_keys[] = {"kind", "warmup_steps", "min_lr_ratio", NULL};
static const char *const batch_keys[] = {"max_frames_in_batch", "max_tokens_in_batch", "batch_size", "grad_accum",
                                         NULL};
static const char *const ckpt_keys[] = {"every", "keep_last", "save", NULL};
static const char *const lora_keys[] = {"targets", "rank", "alpha", "dropout", NULL};
static const char *const debug_keys[] = {"inject_nan_at", "hang_in_checkpoint_at", NULL};
static const char *const dataset_keys[] = {"manifest", "sample_rate", "features", "n_mels", "lfr_m", "lfr_n", "cmvn",
                                           "specaugment", "num_workers", "description", "speech_as_text", "spelled",
                                           "spelling_noise", NULL};

static vox_status err_at(const vox_config *n, vox_status code, const char *what) {
  char w[256], p[256];
  return vox_errorf(code, "%s: %s: %s", vox_config_where(n, w, sizeof w), vox_config_path(n, p, sizeof p), what);
}

static vox_status need_map(const vox_config *n) {
  return n->kind == VOX_CONFIG_MAP ? VOX_OK : err_at(n, VOX_ERR_PARSE, "expected a mapping");
}

static vox_status missing(const vox_config *parent, const char *key) {
  char w[256], p[256], msg[600];
  const char *pp = vox_config_path(parent, p, sizeof p);
  snprintf(msg, sizeof msg, "missing required key %s%s%s", pp[0] ? pp : "", pp[0] ? "." : "", key);
  return vox_errorf(VOX_ERR_PARSE, "%s: %s", vox_config_where(parent, w, sizeof w), msg);
}

/* Keys = base list + the task's extra keys. */
static vox_status check_keys2(const vox_config *n, const char *const *a, const char *const *b) {
  const char *all[64];
  int k = 0;
  for (int i = 0; a && a[i] && k < 63; i++) all[k++] = a[i];
  for (int i = 0; b && b[i] && k < 63; i++) all[k++] = b[i];
  all[k] = NULL;
  return vox_config_check_keys(n, all);
}

/* A glob or a list of globs. */
static vox_status read_globs(const vox_config *n, const vox_config **out, int *count) {
  *count = 0;
  if (!n || n->kind == VOX_CONFIG_NULL) return VOX_OK;
  int len = n->kind == VOX_CONFIG_SEQ ? n->n_items : 1;
  if (len > VOX_RECIPE_MAX_GLOBS) return err_at(n, VOX_ERR_PARSE, "too many globs (at most 32)");
  for (int i = 0; i < len; i++) {
    const vox_config *it = n->kind == VOX_CONFIG_SEQ ? n->items[i] : n;
    if (it->kind != VOX_CONFIG_SCALAR) return err_at(it, VOX_ERR_PARSE, "expected a glob or a list of globs");
    out[(*count)++] = it;
  }
  return VOX_OK;
}

static vox_status pos_int(const vox_config *c, const char *key, int64_t dflt, int64_t lo, int64_t *out) {
  VOX_TRY(vox_config_int(c, key, dflt, out));
  if (*out < lo) {
    char msg[128];
    snprintf(msg, sizeof msg, "must be >= %lld, got %lld", (long long)lo, (long long)*out);
    return err_at(vox_config_get(c, key), VOX_ERR_PARSE, msg);
  }
  return VOX_OK;
}

static vox_status parse_optimizer(const vox_config *o, vox_recipe_stage *s) {
  const char *kind = "adamw";
  double lr = 1e-3, wd = 0.01, eps = 1e-8, mom = 0;
  bool nesterov = false;
  if (o) {
    VOX_TRY(need_map(o));
    VOX_TRY(vox_config_check_keys(o, optim_keys));
    VOX_TRY(vox_config_string(o, "kind", "adamw", &kind));
    VOX_TRY(vox_config_float(o, "lr", lr, &lr));
    VOX_TRY(vox_config_float(o, "weight_decay", wd, &wd));
    VOX_TRY(vox_config_float(o, "eps", eps, &eps));
    VOX_TRY(vox_config_float(o, "momentum", 0, &mom));
    VOX_TRY(vox_config_bool(o, "nesterov", false, &nesterov));
  }
  if (!strcmp(kind, "adamw")) {
    s->optim = vox_optim_adamw_config((float)lr, (float)wd);
    s->optim.eps = (float)eps;
  } else if (!strcmp(kind, "sgd")) {
    s->optim = vox_optim_sgd_config((float)lr, (float)mom, nesterov, (float)wd);
  } else {
    return err_at(vox_config_get(o, "kind"), VOX_ERR_PARSE, "expected adamw or sgd");
  }
  if (!(lr > 0)) return err_at(vox_config_get(o, "lr"), VOX_ERR_PARSE, "must be > 0");
  vox_config *betas = o ? vox_config_get(o, "betas") : NULL;
  if (betas) {
    if (betas->kind != VOX_CONFIG_SEQ || betas->n_items != 2)
      return err_at(betas, VOX_ERR_PARSE, "expected a list of two numbers [beta1, beta2]");
    double b1, b2;
    VOX_TRY(vox_config_float(betas, "0", 0, &b1));
    VOX_TRY(vox_config_float(betas, "1", 0, &b2));
    if (!(b1 >= 0 && b1 < 1 && b2 >= 0 && b2 < 1)) return err_at(betas, VOX_ERR_PARSE, "betas must be in [0, 1)");
    s->optim.beta1 = (float)b1, s->optim.beta2 = (float)b2;
  }
  vox_config *groups = o ? vox_config_get(o, "groups") : NULL;
  if (groups) {
    if (groups->kind != VOX_CONFIG_SEQ) return err_at(groups, VOX_ERR_PARSE, "expected a list of groups");
    if (groups->n_items > VOX_RECIPE_MAX_GROUPS) return err_at(groups, VOX_ERR_PARSE, "at most 8 groups");
    for (int i = 0; i < groups->n_items; i++) {
      const vox_config *g = groups->items[i];
      vox_recipe_group *rg = &s->groups[s->n_groups++];
      VOX_TRY(need_map(g));
      VOX_TRY(vox_config_check_keys(g, group_keys));
      rg->node = g;
      VOX_TRY(vox_config_string_req(g, "params", &rg->params));
      VOX_TRY(vox_config_string(g, "name", rg->params, &rg->name));
      VOX_TRY(vox_config_float(g, "lr", -1, &rg->lr));
      VOX_TRY(vox_config_float(g, "weight_decay", -1, &rg->weight_decay));
      if (strlen(rg->name) >= VOX_OPTIM_GROUP_NAME_MAX) return err_at(g, VOX_ERR_PARSE, "group name too long");
    }
  }
  return VOX_OK;
}

static vox_status parse_stage(const vox_config *n, int idx, vox_recipe_stage *s) {
  s->node = n;
  VOX_TRY(need_map(n));
  VOX_TRY(vox_config_check_keys(n, stage_keys));
  VOX_TRY(vox_config_string(n, "name", NULL, &s->name));
  if (!s->name) s->name = "";
  if (!vox_config_get(n, "task")) return missing(n, "task");
  VOX_TRY(vox_config_string_req(n, "task", &s->task));
  const vox_task_vtable *vt = NULL;
  if (vox_task_find(s->task, &vt) != VOX_OK) {
    char w[256];
    return vox_error_context(VOX_ERR_PARSE, "%s: stages.%d.task: ", vox_config_where(vox_config_get(n, "task"), w,
                                                                                       sizeof w), idx);
  }
  /* init */
  vox_config *init = vox_config_get(n, "init");
  if (init && init->kind != VOX_CONFIG_NULL) {
    VOX_TRY(need_map(init));
    for (int i = 0; i < init->n_items; i++) {
      const vox_config *it = init->items[i];
      if (s->n_init >= VOX_RECIPE_MAX_INIT) return err_at(it, VOX_ERR_PARSE, "too many init entries");
      if (it->kind != VOX_CONFIG_SCALAR) return err_at(it, VOX_ERR_PARSE, "expected hf:DIR, ckpt:PATH or previous");
      const char *src = it->scalar;
      if (strncmp(src, "hf:", 3) && strncmp(src, "ckpt:", 5) && strcmp(src, "previous"))
        return err_at(it, VOX_ERR_PARSE, "expected hf:DIR, ckpt:PATH or previous");
      if (!strcmp(src, "previous") && idx == 0)
        return err_at(it, VOX_ERR_PARSE, "the first stage has no previous stage");
      s->init[s->n_init++] = (vox_recipe_init){.part = it->key, .source = src, .node = it};
    }
  }
  VOX_TRY(read_globs(vox_config_get(n, "trainable"), s->trainable, &s->n_trainable));
  VOX_TRY(read_globs(vox_config_get(n, "frozen"), s->frozen, &s->n_frozen));
  s->lora = vox_config_get(n, "lora");
  if (s->lora) {
    VOX_TRY(need_map(s->lora));
    VOX_TRY(vox_config_check_keys(s->lora, lora_keys));
    const vox_config *targets = vox_config_get(s->lora, "targets");
    if (!targets) return missing(s->lora, "targets");
    VOX_TRY(read_globs(targets, s->lora_targets, &s->n_lora_targets));
    int64_t rank;
    double alpha, dropout;
    VOX_TRY(vox_config_int(s->lora, "rank", 8, &rank));
    if (rank < 1 || rank > 4096) return err_at(vox_config_get(s->lora, "rank"), VOX_ERR_PARSE, "must be in [1, 4096]");
    VOX_TRY(vox_config_float(s->lora, "alpha", 2.0 * (double)rank, &alpha));
    VOX_TRY(vox_config_float(s->lora, "dropout", 0.0, &dropout));
    if (!(dropout >= 0 && dropout < 1)) return err_at(vox_config_get(s->lora, "dropout"), VOX_ERR_PARSE, "must be in [0, 1)");
    s->lora_rank = (int)rank, s->lora_alpha = (float)alpha, s->lora_dropout = (float)dropout;
  }
  vox_config *data = vox_config_get(n, "data");
  if (!data) return missing(n, "data");
  VOX_TRY(need_map(data));
  static const char *const data_base[] = {"train", "eval", "fraction", NULL};
  VOX_TRY(check_keys2(data, data_base, vt->data_keys));
  if (!vox_config_get(data, "train")) return missing(data, "train");
  double frac;
  VOX_TRY(vox_config_float(data, "fraction", 1.0, &frac));
  if (!(frac > 0 && frac <= 1)) return err_at(vox_config_get(data, "fraction"), VOX_ERR_PARSE, "must be in (0, 1]");
  vox_config *loss = vox_config_get(n, "loss");
  if (loss) {
    if (!vt->loss_keys) return err_at(loss, VOX_ERR_PARSE, "this stage's task takes no loss options");
    VOX_TRY(need_map(loss));
    VOX_TRY(vox_config_check_keys(loss, vt->loss_keys));
  }
  VOX_TRY(parse_optimizer(vox_config_get(n, "optimizer"), s));
  /* schedule */
  vox_config *sc = vox_config_get(n, "schedule");
  const char *sk = "constant";
  s->schedule = (vox_schedule){.kind = VOX_SCHED_CONSTANT};
  if (sc) {
    VOX_TRY(need_map(sc));
    VOX_TRY(vox_config_check_keys(sc, sched_keys));
    VOX_TRY(vox_config_string(sc, "kind", "constant", &sk));
    if (vox_schedule_kind_parse(sk, &s->schedule.kind) != VOX_OK)
      return err_at(vox_config_get(sc, "kind"), VOX_ERR_PARSE, "expected constant, cosine or linear");
    VOX_TRY(pos_int(sc, "warmup_steps", 0, 0, &s->schedule.warmup_steps));
    VOX_TRY(vox_config_float(sc, "min_lr_ratio", 0.0, &s->schedule.min_lr_ratio));
    if (!(s->schedule.min_lr_ratio >= 0 && s->schedule.min_lr_ratio <= 1))
      return err_at(vox_config_get(sc, "min_lr_ratio"), VOX_ERR_PARSE, "must be in [0, 1]");
  }
  if (!vox_config_get(n, "steps")) return missing(n, "steps");
  VOX_TRY(pos_int(n, "steps", 0, 1, &s->steps));
  s->schedule.total_steps = s->steps;
  /* batch */
  vox_config *b = vox_config_get(n, "batch");
  if (!b) return missing(n, "batch");
  VOX_TRY(need_map(b));
  VOX_TRY(vox_config_check_keys(b, batch_keys));
  int64_t tmp;
  VOX_TRY(pos_int(b, "grad_accum", 1, 1, &s->grad_accum));
  VOX_TRY(pos_int(b, "batch_size", 0, 0, &tmp));
  VOX_TRY(pos_int(b, "max_frames_in_batch", 0, 0, &tmp));
  VOX_TRY(pos_int(b, "max_tokens_in_batch", 0, 0, &tmp));
  VOX_TRY(vox_config_float(n, "clip_grad_norm", 0.0, &s->clip_grad_norm));
  if (s->clip_grad_norm < 0) return err_at(vox_config_get(n, "clip_grad_norm"), VOX_ERR_PARSE, "must be >= 0");
  VOX_TRY(vox_config_bool(n, "activation_checkpointing", false, &s->activation_checkpointing));
  /* eval */
  s->eval = vox_config_get(n, "eval");
  if (s->eval) {
    VOX_TRY(need_map(s->eval));
    static const char *const eval_base[] = {"every", "max_batches", "at_start", NULL};
    VOX_TRY(check_keys2(s->eval, eval_base, vt->eval_keys));
    VOX_TRY(pos_int(s->eval, "every", 0, 0, &s->eval_every));
    VOX_TRY(pos_int(s->eval, "max_batches", 0, 0, &s->eval_max_batches));
    VOX_TRY(vox_config_bool(s->eval, "at_start", false, &s->eval_at_start));
  }
  /* checkpoint */
  vox_config *ck = vox_config_get(n, "checkpoint");
  const char *save = "trainable";
  if (ck) {
    VOX_TRY(need_map(ck));
    VOX_TRY(vox_config_check_keys(ck, ckpt_keys));
    VOX_TRY(pos_int(ck, "every", 0, 0, &s->ckpt_every));
    VOX_TRY(pos_int(ck, "keep_last", 0, 0, &s->keep_last));
    VOX_TRY(vox_config_string(ck, "save", "trainable", &save));
    if (strcmp(save, "trainable") && strcmp(save, "all"))
      return err_at(vox_config_get(ck, "save"), VOX_ERR_PARSE, "expected trainable or all");
  }
  s->save_all = !strcmp(save, "all");
  VOX_TRY(pos_int(n, "max_bad_steps", 5, 1, &s->max_bad_steps));
  VOX_TRY(pos_int(n, "log_every", 10, 1, &s->log_every));
  return VOX_OK;
}

static char *resolve_against(const vox_config *n, const char *rel) {
  if (!n->file || n->file[0] == '<' || rel[0] == '/') return strdup(rel);
  const char *slash = strrchr(n->file, '/');
  if (!slash) return strdup(rel);
  char *dir = strndup(n->file, (size_t)(slash - n->file));
  char *p = dir ? vox_manifest_resolve(dir, rel) : NULL;
  free(dir);
  return p;
}

static bool cuda_available(void) {
  const vox_backend *be = vox_backend_get(VOX_CUDA);
  return be && be->available;
}

vox_device vox_recipe_device(const vox_config *root) {
  const vox_config *n = vox_config_get(root, "device");
  const char *dev = n && n->kind == VOX_CONFIG_SCALAR ? n->scalar : "auto";
  return !strcmp(dev, "cuda") || (!strcmp(dev, "auto") && cuda_available()) ? VOX_CUDA : VOX_CPU;
}

vox_status vox_recipe_parse(const vox_config *root, vox_recipe *r) {
  memset(r, 0, sizeof *r);
  r->root = root;
  r->hang_in_ckpt_at_step = -1;
  vox_status st = VOX_OK;
  VOX_CHECK_GOTO(st, need_map(root), fail);
  VOX_CHECK_GOTO(st, vox_config_check_keys(root, top_keys), fail);
  if (!vox_config_get(root, "run_dir")) VOX_CHECK_GOTO(st, missing(root, "run_dir"), fail);
  VOX_CHECK_GOTO(st, vox_config_string_req(root, "run_dir", &r->run_dir), fail);
  int64_t seed;
  VOX_CHECK_GOTO(st, vox_config_int(root, "seed", 0, &seed), fail);
  r->seed = (uint64_t)seed;
  const char *dev = "auto";
  VOX_CHECK_GOTO(st, vox_config_string(root, "device", "auto", &dev), fail);
  if (!strcmp(dev, "cpu")) {
    r->device = VOX_CPU;
  } else if (!strcmp(dev, "cuda") || !strcmp(dev, "auto")) {
    if (!cuda_available() && !strcmp(dev, "cuda"))
      VOX_CHECK_GOTO(st, err_at(vox_config_get(root, "device"), VOX_ERR_UNSUPPORTED,
                                "cuda requested but no CUDA device is available in this build/machine"), fail);
    r->device = vox_recipe_device(root);
  } else {
    VOX_CHECK_GOTO(st, err_at(vox_config_get(root, "device"), VOX_ERR_PARSE, "expected auto, cpu or cuda"), fail);
  }
  VOX_CHECK_GOTO(st, vox_config_string(root, "precision", "f32", &r->precision), fail);
  if (!strcmp(r->precision, "bf16")) {
    if (r->device == VOX_CPU)
      VOX_CHECK_GOTO(st, err_at(vox_config_get(root, "precision"), VOX_ERR_UNSUPPORTED,
                                "bf16 is a GPU mixed-precision mode; the CPU backend trains in f32 (use f32)"),
                     fail);
  } else if (strcmp(r->precision, "f32")) {
    VOX_CHECK_GOTO(st, err_at(vox_config_get(root, "precision"), VOX_ERR_PARSE, "expected f32 or bf16"), fail);
  }
  r->model = vox_config_get(root, "model");
  if (!r->model) VOX_CHECK_GOTO(st, missing(root, "model"), fail);
  VOX_CHECK_GOTO(st, need_map(r->model), fail);
  const char *tok = NULL;
  VOX_CHECK_GOTO(st, vox_config_string(root, "tokenizer", NULL, &tok), fail);
  if (tok) {
    r->tokenizer_owned = resolve_against(vox_config_get(root, "tokenizer"), tok);
    r->tokenizer = r->tokenizer_owned;
  }
  const char *resume = "auto";
  VOX_CHECK_GOTO(st, vox_config_string(root, "resume", "auto", &resume), fail);
  if (!strcmp(resume, "auto")) r->resume = VOX_RESUME_AUTO;
  else if (!strcmp(resume, "never")) r->resume = VOX_RESUME_NEVER;
  else VOX_CHECK_GOTO(st, err_at(vox_config_get(root, "resume"), VOX_ERR_PARSE, "expected auto or never"), fail);
  vox_config *data = vox_config_get(root, "data");
  if (data) {
    VOX_CHECK_GOTO(st, need_map(data), fail);
    for (int i = 0; i < data->n_items; i++) {
      VOX_CHECK_GOTO(st, need_map(data->items[i]), fail);
      VOX_CHECK_GOTO(st, vox_config_check_keys(data->items[i], dataset_keys), fail);
      if (!vox_config_get(data->items[i], "manifest")) VOX_CHECK_GOTO(st, missing(data->items[i], "manifest"), fail);
    }
  }
  vox_config *dbg = vox_config_get(root, "debug");
  if (dbg) {
    VOX_CHECK_GOTO(st, need_map(dbg), fail);
    VOX_CHECK_GOTO(st, vox_config_check_keys(dbg, debug_keys), fail);
    vox_config *nan = vox_config_get(dbg, "inject_nan_at");
    if (nan) {
      if (nan->kind != VOX_CONFIG_SEQ || nan->n_items > 32)
        VOX_CHECK_GOTO(st, err_at(nan, VOX_ERR_PARSE, "expected a list of step numbers"), fail);
      for (int i = 0; i < nan->n_items; i++) {
        char k[16];
        snprintf(k, sizeof k, "%d", i);
        VOX_CHECK_GOTO(st, vox_config_int_req(nan, k, &r->inject_nan[r->n_inject_nan++]), fail);
      }
    }
    VOX_CHECK_GOTO(st, vox_config_int(dbg, "hang_in_checkpoint_at", -1, &r->hang_in_ckpt_at_step), fail);
  }
  vox_config *stages = vox_config_get(root, "stages");
  if (!stages) VOX_CHECK_GOTO(st, missing(root, "stages"), fail);
  if (stages->kind != VOX_CONFIG_SEQ || stages->n_items == 0)
    VOX_CHECK_GOTO(st, err_at(stages, VOX_ERR_PARSE, "expected a non-empty list of stages"), fail);
  r->stages = calloc((size_t)stages->n_items, sizeof *r->stages);
  if (!r->stages) VOX_CHECK_GOTO(st, vox_errorf(VOX_ERR_NOMEM, "out of memory"), fail);
  r->n_stages = stages->n_items;
  for (int i = 0; i < r->n_stages; i++) {
    VOX_CHECK_GOTO(st, parse_stage(stages->items[i], i, &r->stages[i]), fail);
    for (int j = 0; j < i; j++)
      if (r->stages[i].name[0] && !strcmp(r->stages[i].name, r->stages[j].name))
        VOX_CHECK_GOTO(st, err_at(vox_config_get(stages->items[i], "name"), VOX_ERR_PARSE,
                                  "two stages have this name"), fail);
  }
  return VOX_OK;
fail:
  vox_recipe_clear(r);
  return st;
}

void vox_recipe_clear(vox_recipe *r) {
  free(r->stages);
  free(r->tokenizer_owned);
  r->stages = NULL;
  r->tokenizer_owned = NULL;
}
