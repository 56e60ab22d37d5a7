/* Training checkpoints: saving (params, optimizer moments, trainer state, metadata), loading parameters through
 * their recorded sources, restoring optimizer and trainer state, and finding/pruning a run's checkpoints. */
#include "train/ckpt.h"

#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "core/version.h"
#include "io/checkpoint.h"

const char *vox_train_ckpt_path(char *buf, size_t cap, const char *run_dir, int stage, int64_t step) {
  snprintf(buf, cap, "%s/checkpoints/s%02d-step%08lld.h5", run_dir, stage, (long long)step);
  return buf;
}

vox_status vox_train_ckpt_save(const char *path, const vox_train_ckpt_info *info, const vox_params *params,
                               const vox_optim *opt, const vox_train_state *s) {
  vox_ckpt_writer *w = NULL;
  VOX_TRY(vox_ckpt_writer_new(path, &w));
  vox_status st = VOX_OK;
  VOX_CHECK_GOTO(st, vox_ckpt_write_attr_string(w, "vox_version", vox_version()), fail);
  VOX_CHECK_GOTO(st, vox_ckpt_write_attr_string(w, "config", info->config_yaml), fail);
  VOX_CHECK_GOTO(st, vox_ckpt_write_attr_string(w, "stage_name", info->stage_name), fail);
  VOX_CHECK_GOTO(st, vox_ckpt_write_attr_string(w, "sources", info->sources ? info->sources : ""), fail);
  VOX_CHECK_GOTO(st, vox_ckpt_write_attr_string(w, "save", info->save_all ? "all" : "trainable"), fail);
  VOX_CHECK_GOTO(st, vox_ckpt_write_attr_int(w, "seed", (int64_t)info->seed), fail);
  VOX_CHECK_GOTO(st, vox_ckpt_write_attr_int(w, "stage", s->stage), fail);
  VOX_CHECK_GOTO(st, vox_ckpt_write_attr_int(w, "step", s->step), fail);
  VOX_CHECK_GOTO(st, vox_ckpt_write_attr_int(w, "bad_in_row", s->bad_in_row), fail);
  VOX_CHECK_GOTO(st, vox_ckpt_write_attr_int(w, "n_bad", s->n_bad), fail);
  VOX_CHECK_GOTO(st, vox_ckpt_write_attr_int(w, "world_size", s->world_size > 0 ? s->world_size : 1), fail);
  VOX_CHECK_GOTO(st, vox_ckpt_write_attr_int(w, "optim_step", opt ? opt->step : 0), fail);
  for (int i = 0; i < params->count; i++) {
    const vox_param *p = &params->items[i];
    if (info->save_all || p->tensor->requires_grad)
      VOX_CHECK_GOTO(st, vox_ckpt_write_tensor(w, "params", p->name, p->tensor), fail);
  }
  for (int i = 0; opt && i < vox_optim_state_count(opt); i++) {
    const char *pname, *slot;
    vox_tensor *t;
    char name[VOX_PARAM_NAME_MAX + 32];
    VOX_CHECK_GOTO(st, vox_optim_state_at(opt, i, &pname, &slot, &t), fail);
    snprintf(name, sizeof name, "%s/%s", pname, slot);
    VOX_CHECK_GOTO(st, vox_ckpt_write_tensor(w, "optim", name, t), fail);
  }
  if (info->n_vocab_subset > 0)
    VOX_CHECK_GOTO(st, vox_ckpt_write_blob(w, "vocab_subset", info->vocab_subset,
                                           (size_t)info->n_vocab_subset * sizeof(int32_t)), fail);
  uint64_t rng[2] = {s->rng.seed, s->rng.offset};
  VOX_CHECK_GOTO(st, vox_ckpt_write_blob(w, "rng", rng, sizeof rng), fail);
  int64_t pos[1 + VOX_TASK_POS_MAX] = {s->pos.n};
  for (int i = 0; i < s->pos.n; i++) pos[1 + i] = s->pos.v[i];
  VOX_CHECK_GOTO(st, vox_ckpt_write_blob(w, "loader", pos, (size_t)(1 + s->pos.n) * sizeof(int64_t)), fail);
  if (info->hang_before_commit == s->step) {
    /* test hook (debug.hang_in_checkpoint_at): the write is complete but not committed; the test kills us here */
    fprintf(stderr, "vox train: debug hook: holding the checkpoint of step %lld before its commit (pid %d)\n",
            (long long)s->step, (int)getpid());
    fflush(stderr);
    for (;;) pause();
  }
  return vox_ckpt_writer_commit(w);
fail:
  vox_ckpt_writer_abort(w);
  return vox_error_context(st, "writing checkpoint %s: ", path);
}

static bool has_prefix(const char *s, const char *p) { return !strncmp(s, p, strlen(p)); }

