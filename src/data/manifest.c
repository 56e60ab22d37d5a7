/* JSONL manifest parsing and validation (cJSON). Each line is checked against its task's required keys and
 * the types of known keys; every problem of a line is collected so one pass reports the whole file. */
#include "data/manifest.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char *const vox_manifest_tasks[] = {"asr", "tts", "s2t_chat", "s2s_chat", "duplex", "text", NULL};

/* What each task needs. Tasks with audio need a duration so that the loader can bucket by length. */
typedef struct task_rule {
  const char *name;
  bool audio, text, messages;
} task_rule;
static const task_rule task_rules[] = {
    {"asr", true, true, false},      {"tts", true, true, false},     {"s2t_chat", true, false, true},
    {"s2s_chat", true, false, true}, {"duplex", true, false, false}, {"text", false, true, false},
};
static const task_rule *find_task(const char *name) {
  for (size_t i = 0; i < sizeof task_rules / sizeof task_rules[0]; i++)
    if (!strcmp(task_rules[i].name, name)) return &task_rules[i];
  return NULL;
}

static const char *const known_keys[] = {"key",         "task",          "audio",   "duration", "text", "messages",
                                         "instruction", "speech_tokens", "speaker", NULL};
/* Extra fields whose names end in "_audio" or "_file" are paths (answer_audio, labels_file, ...). */
static bool is_path_key(const char *k) {
  size_t n = strlen(k);
  return (n > 6 && !strcmp(k + n - 6, "_audio")) || (n > 5 && !strcmp(k + n - 5, "_file"));
}

static bool is_known_key(const char *k) {
  for (int i = 0; known_keys[i]; i++)
    if (!strcmp(known_keys[i], k)) return true;
  return false;
}

/* ---- a growable string for collecting a line's problems ------------------------------------------ */
typedef struct sbuf {
  char *s;
  size_t len, cap;
} sbuf;
static void sb_addf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_addf(sbuf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int need = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (need < 0) return;
  size_t sep = b->len ? 2 : 0;
  if (b->len + sep + (size_t)need + 1 > b->cap) {
    size_t cap = (b->len + sep + (size_t)need + 1) * 2;
    char *s = realloc(b->s, cap);
    if (!s) return;
    b->s = s;
    b->cap = cap;
  }
  if (sep) {
    memcpy(b->s + b->len, "; ", 2);
    b->len += 2;
  }
  va_start(ap, fmt);
  vsnprintf(b->s + b->len, (size_t)need + 1, fmt, ap);
  va_end(ap);
  b->len += (size_t)need;
}

static char *xstrdup(const char *s) { return s ? strdup(s) : NULL; }

char *vox_manifest_resolve(const char *dir, const char *rel) {
  if (!rel) return NULL;
  if (rel[0] == '/' || !dir || !dir[0] || !strcmp(dir, ".")) return strdup(rel);
  size_t n = strlen(dir) + strlen(rel) + 2;
  char *p = malloc(n);
  if (p) snprintf(p, n, "%s/%s", dir, rel);
  return p;
}

static const char *json_type_name(const cJSON *v) {
  if (cJSON_IsString(v)) return "string";
  if (cJSON_IsNumber(v)) return "number";
  if (cJSON_IsBool(v)) return "boolean";
  if (cJSON_IsNull(v)) return "null";
  if (cJSON_IsArray(v)) return "array";
  if (cJSON_IsObject(v)) return "object";
  return "invalid";
}

/* Fetches an optional string key; records a type problem when present with another type. */
static const char *get_string(const cJSON *obj, const char *key, sbuf *errs) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
  if (!v) return NULL;
  if (!cJSON_IsString(v)) {
    sb_addf(errs, "key '%s' must be a string, got %s", key, json_type_name(v));
    return NULL;
  }
  return v->valuestring;
}

