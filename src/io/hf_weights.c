/* Loading and saving a registry subtree as HF safetensors: resolve the files (single or sharded index), plan every
 * tensor -> parameter copy and report all problems in one message before copying anything; save in HF's layout. */
#include "io/hf_weights.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/autograd.h"
#include "core/log.h"
#include "core/ops.h"
#include "io/safetensors.h"

#define HF_SINGLE "model.safetensors"
#define HF_INDEX "model.safetensors.index.json"
/* How many names each problem list shows before "... and N more": the whole message must fit vox's error buffer. */
#define HF_LIST_MAX 6

/* ---- small helpers ------------------------------------------------------------------------------------------- */

/* A bounded message under construction; appends stop (marked) once it is full. */
typedef struct msgbuf {
  char s[1900];
  size_t len;
} msgbuf;

static void msg_add(msgbuf *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void msg_add(msgbuf *m, const char *fmt, ...) {
  if (m->len >= sizeof m->s - 1) return;
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(m->s + m->len, sizeof m->s - m->len, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  m->len += (size_t)n;
  if (m->len >= sizeof m->s - 1) {
    m->len = sizeof m->s - 1;
    memcpy(m->s + sizeof m->s - 5, "...", 4);
  }
}

static char *join_path(const char *dir, const char *name) {
  size_t n = strlen(dir) + strlen(name) + 2;
  char *p = malloc(n);
  if (p) snprintf(p, n, "%s/%s", dir, name);
  return p;
}

static bool is_dir(const char *p) {
  struct stat sb;
  return stat(p, &sb) == 0 && S_ISDIR(sb.st_mode);
}
static bool is_file(const char *p) {
  struct stat sb;
  return stat(p, &sb) == 0 && S_ISREG(sb.st_mode);
}
static bool ends_with(const char *s, const char *suffix) {
  size_t a = strlen(s), b = strlen(suffix);
  return a >= b && strcmp(s + a - b, suffix) == 0;
}

static bool any_glob(const char *const *globs, const char *name) {
  for (const char *const *g = globs; g && *g; g++)
    if (vox_params_name_matches(*g, name)) return true;
  return false;
}

static void describe_file_tensor(const vox_st_info *in, char *buf, size_t cap) {
  int k = snprintf(buf, cap, "%s[", vox_st_dtype_name(in->dtype));
  for (int j = 0; j < in->ndim && k < (int)cap - 24; j++)
    k += snprintf(buf + k, cap - (size_t)k, "%s%" PRId64, j ? "," : "", in->shape[j]);
  snprintf(buf + k, cap - (size_t)k, "]");
}

static vox_status read_text(const char *path, char **out) {
  FILE *f = fopen(path, "rb");
  if (!f) return vox_errorf(VOX_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *t = n >= 0 ? malloc((size_t)n + 1) : NULL;
  if (!t || fread(t, 1, (size_t)n, f) != (size_t)n) {
    free(t);
    fclose(f);
    return vox_errorf(VOX_ERR_IO, "%s: cannot read", path);
  }
  t[n] = '\0';
  fclose(f);
  *out = t;
  return VOX_OK;
}

/* ---- the sources: one file or the shards of an index --------------------------------------------------------- */

typedef struct hf_sources {
  char *where;             /* what messages call the source: the file or the index */
  vox_safetensors **files;
  int n_files;
} hf_sources;

static void sources_free(hf_sources *s) {
  for (int i = 0; i < s->n_files; i++) vox_safetensors_close(s->files[i]);
  free(s->files);
  free(s->where);
  memset(s, 0, sizeof *s);
}

static vox_status add_file(hf_sources *s, const char *path) {
  vox_safetensors **f = realloc(s->files, sizeof *f * (size_t)(s->n_files + 1));
  if (!f) return vox_errorf(VOX_ERR_NOMEM, "%s: out of memory", path);
  s->files = f;
  VOX_TRY(vox_safetensors_open(path, &s->files[s->n_files]));
  s->n_files++;
  return VOX_OK;
}

/* Opens every shard an index names (in order of first mention) and checks each tensor the weight_map names is in
 * the shard it says. */
static vox_status open_index(hf_sources *s, const char *index_path) {
  char *text = NULL;
  VOX_TRY(read_text(index_path, &text));
  cJSON *root = cJSON_Parse(text);
  free(text);
  if (!root) return vox_errorf(VOX_ERR_PARSE, "%s: not valid JSON", index_path);
  vox_status st = VOX_OK;
  const cJSON *wm = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
  char *dir = strdup(index_path);
  char *slash = dir ? strrchr(dir, '/') : NULL;
  if (!dir) st = vox_errorf(VOX_ERR_NOMEM, "%s: out of memory", index_path);
  else if (slash) *slash = '\0';
  else strcpy(dir, ".");
  if (st == VOX_OK && !cJSON_IsObject(wm))
    st = vox_errorf(VOX_ERR_PARSE, "%s: \"weight_map\" is missing or not an object", index_path);
  /* Shard names, distinct, in order of first mention. */
  const char **shards = NULL;
  int n_shards = 0;
  if (st == VOX_OK) shards = calloc((size_t)cJSON_GetArraySize(wm) + 1, sizeof *shards);
  for (const cJSON *e = st == VOX_OK ? wm->child : NULL; e && st == VOX_OK; e = e->next) {
    if (!cJSON_IsString(e) || !*e->valuestring) {
      st = vox_errorf(VOX_ERR_PARSE, "%s: weight_map entry '%s' is not a file name", index_path, e->string);
      break;
    }
    if (e->valuestring[0] == '/' || strstr(e->valuestring, "..")) {
      st = vox_errorf(VOX_ERR_PARSE, "%s: weight_map entry '%s' names '%s', which is not a file beside the index",
                      index_path, e->string, e->valuestring);
      break;
    }
    int k = 0;
    while (k < n_shards && strcmp(shards[k], e->valuestring) != 0) k++;
    if (k == n_shards) shards[n_shards++] = e->valuestring;
  }
  for (int k = 0; k < n_shards && st == VOX_OK; k++) {
    char *p = join_path(dir, shards[k]);
    if (!p) st = vox_errorf(VOX_ERR_NOMEM, "%s: out of memory", index_path);
    else if (!is_file(p)) st = vox_errorf(VOX_ERR_NOT_FOUND, "%s: names shard '%s', but %s does not exist",
                                          index_path, shards[k], p);
    else if ((st = add_file(s, p)) != VOX_OK) vox_error_context(st, "shard of %s: ", index_path);
    free(p);
  }
  for (const cJSON *e = st == VOX_OK ? wm->child : NULL; e && st == VOX_OK; e = e->next) {
    int k = 0;
    while (strcmp(shards[k], e->valuestring) != 0) k++;
    if (!vox_safetensors_has(s->files[k], e->string))
      st = vox_errorf(VOX_ERR_NOT_FOUND, "%s: weight_map puts tensor '%s' in '%s', but that shard has no such tensor",
                      index_path, e->string, shards[k]);
  }
  if (st == VOX_OK && n_shards == 0) st = vox_errorf(VOX_ERR_PARSE, "%s: weight_map is empty", index_path);
  free(shards);
  free(dir);
  cJSON_Delete(root);
  return st;
}

static vox_status open_sources(const char *path, hf_sources *s) {
  memset(s, 0, sizeof *s);
  vox_status st = VOX_OK;
  char *index = NULL, *single = NULL;
  if (is_dir(path)) {
    index = join_path(path, HF_INDEX);
    single = join_path(path, HF_SINGLE);
    if (!index || !single) st = vox_errorf(VOX_ERR_NOMEM, "%s: out of memory", path);
    else if (is_file(index)) s->where = strdup(index), st = open_index(s, index);
    else if (is_file(single)) s->where = strdup(single), st = add_file(s, single);
    else st = vox_errorf(VOX_ERR_NOT_FOUND, "%s: no %s or %s in this directory", path, HF_SINGLE, HF_INDEX);
  } else if (!is_file(path)) {
    st = vox_errorf(VOX_ERR_IO, "%s: no such file or directory", path);
  } else if (ends_with(path, ".json")) {
    s->where = strdup(path);
    st = open_index(s, path);
  } else {
    s->where = strdup(path);
    st = add_file(s, path);
  }
  if (st == VOX_OK && !s->where) st = vox_errorf(VOX_ERR_NOMEM, "%s: out of memory", path);
  free(index);
  free(single);
  if (st != VOX_OK) sources_free(s);
  return st;
}

/* ---- loading ------------------------------------------------------------------------------------------------- */

typedef struct hf_copy {
  const vox_safetensors *file;
  const char *name; /* borrowed from the file */
  int param;
  bool select_rows; /* opts->rows of the file tensor's first dimension */
} hf_copy;

/* Reads the whole file tensor, then copies the selected rows into the parameter. */
static vox_status read_rows_into(const vox_safetensors *file, const char *name, const vox_st_info *in,
                                 const vox_hf_load_opts *opts, vox_tensor *dst) {
  vox_tensor *whole = NULL, *ids = NULL, *picked = NULL;
  vox_status st = vox_tensor_empty(dst->dtype, dst->device, in->ndim, in->shape, &whole);
  if (st == VOX_OK) st = vox_safetensors_read_into(file, name, whole);
  if (st == VOX_OK) st = vox_tensor_from_host(VOX_I32, dst->device, 1, (int64_t[]){opts->n_rows}, opts->rows, &ids);
  vox_no_grad_begin();
  if (st == VOX_OK) st = vox_op_embedding(whole, ids, &picked);
  vox_no_grad_end();
  if (st == VOX_OK) st = vox_tensor_copy_(dst, picked);
  vox_tensor_release(whole);
  vox_tensor_release(ids);
  vox_tensor_release(picked);
  return st;
}

typedef struct hf_problems {
  msgbuf missing, unexpected, misshaped, unreadable, duplicate;
  int n_missing, n_unexpected, n_misshaped, n_unreadable, n_duplicate;
} hf_problems;

static void note(msgbuf *m, int *count, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void note(msgbuf *m, int *count, const char *fmt, ...) {
  if (*count < HF_LIST_MAX) {
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    msg_add(m, "\n    %s", line);
  }
  (*count)++;
}

static void report_list(msgbuf *out, const char *title, const msgbuf *m, int n) {
  if (!n) return;
  msg_add(out, "\n  %d %s:%s", n, title, m->s);
  if (n > HF_LIST_MAX) msg_add(out, "\n    ... and %d more", n - HF_LIST_MAX);
}

vox_status vox_hf_load_params(vox_params *reg, const char *prefix, const char *path, const vox_hf_load_opts *opts) {
  static const vox_hf_load_opts defaults = {.strict = true};
  if (!opts) opts = &defaults;
  if (!prefix) prefix = "";
  size_t plen = strlen(prefix);
  hf_sources src;
  VOX_TRY(open_sources(path, &src));

  int total = 0;
  for (int f = 0; f < src.n_files; f++) total += vox_safetensors_count(src.files[f]);
  hf_copy *plan = calloc((size_t)(total ? total : 1), sizeof *plan);
  int *loaded_by = malloc(sizeof(int) * (size_t)(reg->count ? reg->count : 1)); /* plan index, -1 none, -2 refused */
  hf_problems *pr = calloc(1, sizeof *pr);
  vox_status st = VOX_OK;
  if (!plan || !loaded_by || !pr) {
    st = vox_errorf(VOX_ERR_NOMEM, "%s: out of memory", path);
    goto done;
  }
  for (int i = 0; i < reg->count; i++) loaded_by[i] = -1;
  int n_plan = 0, n_warn = 0;
  /* Plan: every tensor of every file, all problems collected. */
  for (int f = 0; f < src.n_files; f++) {
    const vox_safetensors *file = src.files[f];
    for (int t = 0; t < vox_safetensors_count(file); t++) {
      const char *fname = vox_safetensors_name_at(file, t);
      if (any_glob(opts->ignore_unexpected, fname)) continue;
      char rbuf[VOX_PARAM_NAME_MAX], full[VOX_PARAM_NAME_MAX + 64];
      const char *rel = opts->rename ? opts->rename(fname, rbuf, sizeof rbuf, opts->rename_ctx) : fname;
      if (!rel) continue;
      snprintf(full, sizeof full, "%s%s", prefix, rel);
      vox_st_info in;
      vox_safetensors_info(file, fname, &in);
      char fdesc[160], pdesc[160];
      describe_file_tensor(&in, fdesc, sizeof fdesc);
      int p = strlen(full) < VOX_PARAM_NAME_MAX ? vox_params_index(reg, full) : -1;
      if (p < 0) {
        if (opts->strict) {
          note(&pr->unexpected, &pr->n_unexpected, "%s %s (no parameter '%s')", fname, fdesc, full);
        } else if (n_warn++ < 20) {
          vox_log_warn("%s: tensor '%s' %s maps to no parameter ('%s'); skipped",
                       vox_safetensors_path(file), fname, fdesc, full);
        }
        continue;
      }
      const vox_tensor *dst = reg->items[p].tensor;
      bool rows = opts->rows && any_glob(opts->row_globs, rel);
      bool same = dst->ndim == in.ndim;
      for (int d = 0; same && d < in.ndim; d++) same = dst->shape[d] == (rows && d == 0 ? opts->n_rows : in.shape[d]);
      int32_t missing_row = -1;
      for (int32_t k = 0; same && rows && k < opts->n_rows && missing_row < 0; k++)
        if (opts->rows[k] < 0 || opts->rows[k] >= in.shape[0]) missing_row = opts->rows[k];
      if (missing_row >= 0 && loaded_by[p] == -1) {
        note(&pr->misshaped, &pr->n_misshaped, "%s: file %s has no row %d (an id of the vocabulary subset)", fname,
             fdesc, missing_row);
        loaded_by[p] = -2;
        continue;
      }
      if (loaded_by[p] != -1) {
        note(&pr->duplicate, &pr->n_duplicate, "%s: from '%s' and from '%s'", full,
             loaded_by[p] >= 0 ? plan[loaded_by[p]].name : "another tensor", fname);
        continue;
      }
      if (!same) {
        note(&pr->misshaped, &pr->n_misshaped, "%s: file %s, model %s", fname, fdesc,
             vox_tensor_describe(dst, pdesc, sizeof pdesc));
        loaded_by[p] = -2; /* not missing, but not planned either */
        continue;
      }
      bool src_int = in.dtype == VOX_ST_I32 || in.dtype == VOX_ST_I64;
      if (!vox_st_dtype_readable(in.dtype) || (dst->dtype == VOX_I32 && !src_int)) {
        note(&pr->unreadable, &pr->n_unreadable, "%s: file %s cannot be read into %s", fname, fdesc,
             vox_tensor_describe(dst, pdesc, sizeof pdesc));
        loaded_by[p] = -2;
        continue;
      }
      plan[n_plan] = (hf_copy){.file = file, .name = fname, .param = p, .select_rows = rows};
      loaded_by[p] = n_plan++;
    }
  }
  if (n_warn > 20) vox_log_warn("%s: %d more file tensors map to no parameter", src.where, n_warn - 20);
  for (int i = 0; i < reg->count; i++) {
    const char *name = reg->items[i].name;
    if (loaded_by[i] != -1 || strncmp(name, prefix, plen) != 0) continue;
    if (any_glob(opts->ignore_missing, name) || any_glob(opts->ignore_missing, name + plen)) continue;
    char pdesc[160];
    note(&pr->missing, &pr->n_missing, "%s %s", name, vox_tensor_describe(reg->items[i].tensor, pdesc, sizeof pdesc));
  }
  if (pr->n_missing || pr->n_unexpected || pr->n_misshaped || pr->n_unreadable || pr->n_duplicate) {
    msgbuf m = {0};
    msg_add(&m, "%s: cannot load into '%s*', nothing was loaded (%d missing, %d unexpected, %d mis-shaped, "
            "%d unreadable, %d loaded twice):", src.where, prefix, pr->n_missing, pr->n_unexpected, pr->n_misshaped,
            pr->n_unreadable, pr->n_duplicate);
    report_list(&m, "parameters missing from the file", &pr->missing, pr->n_missing);
    report_list(&m, "unexpected tensors (strict)", &pr->unexpected, pr->n_unexpected);
    report_list(&m, "mis-shaped tensors", &pr->misshaped, pr->n_misshaped);
    report_list(&m, "tensors of an unreadable dtype", &pr->unreadable, pr->n_unreadable);
    report_list(&m, "parameters loaded twice", &pr->duplicate, pr->n_duplicate);
    st = vox_errorf(pr->n_misshaped ? VOX_ERR_SHAPE : VOX_ERR_NOT_FOUND, "%s", m.s);
    goto done;
  }
  /* Copy. Everything that can be checked was; what fails now is memory or a device. */
  for (int i = 0; i < n_plan && st == VOX_OK; i++) {
    vox_tensor *dst = reg->items[plan[i].param].tensor;
    if (plan[i].select_rows) {
      vox_st_info in;
      vox_safetensors_info(plan[i].file, plan[i].name, &in);
      st = read_rows_into(plan[i].file, plan[i].name, &in, opts, dst);
    } else {
      st = vox_safetensors_read_into(plan[i].file, plan[i].name, dst);
    }
  }
  if (st != VOX_OK) vox_error_context(st, "loading %s (partially loaded): ", src.where);
  else vox_log_debug("%s: loaded %d tensors into '%s*'", src.where, n_plan, prefix);
done:
  free(pr);
  free(loaded_by);
  free(plan);
  sources_free(&src);
  return st;
}

/* ---- saving -------------------------------------------------------------------------------------------------- */

static vox_status mkdir_p(const char *dir) {
  char *p = strdup(dir);
  if (!p) return vox_errorf(VOX_ERR_NOMEM, "%s: out of memory", dir);
  vox_status st = VOX_OK;
  for (char *q = p + 1;; q++) {
    if (*q == '/' || *q == '\0') {
      char c = *q;
      *q = '\0';
      if (mkdir(p, 0777) != 0 && errno != EEXIST) {
        st = vox_errorf(VOX_ERR_IO, "%s: cannot create directory: %s", p, strerror(errno));
        break;
      }
      *q = c;
      if (!c) break;
    }
  }
  free(p);
  if (st == VOX_OK && !is_dir(dir)) st = vox_errorf(VOX_ERR_IO, "%s: exists and is not a directory", dir);
  return st;
}

static vox_status write_text_atomic(const char *path, const char *text) {
  char *tmp = malloc(strlen(path) + 32);
  if (!tmp) return vox_errorf(VOX_ERR_NOMEM, "%s: out of memory", path);
  sprintf(tmp, "%s.tmp-%d", path, (int)getpid());
  vox_status st = VOX_OK;
  FILE *f = fopen(tmp, "wb");
  if (!f) {
    st = vox_errorf(VOX_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
  } else {
    size_t n = strlen(text);
    if (fwrite(text, 1, n, f) != n || fflush(f) != 0 || fsync(fileno(f)) != 0)
      st = vox_errorf(VOX_ERR_IO, "%s: write failed: %s", tmp, strerror(errno));
    if (fclose(f) != 0 && st == VOX_OK) st = vox_errorf(VOX_ERR_IO, "%s: close failed: %s", tmp, strerror(errno));
    if (st == VOX_OK && rename(tmp, path) != 0)
      st = vox_errorf(VOX_ERR_IO, "%s: cannot rename into place: %s", path, strerror(errno));
    if (st != VOX_OK) unlink(tmp);
  }
  free(tmp);
  return st;
}

/* A shard file name of the HF pattern "model-%05d-of-%05d.safetensors"? */
static bool is_shard_name(const char *n) {
  int k, of, len = 0;
  return strlen(n) == strlen("model-00001-of-00001.safetensors") &&
         sscanf(n, "model-%5d-of-%5d.safetensors%n", &k, &of, &len) == 2 && len == (int)strlen(n);
}

/* Removes weight files of an earlier save that the new layout does not use (keep: names just written). */
static void remove_stale(const char *dir, const char *const *keep, int n_keep) {
  DIR *d = opendir(dir);
  if (!d) return;
  struct dirent *e;
  while ((e = readdir(d))) {
    const char *n = e->d_name;
    if (strcmp(n, HF_SINGLE) != 0 && strcmp(n, HF_INDEX) != 0 && !is_shard_name(n)) continue;
    bool kept = false;
    for (int i = 0; i < n_keep && !kept; i++) kept = strcmp(keep[i], n) == 0;
    if (kept) continue;
    char *p = join_path(dir, n);
    if (p && unlink(p) == 0) vox_log_info("%s: removed (left from an earlier save in another layout)", p);
    free(p);
  }
  closedir(d);
}

typedef struct save_item {
  const char *name; /* below the prefix */
  const vox_tensor *t;
  size_t bytes;
  int shard;
} save_item;

static int cmp_save_name(const void *a, const void *b) {
  return strcmp((*(const save_item *const *)a)->name, (*(const save_item *const *)b)->name);
}

/* Appends a JSON string literal to a growing buffer (names are plain in practice; escape anyway). */
static char *append(char *buf, size_t *len, size_t *cap, const char *s) {
  size_t n = strlen(s);
  if (!buf) return NULL;
  if (*len + n + 1 > *cap) {
    while (*len + n + 1 > *cap) *cap *= 2;
    char *b = realloc(buf, *cap);
    if (!b) {
      free(buf);
      return NULL;
    }
    buf = b;
  }
  memcpy(buf + *len, s, n + 1);
  *len += n;
  return buf;
}
static char *append_json_string(char *buf, size_t *len, size_t *cap, const char *s) {
  buf = append(buf, len, cap, "\"");
  for (const unsigned char *c = (const unsigned char *)s; *c && buf; c++) {
    char e[8] = {(char)*c, 0};
    if (*c == '"' || *c == '\\') snprintf(e, sizeof e, "\\%c", *c);
    else if (*c < 0x20) snprintf(e, sizeof e, "\\u%04x", *c);
    buf = append(buf, len, cap, e);
  }
  return append(buf, len, cap, "\"");
}

vox_status vox_hf_save_params(const vox_params *reg, const char *prefix, const char *dir, vox_dtype on_disk,
                              size_t shard_bytes) {
  if (!prefix) prefix = "";
  size_t plen = strlen(prefix);
  if (on_disk != VOX_F32 && on_disk != VOX_BF16)
    return vox_errorf(VOX_ERR_DTYPE, "%s: HF weights are saved as f32 or bf16, not %s", dir, vox_dtype_name(on_disk));
  int n = 0;
  for (int i = 0; i < reg->count; i++) n += strncmp(reg->items[i].name, prefix, plen) == 0;
  if (n == 0) return vox_errorf(VOX_ERR_NOT_FOUND, "%s: no parameter name starts with '%s'; nothing to save", dir, prefix);
  VOX_TRY(mkdir_p(dir));
  save_item *items = calloc((size_t)n, sizeof *items);
  save_item **sorted = calloc((size_t)n, sizeof *sorted);
  const char **names = calloc((size_t)n, sizeof *names);
  const vox_tensor **tensors = calloc((size_t)n, sizeof *tensors);
  vox_status st = VOX_OK;
  if (!items || !sorted || !names || !tensors) {
    st = vox_errorf(VOX_ERR_NOMEM, "%s: out of memory", dir);
    goto done;
  }
  size_t total = 0;
  int k = 0;
  for (int i = 0; i < reg->count; i++) {
    if (strncmp(reg->items[i].name, prefix, plen) != 0) continue;
    const vox_tensor *t = reg->items[i].tensor;
    items[k] = (save_item){.name = reg->items[i].name + plen, .t = t};
    items[k].bytes = (size_t)vox_tensor_numel(t) * (t->dtype == VOX_I32 ? 4 : vox_dtype_size(on_disk));
    if (!*items[k].name) {
      st = vox_errorf(VOX_ERR_INVALID, "%s: parameter '%s' equals the prefix, so its name in the file would be empty",
                      dir, reg->items[i].name);
      goto done;
    }
    total += items[k].bytes;
    k++;
  }
  /* Greedy packing in registration order, as transformers' shard splitting does. */
  int n_shards = 1;
  size_t cur = 0;
  bool sharded = shard_bytes > 0 && total > shard_bytes;
  for (int i = 0; i < n; i++) {
    if (sharded && cur > 0 && cur + items[i].bytes > shard_bytes) n_shards++, cur = 0;
    items[i].shard = n_shards - 1;
    cur += items[i].bytes;
  }
  static const char *format_key[] = {"format"}, *format_val[] = {"pt"};
  if (!sharded) {
    for (int i = 0; i < n; i++) names[i] = items[i].name, tensors[i] = items[i].t;
    char *p = join_path(dir, HF_SINGLE);
    st = p ? vox_safetensors_write(p, n, names, tensors, on_disk, 1, format_key, format_val)
           : vox_errorf(VOX_ERR_NOMEM, "%s: out of memory", dir);
    free(p);
    const char *keep[] = {HF_SINGLE};
    if (st == VOX_OK) remove_stale(dir, keep, 1);
    goto done;
  }
  if (n_shards > 99999) {
    st = vox_errorf(VOX_ERR_INVALID, "%s: %d shards exceed the 5-digit file pattern; raise shard_bytes", dir, n_shards);
    goto done;
  }
  char (*shard_names)[48] = calloc((size_t)n_shards, sizeof *shard_names);
  const char **keep = calloc((size_t)n_shards + 1, sizeof *keep);
  if (!shard_names || !keep) st = vox_errorf(VOX_ERR_NOMEM, "%s: out of memory", dir);
  for (int s = 0; s < n_shards && st == VOX_OK; s++) {
    snprintf(shard_names[s], sizeof shard_names[s], "model-%05d-of-%05d.safetensors", s + 1, n_shards);
    keep[s] = shard_names[s];
    int m = 0;
    for (int i = 0; i < n; i++)
      if (items[i].shard == s) names[m] = items[i].name, tensors[m] = items[i].t, m++;
    char *p = join_path(dir, shard_names[s]);
    st = p ? vox_safetensors_write(p, m, names, tensors, on_disk, 1, format_key, format_val)
           : vox_errorf(VOX_ERR_NOMEM, "%s: out of memory", dir);
    free(p);
  }
  /* The index last, so a reader never sees an index naming shards that are not written yet. Layout as
   * json.dumps(index, indent=2, sort_keys=True) writes it. */
  if (st == VOX_OK) {
    for (int i = 0; i < n; i++) sorted[i] = &items[i];
    qsort(sorted, (size_t)n, sizeof *sorted, cmp_save_name);
  }
  if (st == VOX_OK) {
    size_t len = 0, cap = 4096;
    char *j = malloc(cap), num[64];
    if (j) j[0] = '\0';
    snprintf(num, sizeof num, "%zu", total);
    j = append(j, &len, &cap, "{\n  \"metadata\": {\n    \"total_size\": ");
    j = append(j, &len, &cap, num);
    j = append(j, &len, &cap, "\n  },\n  \"weight_map\": {");
    for (int i = 0; i < n && j; i++) {
      j = append(j, &len, &cap, i ? ",\n    " : "\n    ");
      j = append_json_string(j, &len, &cap, sorted[i]->name);
      j = append(j, &len, &cap, ": ");
      j = append_json_string(j, &len, &cap, shard_names[sorted[i]->shard]);
    }
    j = append(j, &len, &cap, "\n  }\n}\n");
    char *p = join_path(dir, HF_INDEX);
    st = j && p ? write_text_atomic(p, j) : vox_errorf(VOX_ERR_NOMEM, "%s: out of memory", dir);
    free(p);
    free(j);
    keep[n_shards] = HF_INDEX;
    if (st == VOX_OK) remove_stale(dir, keep, n_shards + 1);
  }
  free(keep);
  free(shard_names);
done:
  free(tensors);
  free(names);
  free(sorted);
  free(items);
  return st;
}