/* The rows of a stored LLM embedding stand for the token ids of the checkpoint's vocabulary subset (or the whole
 * vocabulary): loading them into a model with another subset would silently swap tokens. */
static vox_status check_vocab(vox_ckpt_reader *r, const char *path, const vox_train_sources *src) {
  int32_t n_model = src ? src->n_vocab_subset : 0;
  bool stored = vox_ckpt_has(r, "state", "vocab_subset");
  void *data = NULL;
  size_t nbytes = 0;
  if (stored) VOX_TRY(vox_ckpt_read_blob(r, "vocab_subset", &data, &nbytes));
  int32_t n_ckpt = (int32_t)(nbytes / sizeof(int32_t));
  bool same = n_ckpt == n_model && (n_model == 0 || !memcmp(data, src->vocab_subset, nbytes));
  free(data);
  if (same) return VOX_OK;
  char a[64], b[64];
  snprintf(a, sizeof a, n_ckpt ? "a subset of %d token ids" : "the whole vocabulary", n_ckpt);
  snprintf(b, sizeof b, n_model ? "a subset of %d token ids" : "the whole vocabulary", n_model);
  return vox_errorf(VOX_ERR_INVALID, "%s: its LLM embedding is over %s, this model's over %s (model.llm.vocab_subset "
                    "must name the same ids the checkpoint was trained with)", path, a, b);
}

/* Applies the sources recorded in an open checkpoint, restricted to `prefix`. */
static vox_status apply_sources(const char *path, const char *sources, vox_params *params, const char *prefix,
                                const vox_train_sources *src, int depth);

static vox_status load_params(const char *path, vox_params *params, const char *prefix, const vox_train_sources *src,
                              int depth) {
  if (depth > 16) return vox_errorf(VOX_ERR_INVALID, "%s: checkpoint sources nest deeper than 16 (a cycle?)", path);
  vox_ckpt_reader *r = NULL;
  VOX_TRY(vox_ckpt_reader_open(path, &r));
  char *sources = NULL, *save = NULL, **names = NULL;
  int n = 0;
  vox_status st = VOX_OK;
  VOX_CHECK_GOTO(st, vox_ckpt_read_attr_string(r, "sources", &sources), done);
  VOX_CHECK_GOTO(st, vox_ckpt_read_attr_string(r, "save", &save), done);
  VOX_CHECK_GOTO(st, apply_sources(path, sources, params, prefix, src, depth), done);
  VOX_CHECK_GOTO(st, vox_ckpt_list(r, "params", &names, &n), done);
  for (int i = 0; i < n; i++) {
    if (!has_prefix(names[i], prefix)) continue;
    if (!strcmp(names[i], "llm.model.embed_tokens.weight") || !strcmp(names[i], "llm.lm_head.weight"))
      VOX_CHECK_GOTO(st, check_vocab(r, path, src), done);
    vox_tensor *t = vox_params_get(params, names[i]);
    if (!t) {
      st = vox_errorf(VOX_ERR_NOT_FOUND,
                      "%s: parameter '%s' is not in this model (a checkpoint of another model or configuration?)",
                      path, names[i]);
      goto done;
    }
    st = vox_ckpt_read_into(r, "params", names[i], t);
    if (st != VOX_OK) {
      vox_error_context(st, "parameter '%s' does not fit this model: ", names[i]);
      goto done;
    }
  }
  if (!strcmp(save, "all"))
    for (int i = 0; i < params->count; i++)
      if (has_prefix(params->items[i].name, prefix) && !vox_ckpt_has(r, "params", params->items[i].name)) {
        st = vox_errorf(VOX_ERR_NOT_FOUND,
                        "%s: this model's parameter '%s' is missing from the checkpoint (saved with save: all; a "
                        "checkpoint of another model?)",
                        path, params->items[i].name);
        goto done;
      }
done:
  for (int i = 0; i < n; i++) free(names[i]);
  free(names);
  free(sources);
  free(save);
  vox_ckpt_reader_close(r);
  return st;
}

vox_status vox_train_apply_source(vox_params *params, const char *part, const char *source,
                                  const vox_train_sources *src) {
  const char *prefix = "";
  if (strcmp(part, "all")) {
    prefix = src && src->part_prefix ? src->part_prefix(src->ctx, part) : NULL;
    if (!prefix) return vox_errorf(VOX_ERR_NOT_FOUND, "init: this model has no part '%s'", part);
  }
  if (!strncmp(source, "ckpt:", 5)) return load_params(source + 5, params, prefix, src, 0);
  if (!strncmp(source, "hf:", 3)) {
    if (!src || !src->load_hf) return vox_errorf(VOX_ERR_UNSUPPORTED, "init: %s: hf: sources cannot be loaded here", part);
    return src->load_hf(src->ctx, part, source + 3);
  }
  return vox_errorf(VOX_ERR_INVALID, "init: %s: unknown source '%s' (expected hf:DIR or ckpt:PATH)", part, source);
}