static void check_messages(const cJSON *msgs, sbuf *errs) {
  if (!cJSON_IsArray(msgs)) {
    sb_addf(errs, "key 'messages' must be an array of {role, content}, got %s", json_type_name(msgs));
    return;
  }
  if (cJSON_GetArraySize(msgs) == 0) sb_addf(errs, "key 'messages' is empty");
  int i = 0;
  const cJSON *m;
  cJSON_ArrayForEach(m, msgs) {
    const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(m, "content");
    if (!cJSON_IsObject(m)) {
      sb_addf(errs, "messages[%d] must be an object, got %s", i, json_type_name(m));
    } else if (!cJSON_IsString(role)) {
      sb_addf(errs, "messages[%d].role must be a string", i);
    } else if (strcmp(role->valuestring, "system") && strcmp(role->valuestring, "user") &&
               strcmp(role->valuestring, "assistant")) {
      sb_addf(errs, "messages[%d].role '%s' is not system, user or assistant", i, role->valuestring);
    } else if (!cJSON_IsString(content)) {
      sb_addf(errs, "messages[%d].content must be a string", i);
    }
    i++;
  }
}

void vox_sample_clear(vox_sample *s) {
  if (!s) return;
  free(s->key);
  free(s->task);
  free(s->audio);
  free(s->text);
  free(s->instruction);
  free(s->speech_tokens);
  free(s->speaker);
  free(s->messages_json);
  free(s->extra_json);
  memset(s, 0, sizeof *s);
}

/* Parses and checks one line. On failure the problems are in *errs and the sample is cleared. */
static bool parse_line(const char *text, const char *dir, int line, vox_sample *out, sbuf *errs) {
  memset(out, 0, sizeof *out);
  out->line = line;
  out->duration = -1;
  const char *end = NULL;
  cJSON *obj = cJSON_ParseWithOpts(text, &end, false);
  if (!obj) {
    const char *at = cJSON_GetErrorPtr();
    long col = at && at >= text ? (long)(at - text) + 1 : 0;
    sb_addf(errs, "malformed JSON near column %ld", col);
    return false;
  }
  if (end) {
    while (*end == ' ' || *end == '\t' || *end == '\r' || *end == '\n') end++;
    if (*end) sb_addf(errs, "trailing characters after the JSON object at column %ld", (long)(end - text) + 1);
  }
  if (!cJSON_IsObject(obj)) {
    sb_addf(errs, "line must be a JSON object, got %s", json_type_name(obj));
    cJSON_Delete(obj);
    return false;
  }
  const char *key = get_string(obj, "key", errs);
  const char *task = get_string(obj, "task", errs);
  const char *audio = get_string(obj, "audio", errs);
  const char *txt = get_string(obj, "text", errs);
  const char *instr = get_string(obj, "instruction", errs);
  const char *tokens = get_string(obj, "speech_tokens", errs);
  const char *speaker = get_string(obj, "speaker", errs);
  const cJSON *dur = cJSON_GetObjectItemCaseSensitive(obj, "duration");
  const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(obj, "messages");

  if (!cJSON_GetObjectItemCaseSensitive(obj, "key")) sb_addf(errs, "missing required key 'key'");
  else if (key && !key[0]) sb_addf(errs, "key 'key' is empty");
  const task_rule *rule = NULL;
  if (!cJSON_GetObjectItemCaseSensitive(obj, "task")) {
    sb_addf(errs, "missing required key 'task'");
  } else if (task && !(rule = find_task(task))) {
    sb_addf(errs, "unknown task '%s' (known: asr, tts, s2t_chat, s2s_chat, duplex, text)", task);
  }
  if (dur) {
    if (!cJSON_IsNumber(dur)) sb_addf(errs, "key 'duration' must be a number, got %s", json_type_name(dur));
    else if (!isfinite(dur->valuedouble)) sb_addf(errs, "duration is not finite");
    else if (dur->valuedouble < 0) sb_addf(errs, "negative duration %g", dur->valuedouble);
    else out->duration = dur->valuedouble;
  }
  if (msgs) check_messages(msgs, errs);
  if (rule) {
    if (rule->audio && !cJSON_GetObjectItemCaseSensitive(obj, "audio"))
      sb_addf(errs, "missing required key 'audio' for task '%s'", rule->name);
    if (rule->audio && !dur) sb_addf(errs, "missing required key 'duration' for task '%s'", rule->name);
    if (rule->text && !cJSON_GetObjectItemCaseSensitive(obj, "text"))
      sb_addf(errs, "missing required key 'text' for task '%s'", rule->name);
    if (rule->messages && !msgs) sb_addf(errs, "missing required key 'messages' for task '%s'", rule->name);
  }
  if (audio && !audio[0]) sb_addf(errs, "key 'audio' is empty");
  /* Extra path fields must be strings. */
  const cJSON *it;
  cJSON_ArrayForEach(it, obj) {
    if (!is_known_key(it->string) && is_path_key(it->string) && !cJSON_IsString(it))
      sb_addf(errs, "key '%s' must be a string path, got %s", it->string, json_type_name(it));
  }
  if (errs->len) {
    cJSON_Delete(obj);
    return false;
  }

  out->key = xstrdup(key);
  out->task = xstrdup(task);
  out->audio = vox_manifest_resolve(dir, audio);
  out->text = xstrdup(txt);
  out->instruction = xstrdup(instr);
  out->speech_tokens = vox_manifest_resolve(dir, tokens);
  out->speaker = xstrdup(speaker);
  if (msgs) out->messages_json = cJSON_PrintUnformatted(msgs);
  cJSON *extra = cJSON_CreateObject();
  cJSON_ArrayForEach(it, obj) {
    if (!is_known_key(it->string)) cJSON_AddItemToObject(extra, it->string, cJSON_Duplicate(it, true));
  }
  out->extra_json = cJSON_PrintUnformatted(extra);
  cJSON_Delete(extra);
  cJSON_Delete(obj);
  return true;
}

