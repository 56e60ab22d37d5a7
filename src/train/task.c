/* The task registry (tasks register at load time with VOX_TASK_REGISTER) and the helpers every task uses to
 * find its datasets in the recipe. */
#include "train/task.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "data/manifest.h"

#define MAX_TASKS 32
static const vox_task_vtable *tasks[MAX_TASKS];
static int n_tasks;

void vox_task_register(const vox_task_vtable *vt) {
  if (n_tasks < MAX_TASKS) tasks[n_tasks++] = vt;
}

int vox_task_count(void) { return n_tasks; }
const vox_task_vtable *vox_task_at(int i) { return i >= 0 && i < n_tasks ? tasks[i] : NULL; }

vox_status vox_task_find(const char *name, const vox_task_vtable **out) {
  for (int i = 0; i < n_tasks; i++)
    if (!strcmp(tasks[i]->name, name)) {
      *out = tasks[i];
      return VOX_OK;
    }
  char known[512] = "";
  for (int i = 0; i < n_tasks; i++) {
    size_t l = strlen(known);
    snprintf(known + l, sizeof known - l, "%s%s", i ? ", " : "", tasks[i]->name);
  }
  return vox_errorf(VOX_ERR_NOT_FOUND, "unknown task '%s' (known: %s)", name, known);
}

vox_status vox_task_metrics_add(vox_task_metrics *m, const char *name, double value) {
  if (m->n >= VOX_TASK_MAX_METRICS || strlen(name) >= VOX_TASK_METRIC_NAME_MAX)
    return vox_errorf(VOX_ERR_INVALID, "task metrics: cannot add '%s' (%d of %d used, names < %d chars)", name, m->n,
                      VOX_TASK_MAX_METRICS, VOX_TASK_METRIC_NAME_MAX);
  snprintf(m->name[m->n], VOX_TASK_METRIC_NAME_MAX, "%s", name);
  m->value[m->n++] = value;
  return VOX_OK;
}

FILE *vox_task_hyp_log_open(const vox_task_ctx *ctx) {
  if (ctx->rank != 0 || !ctx->run_dir) return NULL;
  char path[1024];
  snprintf(path, sizeof path, "%s/eval_%d_hyp.jsonl", ctx->run_dir, ctx->stage_index);
  return fopen(path, "w");
}

void vox_task_hyp_log(FILE *log, const char *key, const char *kind, const char *ref, const char *hyp) {
  if (!log) return;
  cJSON *row = cJSON_CreateObject();
  cJSON_AddStringToObject(row, "key", key);
  cJSON_AddStringToObject(row, "kind", kind);
  cJSON_AddStringToObject(row, "ref", ref);
  cJSON_AddStringToObject(row, "hyp", hyp);
  char *line = cJSON_PrintUnformatted(row);
  if (line) fprintf(log, "%s\n", line);
  free(line);
  cJSON_Delete(row);
}

/* Folder of the file a node was written in ("." for overrides and files without a folder). */
static char *node_dir(const vox_config *n) {
  if (!n || !n->file || n->file[0] == '<') return strdup(".");
  const char *slash = strrchr(n->file, '/');
  if (!slash) return strdup(".");
  return strndup(n->file, (size_t)(slash - n->file));
}

vox_status vox_task_dataset(const vox_task_ctx *ctx, const vox_config *ref, const char *name, char **manifest,
                            const vox_config **node) {
  char where[256];
  vox_config *data = vox_config_get(ctx->recipe, "data");
  vox_config *ds = NULL;
  if (data && data->kind == VOX_CONFIG_MAP)
    for (int i = 0; i < data->n_items; i++)
      if (!strcmp(data->items[i]->key, name)) ds = data->items[i];
  if (!ds)
    return vox_errorf(VOX_ERR_NOT_FOUND, "%s: dataset '%s' is not defined under the recipe's top-level `data`",
                      vox_config_where(ref ? ref : ctx->stage, where, sizeof where), name);
  const char *rel = NULL;
  VOX_TRY(vox_config_string_req(ds, "manifest", &rel));
  vox_config *mnode = vox_config_get(ds, "manifest");
  char *dir = node_dir(mnode);
  char *path = dir ? vox_manifest_resolve(dir, rel) : NULL;
  free(dir);
  if (!path) return vox_errorf(VOX_ERR_NOMEM, "dataset '%s': out of memory", name);
  *manifest = path;
  if (node) *node = ds;
  return VOX_OK;
}

vox_status vox_task_train_sets(const vox_task_ctx *ctx, const char ***names, int *n) {
  char where[256], path[256];
  vox_config *t = vox_config_get(ctx->stage, "data.train");
  if (!t)
    return vox_errorf(VOX_ERR_NOT_FOUND, "%s: stage '%s' has no data.train (a dataset name or a list of them)",
                      vox_config_where(ctx->stage, where, sizeof where),
                      vox_config_path(ctx->stage, path, sizeof path));
  int count = t->kind == VOX_CONFIG_SEQ ? t->n_items : 1;
  const char **out = calloc((size_t)count, sizeof *out);
  if (!out) return vox_errorf(VOX_ERR_NOMEM, "out of memory");
  for (int i = 0; i < count; i++) {
    const vox_config *it = t->kind == VOX_CONFIG_SEQ ? t->items[i] : t;
    if (it->kind != VOX_CONFIG_SCALAR) {
      free(out);
      return vox_errorf(VOX_ERR_INVALID, "%s: %s: expected a dataset name or a list of names",
                        vox_config_where(it, where, sizeof where), vox_config_path(it, path, sizeof path));
    }
    out[i] = it->scalar;
  }
  if (count == 0) {
    free(out);
    return vox_errorf(VOX_ERR_INVALID, "%s: data.train is an empty list", vox_config_where(t, where, sizeof where));
  }
  *names = out;
  *n = count;
  return VOX_OK;
}