static vox_status apply_sources(const char *path, const char *sources, vox_params *params, const char *prefix,
                                const vox_train_sources *src, int depth) {
  const char *p = sources;
  while (p && *p) {
    const char *nl = strchr(p, '\n'), *tab = strchr(p, '\t');
    size_t len = nl ? (size_t)(nl - p) : strlen(p);
    if (!tab || tab > p + len) return vox_errorf(VOX_ERR_PARSE, "%s: malformed sources attribute", path);
    char part[128], source[4096];
    snprintf(part, sizeof part, "%.*s", (int)(tab - p), p);
    snprintf(source, sizeof source, "%.*s", (int)(p + len - tab - 1), tab + 1);
    const char *pp = "";
    if (strcmp(part, "all")) {
      pp = src && src->part_prefix ? src->part_prefix(src->ctx, part) : NULL;
      if (!pp) return vox_errorf(VOX_ERR_NOT_FOUND, "%s: source for part '%s', which this model lacks", path, part);
    }
    /* the narrower of the two prefixes, or nothing when they are disjoint */
    const char *eff = has_prefix(pp, prefix) ? pp : has_prefix(prefix, pp) ? prefix : NULL;
    if (eff) {
      vox_status st;
      if (!strncmp(source, "ckpt:", 5))
        st = load_params(source + 5, params, eff, src, depth + 1);
      else
        st = vox_train_apply_source(params, part, source, src);
      if (st != VOX_OK) return vox_error_context(st, "%s (source of %s): ", path, part);
    }
    p = nl ? nl + 1 : NULL;
  }
  return VOX_OK;
}

vox_status vox_train_ckpt_load_params(const char *path, vox_params *params, const char *prefix,
                                      const vox_train_sources *src) {
  return load_params(path, params, prefix ? prefix : "", src, 0);
}

vox_status vox_train_ckpt_load_state(const char *path, vox_optim *opt, vox_train_state *s) {
  vox_ckpt_reader *r = NULL;
  VOX_TRY(vox_ckpt_reader_open(path, &r));
  vox_status st = VOX_OK;
  int64_t v;
  void *blob = NULL;
  size_t nb = 0;
  VOX_CHECK_GOTO(st, vox_ckpt_read_attr_int(r, "stage", &v), done);
  s->stage = (int)v;
  VOX_CHECK_GOTO(st, vox_ckpt_read_attr_int(r, "step", &s->step), done);
  VOX_CHECK_GOTO(st, vox_ckpt_read_attr_int(r, "bad_in_row", &s->bad_in_row), done);
  VOX_CHECK_GOTO(st, vox_ckpt_read_attr_int(r, "n_bad", &s->n_bad), done);
  if (vox_ckpt_read_attr_int(r, "world_size", &s->world_size) != VOX_OK) { /* absent in older files */
    vox_error_clear();
    s->world_size = 1;
  }
  VOX_CHECK_GOTO(st, vox_ckpt_read_attr_int(r, "optim_step", &v), done);
  if (opt) {
    opt->step = v;
    for (int i = 0; i < vox_optim_state_count(opt); i++) {
      const char *pname, *slot;
      vox_tensor *t;
      char name[VOX_PARAM_NAME_MAX + 32];
      VOX_CHECK_GOTO(st, vox_optim_state_at(opt, i, &pname, &slot, &t), done);
      snprintf(name, sizeof name, "%s/%s", pname, slot);
      if (!vox_ckpt_has(r, "optim", name)) {
        st = vox_errorf(VOX_ERR_NOT_FOUND, "%s: optimizer state '%s' is missing (the stage trains other parameters "
                                           "than when this checkpoint was written?)", path, name);
        goto done;
      }
      VOX_CHECK_GOTO(st, vox_ckpt_read_into(r, "optim", name, t), done);
    }
  }
  VOX_CHECK_GOTO(st, vox_ckpt_read_blob(r, "rng", &blob, &nb), done);
  if (nb != 2 * sizeof(uint64_t)) {
    st = vox_errorf(VOX_ERR_PARSE, "%s: /state/rng has %zu bytes, expected 16", path, nb);
    goto done;
  }
  s->rng.seed = ((uint64_t *)blob)[0];
  s->rng.offset = ((uint64_t *)blob)[1];
  free(blob);
  blob = NULL;
  VOX_CHECK_GOTO(st, vox_ckpt_read_blob(r, "loader", &blob, &nb), done);
  int64_t *pv = blob;
  if (nb < sizeof(int64_t) || pv[0] < 0 || pv[0] > VOX_TASK_POS_MAX || nb != (size_t)(1 + pv[0]) * sizeof(int64_t)) {
    st = vox_errorf(VOX_ERR_PARSE, "%s: /state/loader is malformed (%zu bytes)", path, nb);
    goto done;
  }
  s->pos.n = (int)pv[0];
  for (int i = 0; i < s->pos.n; i++) s->pos.v[i] = pv[1 + i];
done:
  free(blob);
  vox_ckpt_reader_close(r);
  return st;
}