vox_status vox_sample_parse(const char *json_line, const char *dir, int line, vox_sample *out) {
  sbuf errs = {0};
  if (parse_line(json_line, dir, line, out, &errs)) {
    free(errs.s);
    return VOX_OK;
  }
  vox_status st = vox_errorf(VOX_ERR_PARSE, "%s", errs.s ? errs.s : "invalid line");
  free(errs.s);
  return st;
}

static char *dir_of(const char *path) {
  const char *slash = strrchr(path, '/');
  if (!slash) return strdup(".");
  if (slash == path) return strdup("/");
  return strndup(path, (size_t)(slash - path));
}

/* Streams the file line by line; calls `on_sample` for good lines and `on_issue` for bad ones. */
typedef struct scan_ctx {
  vox_manifest_report *rep;
  vox_manifest *man;
  bool check_files;
  /* duplicate-key detection: keys seen so far with their line (open addressing on the key string) */
  char **seen_keys;
  int *seen_lines;
  size_t seen_cap, seen_n;
} scan_ctx;

static uint64_t hash_str(const char *s) {
  uint64_t h = 1469598103934665603ull;
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
  return h;
}

/* Returns the earlier line of `key`, or 0 after recording it. */
static int seen_or_add(scan_ctx *c, const char *key, int line) {
  if (c->seen_n * 2 + 2 > c->seen_cap) {
    size_t cap = c->seen_cap ? c->seen_cap * 2 : 1024;
    char **k = calloc(cap, sizeof *k);
    int *l = calloc(cap, sizeof *l);
    if (!k || !l) {
      free(k);
      free(l);
      return 0;
    }
    for (size_t i = 0; i < c->seen_cap; i++)
      if (c->seen_keys[i]) {
        size_t j = hash_str(c->seen_keys[i]) & (cap - 1);
        while (k[j]) j = (j + 1) & (cap - 1);
        k[j] = c->seen_keys[i];
        l[j] = c->seen_lines[i];
      }
    free(c->seen_keys);
    free(c->seen_lines);
    c->seen_keys = k;
    c->seen_lines = l;
    c->seen_cap = cap;
  }
  size_t j = hash_str(key) & (c->seen_cap - 1);
  while (c->seen_keys[j]) {
    if (!strcmp(c->seen_keys[j], key)) return c->seen_lines[j];
    j = (j + 1) & (c->seen_cap - 1);
  }
  c->seen_keys[j] = strdup(key);
  c->seen_lines[j] = line;
  c->seen_n++;
  return 0;
}

