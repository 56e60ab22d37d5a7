/* HF config.json: the parsed cJSON tree plus its path, and getters that walk dotted key paths. Every type error
 * names the file, the key, the expected type and the JSON type found, so a bad config reads as a clear message. */
#include "io/hf_config.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct vox_hf_config {
  char *path;
  cJSON *root;
};

static const char *json_type(const cJSON *j) {
  if (cJSON_IsString(j)) return "a string";
  if (cJSON_IsNumber(j)) return "a number";
  if (cJSON_IsObject(j)) return "an object";
  if (cJSON_IsArray(j)) return "an array";
  if (cJSON_IsBool(j)) return "a boolean";
  if (cJSON_IsNull(j)) return "null";
  return "invalid";
}

vox_status vox_hf_config_parse(const char *json, const char *name, vox_hf_config **out) {
  *out = NULL;
  const char *end = NULL;
  cJSON *root = cJSON_ParseWithOpts(json, &end, 1);
  if (!root) {
    /* Line and column of the error make a hand-edited config easy to fix. */
    const char *at = end ? end : cJSON_GetErrorPtr();
    int line = 1, col = 1;
    for (const char *p = json; at && p < at && *p; p++) {
      if (*p == '\n') line++, col = 1;
      else col++;
    }
    return vox_errorf(VOX_ERR_PARSE, "%s: invalid JSON near line %d, column %d", name, line, col);
  }
  if (!cJSON_IsObject(root)) {
    vox_status s = vox_errorf(VOX_ERR_PARSE, "%s: the top level is %s, expected an object", name, json_type(root));
    cJSON_Delete(root);
    return s;
  }
  vox_hf_config *c = calloc(1, sizeof *c);
  if (!c || !(c->path = strdup(name))) {
    free(c);
    cJSON_Delete(root);
    return vox_errorf(VOX_ERR_NOMEM, "%s: out of memory", name);
  }
  c->root = root;
  *out = c;
  return VOX_OK;
}

vox_status vox_hf_config_load(const char *dir_or_file, vox_hf_config **out) {
  *out = NULL;
  struct stat sb;
  if (stat(dir_or_file, &sb) != 0)
    return vox_errorf(VOX_ERR_IO, "%s: cannot read HF config: %s", dir_or_file, strerror(errno));
  char *path = NULL;
  if (S_ISDIR(sb.st_mode)) {
    size_t n = strlen(dir_or_file) + sizeof "/config.json";
    path = malloc(n);
    if (!path) return vox_errorf(VOX_ERR_NOMEM, "hf_config: out of memory");
    snprintf(path, n, "%s/config.json", dir_or_file);
  } else {
    path = strdup(dir_or_file);
    if (!path) return vox_errorf(VOX_ERR_NOMEM, "hf_config: out of memory");
  }
  FILE *f = fopen(path, "rb");
  if (!f) {
    vox_status s = vox_errorf(VOX_ERR_IO, "%s: cannot open HF config: %s", path, strerror(errno));
    free(path);
    return s;
  }
  char *text = NULL;
  size_t len = 0, cap = 0;
  vox_status s = VOX_OK;
  for (;;) {
    if (len + 4096 + 1 > cap) {
      cap = cap ? cap * 2 : 16384;
      char *t = realloc(text, cap);
      if (!t) {
        s = vox_errorf(VOX_ERR_NOMEM, "%s: out of memory", path);
        break;
      }
      text = t;
    }
    size_t got = fread(text + len, 1, cap - len - 1, f);
    len += got;
    if (got == 0) {
      if (ferror(f)) s = vox_errorf(VOX_ERR_IO, "%s: read failed", path);
      break;
    }
  }
  fclose(f);
  if (s == VOX_OK) {
    text[len] = '\0';
    if (strlen(text) != len) s = vox_errorf(VOX_ERR_PARSE, "%s: contains a NUL byte (not a JSON text file)", path);
    else s = vox_hf_config_parse(text, path, out);
  }
  free(text);
  free(path);
  return s;
}

void vox_hf_config_free(vox_hf_config *c) {
  if (!c) return;
  cJSON_Delete(c->root);
  free(c->path);
  free(c);
}

const char *vox_hf_config_path(const vox_hf_config *c) { return c->path; }

/* Resolves `key` (length n) below `node`: the longest literal object key first, so "a.b" as a key wins over
 * descending into "a". A numeric segment indexes an array. */
static const cJSON *resolve(const cJSON *node, const char *key, size_t n) {
  if (cJSON_IsObject(node)) {
    char seg[256];
    for (size_t i = n + 1; i-- > 0;) {
      if (i != n && key[i] != '.') continue;
      if (i == 0 || i >= sizeof seg) continue;
      memcpy(seg, key, i);
      seg[i] = '\0';
      const cJSON *child = cJSON_GetObjectItemCaseSensitive(node, seg);
      if (!child) continue;
      if (i == n) return child;
      const cJSON *r = resolve(child, key + i + 1, n - i - 1);
      if (r) return r;
    }
    return NULL;
  }
  if (cJSON_IsArray(node)) {
    size_t i = 0;
    long idx = 0;
    while (i < n && key[i] >= '0' && key[i] <= '9' && idx < 1000000000L) idx = idx * 10 + (key[i++] - '0');
    if (i == 0 || (i < n && key[i] != '.')) return NULL;
    const cJSON *child = cJSON_GetArrayItem(node, (int)idx);
    if (!child) return NULL;
    return i == n ? child : resolve(child, key + i + 1, n - i - 1);
  }
  return NULL;
}