/* "s02-step00000123.h5" -> stage, step. */
static bool parse_name(const char *name, int *stage, long long *step) {
  int used = 0;
  if (sscanf(name, "s%d-step%lld.h5%n", stage, step, &used) != 2) return false;
  return name[used] == '\0';
}

typedef struct entry {
  int stage;
  long long step;
  char *name;
} entry;

static int cmp_entry_desc(const void *a, const void *b) {
  const entry *x = a, *y = b;
  if (x->stage != y->stage) return x->stage < y->stage ? 1 : -1;
  return x->step < y->step ? 1 : x->step > y->step ? -1 : 0;
}

static vox_status list_ckpts(const char *run_dir, entry **out, int *n) {
  char dir[4096];
  snprintf(dir, sizeof dir, "%s/checkpoints", run_dir);
  *out = NULL;
  *n = 0;
  DIR *d = opendir(dir);
  if (!d) return VOX_OK;
  entry *e = NULL;
  int cap = 0;
  struct dirent *de;
  while ((de = readdir(d))) {
    int sg;
    long long sp;
    if (!parse_name(de->d_name, &sg, &sp)) continue;
    if (*n == cap) {
      cap = cap ? 2 * cap : 16;
      entry *g = realloc(e, (size_t)cap * sizeof *e);
      if (!g) break;
      e = g;
    }
    e[*n] = (entry){sg, sp, strdup(de->d_name)};
    (*n)++;
  }
  closedir(d);
  qsort(e, (size_t)*n, sizeof *e, cmp_entry_desc);
  *out = e;
  return VOX_OK;
}

vox_status vox_train_ckpt_find_latest(const char *run_dir, char **path, int *stage, int64_t *step) {
  entry *e = NULL;
  int n = 0;
  *path = NULL;
  VOX_TRY(list_ckpts(run_dir, &e, &n));
  for (int i = 0; i < n && !*path; i++) {
    char p[4200];
    snprintf(p, sizeof p, "%s/checkpoints/%s", run_dir, e[i].name);
    vox_ckpt_reader *r = NULL;
    int64_t sg = -1, sp = -1;
    char **names = NULL;
    int nn = 0;
    bool ok = vox_ckpt_reader_open(p, &r) == VOX_OK && vox_ckpt_read_attr_int(r, "stage", &sg) == VOX_OK &&
              vox_ckpt_read_attr_int(r, "step", &sp) == VOX_OK && vox_ckpt_list(r, "params", &names, &nn) == VOX_OK &&
              vox_ckpt_has(r, "state", "loader") && sg == e[i].stage && sp == e[i].step;
    for (int k = 0; k < nn; k++) free(names[k]);
    free(names);
    if (r) vox_ckpt_reader_close(r);
    if (ok) {
      *path = strdup(p);
      *stage = (int)sg;
      *step = sp;
    } else {
      vox_log_warn("resume: skipping %s: not a valid checkpoint (%s)", p, vox_last_error());
    }
  }
  for (int i = 0; i < n; i++) free(e[i].name);
  free(e);
  return VOX_OK;
}

void vox_train_ckpt_prune(const char *run_dir, int stage, int64_t keep_last, int64_t protect) {
  char dir[4096];
  snprintf(dir, sizeof dir, "%s/checkpoints", run_dir);
  /* stale temporaries of writes that were killed */
  DIR *d = opendir(dir);
  if (d) {
    struct dirent *de;
    while ((de = readdir(d)))
      if (strstr(de->d_name, ".h5.tmp-")) {
        int pid = atoi(strstr(de->d_name, ".h5.tmp-") + 8);
        if (pid != (int)getpid() && (pid <= 0 || kill(pid, 0) != 0)) { /* its writer is gone */
          char p[4400];
          snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
          unlink(p);
        }
      }
    closedir(d);
  }
  if (keep_last <= 0) return;
  entry *e = NULL;
  int n = 0;
  if (list_ckpts(run_dir, &e, &n) != VOX_OK) return;
  int64_t kept = 0;
  for (int i = 0; i < n; i++) {
    if (e[i].stage != stage) continue;
    if (e[i].step == protect || kept < keep_last) { /* the newest keep_last, and always the protected one */
      kept++;
      continue;
    }
    char p[4400];
    snprintf(p, sizeof p, "%s/%s", dir, e[i].name);
    unlink(p);
  }
  for (int i = 0; i < n; i++) free(e[i].name);
  free(e);
}