static vox_status add_issue(vox_manifest_report *r, int line, const char *msg) {
  vox_manifest_issue *is = realloc(r->issues, (size_t)(r->n_issues + 1) * sizeof *is);
  if (!is) return vox_errorf(VOX_ERR_NOMEM, "manifest %s: out of memory recording issues", r->path);
  r->issues = is;
  r->issues[r->n_issues].line = line;
  r->issues[r->n_issues].message = strdup(msg);
  r->n_issues++;
  return VOX_OK;
}

static void count_task(vox_manifest_report *r, const vox_sample *s) {
  int t = 0;
  while (t < r->n_tasks && strcmp(r->task_names[t], s->task)) t++;
  if (t == r->n_tasks) {
    if (t == VOX_MANIFEST_MAX_TASKS) return;
    r->task_names[t] = strdup(s->task);
    r->n_tasks++;
  }
  r->task_counts[t]++;
  if (s->duration > 0) {
    r->task_seconds[t] += s->duration;
    r->total_seconds += s->duration;
  }
}

static bool file_missing(const char *path) { return access(path, R_OK) != 0; }

/* Checks the files a good sample refers to; returns the number missing and appends their names to errs. */
static int check_sample_files(const vox_sample *s, const char *dir, sbuf *errs) {
  int missing = 0;
  if (s->audio && file_missing(s->audio)) {
    sb_addf(errs, "audio file '%s' not found", s->audio);
    missing++;
  }
  if (s->speech_tokens && file_missing(s->speech_tokens)) {
    sb_addf(errs, "speech_tokens file '%s' not found", s->speech_tokens);
    missing++;
  }
  cJSON *extra = cJSON_Parse(s->extra_json);
  const cJSON *it;
  cJSON_ArrayForEach(it, extra) {
    if (is_path_key(it->string) && cJSON_IsString(it)) {
      char *p = vox_manifest_resolve(dir, it->valuestring);
      if (p && file_missing(p)) {
        sb_addf(errs, "%s file '%s' not found", it->string, p);
        missing++;
      }
      free(p);
    }
  }
  cJSON_Delete(extra);
  return missing;
}

static vox_status scan(const char *path, scan_ctx *c) {
  vox_manifest_report *r = c->rep;
  FILE *f = fopen(path, "r");
  if (!f) {
    char msg[512];
    snprintf(msg, sizeof msg, "cannot open manifest: %s", strerror(errno));
    return add_issue(r, 0, msg);
  }
  char *dir = dir_of(path);
  char *buf = NULL;
  size_t cap = 0;
  ssize_t len;
  int line = 0;
  vox_status st = VOX_OK;
  while ((len = getline(&buf, &cap, f)) >= 0) {
    line++;
    const char *p = buf;
    while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n') p++;
    if (!*p) continue;
    r->n_lines++;
    sbuf errs = {0};
    vox_sample s;
    bool ok = parse_line(buf, dir, line, &s, &errs);
    if (ok) {
      int prev = seen_or_add(c, s.key, line);
      if (prev) {
        sb_addf(&errs, "duplicate key '%s' (first at line %d)", s.key, prev);
        ok = false;
      }
    }
    if (ok && c->check_files) {
      int missing = check_sample_files(&s, dir, &errs);
      r->n_missing_files += missing;
      if (missing) ok = false;
    }
    if (ok) {
      r->n_good++;
      count_task(r, &s);
      if (c->man) {
        if ((c->man->n & (c->man->n - 1)) == 0) { /* grow at powers of two */
          vox_sample *ns = realloc(c->man->samples, (size_t)(c->man->n ? c->man->n * 2 : 1) * sizeof *ns);
          if (!ns) {
            vox_sample_clear(&s);
            free(errs.s);
            st = vox_errorf(VOX_ERR_NOMEM, "manifest %s: out of memory at line %d", path, line);
            break;
          }
          c->man->samples = ns;
        }
        c->man->samples[c->man->n++] = s;
      } else {
        vox_sample_clear(&s);
      }
    } else {
      r->n_bad++;
      vox_sample_clear(&s);
      st = add_issue(r, line, errs.s ? errs.s : "invalid line");
    }
    free(errs.s);
    if (st != VOX_OK) break;
  }
  free(buf);
  free(dir);
  fclose(f);
  return st;
}