static const cJSON *lookup(const vox_hf_config *c, const char *key) {
  const cJSON *j = resolve(c->root, key, strlen(key));
  return j && !cJSON_IsNull(j) ? j : NULL;
}

bool vox_hf_config_has(const vox_hf_config *c, const char *key) { return lookup(c, key) != NULL; }

static vox_status wrong_type(const vox_hf_config *c, const char *key, const char *want, const cJSON *j) {
  return vox_errorf(VOX_ERR_PARSE, "%s: \"%s\" is %s, expected %s", c->path, key, json_type(j), want);
}

static vox_status missing(const vox_hf_config *c, const char *key, const char *want) {
  return vox_errorf(VOX_ERR_NOT_FOUND, "%s: required key \"%s\" (%s) is missing", c->path, key, want);
}

static vox_status get_int(const vox_hf_config *c, const char *key, const cJSON *j, int64_t *out) {
  if (!cJSON_IsNumber(j)) return wrong_type(c, key, "an integer", j);
  double d = j->valuedouble;
  if (d != floor(d) || fabs(d) > 9007199254740992.0)
    return vox_errorf(VOX_ERR_PARSE, "%s: \"%s\" is %g, expected an integer", c->path, key, d);
  *out = (int64_t)d;
  return VOX_OK;
}

vox_status vox_hf_config_int(const vox_hf_config *c, const char *key, int64_t dflt, int64_t *out) {
  const cJSON *j = lookup(c, key);
  if (!j) {
    *out = dflt;
    return VOX_OK;
  }
  return get_int(c, key, j, out);
}

vox_status vox_hf_config_int_req(const vox_hf_config *c, const char *key, int64_t *out) {
  const cJSON *j = lookup(c, key);
  if (!j) return missing(c, key, "an integer");
  return get_int(c, key, j, out);
}

static vox_status get_float(const vox_hf_config *c, const char *key, const cJSON *j, double *out) {
  if (!cJSON_IsNumber(j)) return wrong_type(c, key, "a number", j);
  *out = j->valuedouble;
  return VOX_OK;
}

vox_status vox_hf_config_float(const vox_hf_config *c, const char *key, double dflt, double *out) {
  const cJSON *j = lookup(c, key);
  if (!j) {
    *out = dflt;
    return VOX_OK;
  }
  return get_float(c, key, j, out);
}

vox_status vox_hf_config_float_req(const vox_hf_config *c, const char *key, double *out) {
  const cJSON *j = lookup(c, key);
  if (!j) return missing(c, key, "a number");
  return get_float(c, key, j, out);
}

static vox_status get_bool(const vox_hf_config *c, const char *key, const cJSON *j, bool *out) {
  if (!cJSON_IsBool(j)) return wrong_type(c, key, "a boolean (true/false)", j);
  *out = cJSON_IsTrue(j);
  return VOX_OK;
}

vox_status vox_hf_config_bool(const vox_hf_config *c, const char *key, bool dflt, bool *out) {
  const cJSON *j = lookup(c, key);
  if (!j) {
    *out = dflt;
    return VOX_OK;
  }
  return get_bool(c, key, j, out);
}

vox_status vox_hf_config_bool_req(const vox_hf_config *c, const char *key, bool *out) {
  const cJSON *j = lookup(c, key);
  if (!j) return missing(c, key, "a boolean");
  return get_bool(c, key, j, out);
}

static vox_status get_string(const vox_hf_config *c, const char *key, const cJSON *j, const char **out) {
  if (!cJSON_IsString(j)) return wrong_type(c, key, "a string", j);
  *out = j->valuestring;
  return VOX_OK;
}

vox_status vox_hf_config_string(const vox_hf_config *c, const char *key, const char *dflt, const char **out) {
  const cJSON *j = lookup(c, key);
  if (!j) {
    *out = dflt;
    return VOX_OK;
  }
  return get_string(c, key, j, out);
}

vox_status vox_hf_config_string_req(const vox_hf_config *c, const char *key, const char **out) {
  const cJSON *j = lookup(c, key);
  if (!j) return missing(c, key, "a string");
  return get_string(c, key, j, out);
}

vox_status vox_hf_config_array_len(const vox_hf_config *c, const char *key, int *n) {
  const cJSON *j = lookup(c, key);
  *n = 0;
  if (!j) return VOX_OK;
  if (!cJSON_IsArray(j)) return wrong_type(c, key, "an array", j);
  *n = cJSON_GetArraySize(j);
  return VOX_OK;
}

vox_status vox_hf_config_int_array(const vox_hf_config *c, const char *key, int64_t *out, int cap, int *n) {
  VOX_TRY(vox_hf_config_array_len(c, key, n));
  const cJSON *j = lookup(c, key);
  int i = 0;
  for (const cJSON *e = j ? j->child : NULL; e; e = e->next, i++) {
    int64_t v = 0;
    char where[300];
    snprintf(where, sizeof where, "%s.%d", key, i);
    VOX_TRY(get_int(c, where, e, &v));
    if (i < cap) out[i] = v;
  }
  return VOX_OK;
}