static void scan_ctx_free(scan_ctx *c) {
  for (size_t i = 0; i < c->seen_cap; i++) free(c->seen_keys[i]);
  free(c->seen_keys);
  free(c->seen_lines);
}

vox_status vox_manifest_validate(const char *path, bool check_files, vox_manifest_report **out) {
  *out = NULL;
  vox_manifest_report *r = calloc(1, sizeof *r);
  if (!r) return vox_errorf(VOX_ERR_NOMEM, "manifest %s: out of memory", path);
  r->path = strdup(path);
  scan_ctx c = {.rep = r, .check_files = check_files};
  vox_status st = scan(path, &c);
  scan_ctx_free(&c);
  if (st != VOX_OK) {
    vox_manifest_report_free(r);
    return st;
  }
  *out = r;
  return VOX_OK;
}

void vox_manifest_report_free(vox_manifest_report *r) {
  if (!r) return;
  for (int64_t i = 0; i < r->n_issues; i++) free(r->issues[i].message);
  for (int t = 0; t < r->n_tasks; t++) free(r->task_names[t]);
  free(r->issues);
  free(r->path);
  free(r);
}

vox_status vox_manifest_load(const char *path, vox_manifest **out) {
  *out = NULL;
  vox_manifest *m = calloc(1, sizeof *m);
  vox_manifest_report *r = calloc(1, sizeof *r);
  if (!m || !r) {
    free(m);
    free(r);
    return vox_errorf(VOX_ERR_NOMEM, "manifest %s: out of memory", path);
  }
  m->path = strdup(path);
  m->dir = dir_of(path);
  r->path = strdup(path);
  scan_ctx c = {.rep = r, .man = m, .check_files = false};
  vox_status st = scan(path, &c);
  scan_ctx_free(&c);
  if (st == VOX_OK && r->n_issues) {
    /* One message naming every bad line (capped so a broken file does not flood the terminal). */
    sbuf msg = {0};
    const int64_t shown = r->n_issues < 20 ? r->n_issues : 20;
    for (int64_t i = 0; i < shown; i++) {
      if (r->issues[i].line) sb_addf(&msg, "%s:%d: %s", path, r->issues[i].line, r->issues[i].message);
      else sb_addf(&msg, "%s: %s", path, r->issues[i].message);
    }
    if (r->n_issues > shown) sb_addf(&msg, "... and %lld more bad lines", (long long)(r->n_issues - shown));
    st = vox_errorf(r->n_issues == 1 && r->issues[0].line == 0 ? VOX_ERR_IO : VOX_ERR_PARSE,
                    "manifest %s: %lld bad line(s): %s", path, (long long)r->n_bad, msg.s ? msg.s : "");
    free(msg.s);
  }
  if (st == VOX_OK && m->n == 0) st = vox_errorf(VOX_ERR_PARSE, "manifest %s: no samples", path);
  vox_manifest_report_free(r);
  if (st != VOX_OK) {
    vox_manifest_free(m);
    return st;
  }
  *out = m;
  return VOX_OK;
}

void vox_manifest_free(vox_manifest *m) {
  if (!m) return;
  for (int64_t i = 0; i < m->n; i++) vox_sample_clear(&m->samples[i]);
  free(m->samples);
  free(m->path);
  free(m->dir);
  free(m);
}
