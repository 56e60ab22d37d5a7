/* safetensors reading (mmap + full header validation before use) and writing (sorted header, space padding,
 * temp file + fsync + rename). Conversion to vox dtypes happens on the host, then the tensor API moves the data. */
#include "io/safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/backend.h"

/* The reference implementation refuses headers above 100 MB; so do we (a corrupt length must not make us parse
 * gigabytes of tensor data as JSON). */
#define ST_MAX_HEADER ((uint64_t)100 * 1000 * 1000)

static const struct {
  const char *name;
  size_t size;
} st_dtypes[VOX_ST_DTYPE_COUNT] = {
    [VOX_ST_F32] = {"F32", 4},       [VOX_ST_BF16] = {"BF16", 2},        [VOX_ST_F16] = {"F16", 2},
    [VOX_ST_F64] = {"F64", 8},       [VOX_ST_I32] = {"I32", 4},          [VOX_ST_I64] = {"I64", 8},
    [VOX_ST_I16] = {"I16", 2},       [VOX_ST_I8] = {"I8", 1},            [VOX_ST_U8] = {"U8", 1},
    [VOX_ST_U16] = {"U16", 2},       [VOX_ST_U32] = {"U32", 4},          [VOX_ST_U64] = {"U64", 8},
    [VOX_ST_BOOL] = {"BOOL", 1},     [VOX_ST_F8_E4M3] = {"F8_E4M3", 1}, [VOX_ST_F8_E5M2] = {"F8_E5M2", 1},
};

const char *vox_st_dtype_name(vox_st_dtype t) { return t >= 0 && t < VOX_ST_DTYPE_COUNT ? st_dtypes[t].name : "?"; }
size_t vox_st_dtype_size(vox_st_dtype t) { return t >= 0 && t < VOX_ST_DTYPE_COUNT ? st_dtypes[t].size : 0; }
bool vox_st_dtype_readable(vox_st_dtype t) {
  return t == VOX_ST_F32 || t == VOX_ST_BF16 || t == VOX_ST_F16 || t == VOX_ST_F64 || t == VOX_ST_I32 ||
         t == VOX_ST_I64;
}

typedef struct st_entry {
  char *name;
  vox_st_info info;
  uint64_t begin, end; /* relative to the data section */
} st_entry;

struct vox_safetensors {
  char *path;
  void *map;
  size_t map_size;
  const uint8_t *data; /* start of the data section */
  uint64_t data_size;
  st_entry *entries;
  int count;
  char **meta_keys, **meta_values;
  int n_meta;
};

/* ---- header parsing ------------------------------------------------------------------------------------------ */

static const char *json_type(const cJSON *j) {
  if (cJSON_IsString(j)) return "a string";
  if (cJSON_IsNumber(j)) return "a number";
  if (cJSON_IsObject(j)) return "an object";
  if (cJSON_IsArray(j)) return "an array";
  if (cJSON_IsBool(j)) return "a boolean";
  if (cJSON_IsNull(j)) return "null";
  return "invalid";
}

/* A JSON number that is a non-negative integer below 2^53 (cJSON keeps numbers as doubles). */
static bool json_u64(const cJSON *j, uint64_t *out) {
  if (!cJSON_IsNumber(j)) return false;
  double d = j->valuedouble;
  if (!(d >= 0) || d > 9007199254740992.0 || d != floor(d)) return false;
  *out = (uint64_t)d;
  return true;
}

static vox_status parse_entry(vox_safetensors *st, const cJSON *item, st_entry *e) {
  const char *p = st->path, *n = item->string;
  if (!cJSON_IsObject(item))
    return vox_errorf(VOX_ERR_PARSE, "%s: tensor '%s': header entry is %s, expected an object", p, n, json_type(item));
  const cJSON *dt = cJSON_GetObjectItemCaseSensitive(item, "dtype");
  const cJSON *shape = cJSON_GetObjectItemCaseSensitive(item, "shape");
  const cJSON *offs = cJSON_GetObjectItemCaseSensitive(item, "data_offsets");
  if (!cJSON_IsString(dt))
    return vox_errorf(VOX_ERR_PARSE, "%s: tensor '%s': \"dtype\" is %s, expected a string", p, n,
                      dt ? json_type(dt) : "missing");
  int d = 0;
  while (d < VOX_ST_DTYPE_COUNT && strcmp(st_dtypes[d].name, dt->valuestring) != 0) d++;
  if (d == VOX_ST_DTYPE_COUNT)
    return vox_errorf(VOX_ERR_PARSE, "%s: tensor '%s': unknown dtype \"%s\" (safetensors dtypes: F32, BF16, F16, F64, "
                      "I64, I32, I16, I8, U8, ..., BOOL, F8_E4M3, F8_E5M2)", p, n, dt->valuestring);
  e->info.dtype = (vox_st_dtype)d;
  if (!cJSON_IsArray(shape))
    return vox_errorf(VOX_ERR_PARSE, "%s: tensor '%s': \"shape\" is %s, expected an array", p, n,
                      shape ? json_type(shape) : "missing");
  int ndim = cJSON_GetArraySize(shape);
  if (ndim > VOX_MAX_DIMS)
    return vox_errorf(VOX_ERR_PARSE, "%s: tensor '%s': %d dims (at most %d)", p, n, ndim, VOX_MAX_DIMS);
  e->info.ndim = ndim;
  /* numel and bytes with overflow checks: a hostile shape must not wrap around to a small size. */
  uint64_t numel = 1;
  bool overflow = false;
  int i = 0;
  for (const cJSON *s = shape->child; s; s = s->next, i++) {
    uint64_t v;
    if (!json_u64(s, &v))
      return vox_errorf(VOX_ERR_PARSE, "%s: tensor '%s': shape[%d] is not a non-negative integer", p, n, i);
    e->info.shape[i] = (int64_t)v;
    if (v && numel > UINT64_MAX / v) overflow = true;
    numel *= v;
  }
  size_t esize = st_dtypes[d].size;
  if (overflow || numel > (uint64_t)INT64_MAX / esize)
    return vox_errorf(VOX_ERR_PARSE, "%s: tensor '%s': shape is too large", p, n);
  e->info.numel = (int64_t)numel;
  if (!cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2 || !json_u64(offs->child, &e->begin) ||
      !json_u64(offs->child->next, &e->end))
    return vox_errorf(VOX_ERR_PARSE, "%s: tensor '%s': \"data_offsets\" must be [begin, end] (non-negative integers)",
                      p, n);
  if (e->end < e->begin)
    return vox_errorf(VOX_ERR_PARSE, "%s: tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64 "] end before begin", p,
                      n, e->begin, e->end);
  if (e->end > st->data_size)
    return vox_errorf(VOX_ERR_PARSE,
                      "%s: tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64 "] lie outside the data section of %" PRIu64
                      " bytes (truncated file?)", p, n, e->begin, e->end, st->data_size);
  uint64_t want = numel * esize;
  if (e->end - e->begin != want) {
    char shp[128];
    int k = snprintf(shp, sizeof shp, "[");
    for (int j = 0; j < ndim && k < (int)sizeof shp - 24; j++)
      k += snprintf(shp + k, sizeof shp - k, "%s%" PRId64, j ? "," : "", e->info.shape[j]);
    snprintf(shp + k, sizeof shp - k, "]");
    return vox_errorf(VOX_ERR_PARSE,
                      "%s: tensor '%s': %s%s needs %" PRIu64 " bytes but data_offsets [%" PRIu64 ", %" PRIu64
                      "] span %" PRIu64, p, n, st_dtypes[d].name, shp, want, e->begin, e->end, e->end - e->begin);
  }
  e->info.nbytes = (size_t)want;
  e->name = strdup(n);
  if (!e->name) return vox_errorf(VOX_ERR_NOMEM, "%s: out of memory", p);
  return VOX_OK;
}

static vox_status parse_metadata(vox_safetensors *st, const cJSON *meta) {
  if (!cJSON_IsObject(meta))
    return vox_errorf(VOX_ERR_PARSE, "%s: \"__metadata__\" is %s, expected an object of strings", st->path,
                      json_type(meta));
  int n = cJSON_GetArraySize(meta);
  st->meta_keys = calloc((size_t)n + 1, sizeof(char *));
  st->meta_values = calloc((size_t)n + 1, sizeof(char *));
  if (!st->meta_keys || !st->meta_values) return vox_errorf(VOX_ERR_NOMEM, "%s: out of memory", st->path);
  for (const cJSON *m = meta->child; m; m = m->next) {
    if (!cJSON_IsString(m))
      return vox_errorf(VOX_ERR_PARSE, "%s: \"__metadata__\".\"%s\" is %s, expected a string", st->path, m->string,
                        json_type(m));
    st->meta_keys[st->n_meta] = strdup(m->string);
    st->meta_values[st->n_meta] = strdup(m->valuestring);
    st->n_meta++;
  }
  return VOX_OK;
}

static int cmp_by_begin(const void *a, const void *b) {
  const st_entry *x = *(st_entry *const *)a, *y = *(st_entry *const *)b;
  if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
  return x->end < y->end ? -1 : x->end > y->end;
}

static int cmp_by_name(const void *a, const void *b) {
  return strcmp((*(st_entry *const *)a)->name, (*(st_entry *const *)b)->name);
}

/* Overlaps and duplicate names, over all entries at once. */
static vox_status check_entries(vox_safetensors *st) {
  if (st->count < 2) return VOX_OK;
  st_entry **order = malloc(sizeof(st_entry *) * (size_t)st->count);
  if (!order) return vox_errorf(VOX_ERR_NOMEM, "%s: out of memory", st->path);
  for (int i = 0; i < st->count; i++) order[i] = &st->entries[i];
  vox_status s = VOX_OK;
  qsort(order, (size_t)st->count, sizeof *order, cmp_by_name);
  for (int i = 1; i < st->count && s == VOX_OK; i++)
    if (strcmp(order[i - 1]->name, order[i]->name) == 0)
      s = vox_errorf(VOX_ERR_PARSE, "%s: tensor '%s' appears twice in the header", st->path, order[i]->name);
  if (s == VOX_OK) {
    qsort(order, (size_t)st->count, sizeof *order, cmp_by_begin);
    /* Empty tensors occupy no bytes and cannot overlap anything. */
    const st_entry *prev = NULL;
    for (int i = 0; i < st->count && s == VOX_OK; i++) {
      const st_entry *e = order[i];
      if (e->begin == e->end) continue;
      if (prev && e->begin < prev->end)
        s = vox_errorf(VOX_ERR_PARSE,
                       "%s: tensors '%s' [%" PRIu64 ", %" PRIu64 ") and '%s' [%" PRIu64 ", %" PRIu64 ") overlap",
                       st->path, prev->name, prev->begin, prev->end, e->name, e->begin, e->end);
      prev = e;
    }
  }
  free(order);
  return s;
}

static vox_status parse_header(vox_safetensors *st, const char *json, size_t len) {
  const char *end = NULL;
  cJSON *root = cJSON_ParseWithLengthOpts(json, len, &end, 0);
  if (!root) {
    size_t at = end && end >= json ? (size_t)(end - json) : 0;
    const char *errp = cJSON_GetErrorPtr();
    if (errp && errp >= json && errp <= json + len) at = (size_t)(errp - json);
    return vox_errorf(VOX_ERR_PARSE, "%s: the JSON header (%zu bytes) is not valid JSON (error near byte %zu)",
                      st->path, len, at);
  }
  /* Only the padding the format allows (spaces) may follow the JSON object. */
  for (const char *q = end; q < json + len; q++)
    if (*q != ' ' && *q != '\n' && *q != '\t' && *q != '\r' && *q != '\0') {
      cJSON_Delete(root);
      return vox_errorf(VOX_ERR_PARSE, "%s: unexpected bytes after the JSON header (at byte %zu of %zu)", st->path,
                        (size_t)(q - json), len);
    }
  vox_status s = VOX_OK;
  if (!cJSON_IsObject(root)) {
    s = vox_errorf(VOX_ERR_PARSE, "%s: the JSON header is %s, expected an object", st->path, json_type(root));
    goto done;
  }
  int n = cJSON_GetArraySize(root);
  st->entries = calloc((size_t)(n ? n : 1), sizeof *st->entries);
  if (!st->entries) {
    s = vox_errorf(VOX_ERR_NOMEM, "%s: out of memory", st->path);
    goto done;
  }
  bool have_meta = false;
  for (const cJSON *item = root->child; item && s == VOX_OK; item = item->next) {
    if (strcmp(item->string, "__metadata__") == 0) {
      if (have_meta) s = vox_errorf(VOX_ERR_PARSE, "%s: \"__metadata__\" appears twice", st->path);
      else s = parse_metadata(st, item);
      have_meta = true;
      continue;
    }
    s = parse_entry(st, item, &st->entries[st->count]);
    if (s == VOX_OK) st->count++;
  }
  if (s == VOX_OK) s = check_entries(st);
done:
  cJSON_Delete(root);
  return s;
}

/* ---- open / close / queries ---------------------------------------------------------------------------------- */

void vox_safetensors_close(vox_safetensors *st) {
  if (!st) return;
  if (st->map) munmap(st->map, st->map_size);
  for (int i = 0; i < st->count; i++) free(st->entries[i].name);
  free(st->entries);
  for (int i = 0; i < st->n_meta; i++) {
    free(st->meta_keys[i]);
    free(st->meta_values[i]);
  }
  free(st->meta_keys);
  free(st->meta_values);
  free(st->path);
  free(st);
}

vox_status vox_safetensors_open(const char *path, vox_safetensors **out) {
  *out = NULL;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return vox_errorf(VOX_ERR_IO, "%s: cannot open safetensors file: %s", path, strerror(errno));
  struct stat sb;
  if (fstat(fd, &sb) != 0) {
    vox_status s = vox_errorf(VOX_ERR_IO, "%s: cannot stat: %s", path, strerror(errno));
    close(fd);
    return s;
  }
  if (!S_ISREG(sb.st_mode)) {
    close(fd);
    return vox_errorf(VOX_ERR_IO, "%s: not a regular file", path);
  }
  uint64_t size = (uint64_t)sb.st_size;
  if (size < 8) {
    close(fd);
    return vox_errorf(VOX_ERR_PARSE, "%s: %" PRIu64 " bytes, too short for a safetensors file (truncated?)", path,
                      size);
  }
  vox_safetensors *st = calloc(1, sizeof *st);
  if (!st || !(st->path = strdup(path))) {
    free(st);
    close(fd);
    return vox_errorf(VOX_ERR_NOMEM, "%s: out of memory", path);
  }
  st->map_size = (size_t)size;
  st->map = mmap(NULL, st->map_size, PROT_READ, MAP_PRIVATE, fd, 0);
  int map_errno = errno;
  close(fd); /* the mapping keeps the file alive */
  if (st->map == MAP_FAILED) {
    st->map = NULL;
    vox_safetensors_close(st);
    return vox_errorf(VOX_ERR_IO, "%s: mmap failed: %s", path, strerror(map_errno));
  }
  const uint8_t *b = st->map;
  uint64_t hlen = 0;
  for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | b[i];
  vox_status s = VOX_OK;
  if (hlen > size - 8)
    s = vox_errorf(VOX_ERR_PARSE,
                   "%s: header length %" PRIu64 " runs past the end of the file (%" PRIu64
                   " bytes; truncated or not a safetensors file)", path, hlen, size);
  else if (hlen > ST_MAX_HEADER)
    s = vox_errorf(VOX_ERR_PARSE, "%s: header length %" PRIu64 " exceeds the %" PRIu64 "-byte limit", path, hlen,
                   ST_MAX_HEADER);
  else if (hlen < 2 || b[8] != '{')
    s = vox_errorf(VOX_ERR_PARSE, "%s: the header does not start with a JSON object (not a safetensors file?)", path);
  if (s == VOX_OK) {
    st->data = b + 8 + hlen;
    st->data_size = size - 8 - hlen;
    s = parse_header(st, (const char *)b + 8, (size_t)hlen);
  }
  if (s != VOX_OK) {
    vox_safetensors_close(st);
    return s;
  }
  *out = st;
  return VOX_OK;
}

const char *vox_safetensors_path(const vox_safetensors *st) { return st->path; }
int vox_safetensors_count(const vox_safetensors *st) { return st->count; }
const char *vox_safetensors_name_at(const vox_safetensors *st, int i) {
  return i >= 0 && i < st->count ? st->entries[i].name : NULL;
}

int vox_safetensors_find(const vox_safetensors *st, const char *name) {
  for (int i = 0; i < st->count; i++)
    if (strcmp(st->entries[i].name, name) == 0) return i;
  return -1;
}

bool vox_safetensors_has(const vox_safetensors *st, const char *name) { return vox_safetensors_find(st, name) >= 0; }

static vox_status find_entry(const vox_safetensors *st, const char *name, const st_entry **e) {
  int i = vox_safetensors_find(st, name);
  if (i < 0) return vox_errorf(VOX_ERR_NOT_FOUND, "%s: no tensor '%s' in the file", st->path, name);
  *e = &st->entries[i];
  return VOX_OK;
}

vox_status vox_safetensors_info(const vox_safetensors *st, const char *name, vox_st_info *out) {
  const st_entry *e = NULL;
  VOX_TRY(find_entry(st, name, &e));
  *out = e->info;
  return VOX_OK;
}

const char *vox_safetensors_metadata(const vox_safetensors *st, const char *key) {
  for (int i = 0; i < st->n_meta; i++)
    if (strcmp(st->meta_keys[i], key) == 0) return st->meta_values[i];
  return NULL;
}

vox_status vox_safetensors_raw(const vox_safetensors *st, const char *name, const void **data, size_t *nbytes) {
  const st_entry *e = NULL;
  VOX_TRY(find_entry(st, name, &e));
  *data = st->data + e->begin;
  *nbytes = e->info.nbytes;
  return VOX_OK;
}

/* ---- conversion ---------------------------------------------------------------------------------------------- */

/* IEEE half to float, subnormals, infinities and NaN included. */
static inline float f16_to_f32(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000u) << 16, exp = (h >> 10) & 0x1fu, man = h & 0x3ffu, bits;
  if (exp == 0x1f) {
    bits = sign | 0x7f800000u | (man << 13);
  } else if (exp != 0) {
    bits = sign | ((exp + 112u) << 23) | (man << 13);
  } else if (man == 0) {
    bits = sign;
  } else { /* subnormal: value = man * 2^-24 */
    float f = (float)man * 5.9604644775390625e-8f;
    memcpy(&bits, &f, sizeof bits);
    bits |= sign;
  }
  float f;
  memcpy(&f, &bits, sizeof f);
  return f;
}

#define LOAD(type, p, i) \
  ({                     \
    type v_;             \
    memcpy(&v_, (const uint8_t *)(p) + (size_t)(i) * sizeof(type), sizeof v_); \
    v_;                  \
  })

/* Element i of a source buffer as a double-free float (all float sources, and ints, as f32). */
static inline float src_f32(vox_st_dtype t, const void *p, int64_t i) {
  switch (t) {
  case VOX_ST_F32: return LOAD(float, p, i);
  case VOX_ST_BF16: return vox_bf16_to_f32(LOAD(uint16_t, p, i));
  case VOX_ST_F16: return f16_to_f32(LOAD(uint16_t, p, i));
  case VOX_ST_F64: return (float)LOAD(double, p, i);
  case VOX_ST_I32: return (float)LOAD(int32_t, p, i);
  case VOX_ST_I64: return (float)LOAD(int64_t, p, i);
  default: return 0.0f;
  }
}

/* Converts n source elements into contiguous host memory of `dt`. I64 -> i32 out of range is an error. */
static vox_status convert(const vox_safetensors *st, const st_entry *e, vox_dtype dt, void *dst) {
  const void *src = st->data + e->begin;
  int64_t n = e->info.numel;
  vox_st_dtype t = e->info.dtype;
  int nt = vox_num_threads();
  if ((dt == VOX_F32 && t == VOX_ST_F32) || (dt == VOX_BF16 && t == VOX_ST_BF16) || (dt == VOX_I32 && t == VOX_ST_I32)) {
    memcpy(dst, src, e->info.nbytes);
    return VOX_OK;
  }
  if (dt == VOX_I32) {
    if (t != VOX_ST_I64)
      return vox_errorf(VOX_ERR_DTYPE, "%s: tensor '%s' is %s and cannot be read into an i32 tensor", st->path,
                        e->name, vox_st_dtype_name(t));
    int32_t *o = dst;
    for (int64_t i = 0; i < n; i++) {
      int64_t v = LOAD(int64_t, src, i);
      if (v < INT32_MIN || v > INT32_MAX)
        return vox_errorf(VOX_ERR_DTYPE, "%s: tensor '%s': element %" PRId64 " = %" PRId64 " does not fit in i32",
                          st->path, e->name, i, v);
      o[i] = (int32_t)v;
    }
    return VOX_OK;
  }
  if (dt == VOX_F32) {
    float *o = dst;
#pragma omp parallel for schedule(static) num_threads(nt) if (n > (1 << 16))
    for (int64_t i = 0; i < n; i++) o[i] = src_f32(t, src, i);
  } else {
    uint16_t *o = dst;
#pragma omp parallel for schedule(static) num_threads(nt) if (n > (1 << 16))
    for (int64_t i = 0; i < n; i++) o[i] = vox_f32_to_bf16(src_f32(t, src, i));
  }
  return VOX_OK;
}

static void describe_entry(const st_entry *e, char *buf, size_t cap) {
  int k = snprintf(buf, cap, "%s[", vox_st_dtype_name(e->info.dtype));
  for (int j = 0; j < e->info.ndim && k < (int)cap - 24; j++)
    k += snprintf(buf + k, cap - (size_t)k, "%s%" PRId64, j ? "," : "", e->info.shape[j]);
  snprintf(buf + k, cap - (size_t)k, "]");
}

vox_status vox_safetensors_read_into(const vox_safetensors *st, const char *name, vox_tensor *dst) {
  const st_entry *e = NULL;
  VOX_TRY(find_entry(st, name, &e));
  char b1[128], b2[128];
  bool same = dst->ndim == e->info.ndim;
  for (int i = 0; same && i < dst->ndim; i++) same = dst->shape[i] == e->info.shape[i];
  if (!same) {
    describe_entry(e, b1, sizeof b1);
    return vox_errorf(VOX_ERR_SHAPE, "%s: tensor '%s' is %s in the file but %s in the model", st->path, name, b1,
                      vox_tensor_describe(dst, b2, sizeof b2));
  }
  if (!vox_st_dtype_readable(e->info.dtype))
    return vox_errorf(VOX_ERR_DTYPE, "%s: tensor '%s' has dtype %s, which vox cannot read (F32, BF16, F16, F64, I32, "
                      "I64)", st->path, name, vox_st_dtype_name(e->info.dtype));
  bool src_int = e->info.dtype == VOX_ST_I32 || e->info.dtype == VOX_ST_I64;
  if (dst->dtype == VOX_I32 && !src_int)
    return vox_errorf(VOX_ERR_DTYPE, "%s: tensor '%s' is %s and cannot be read into an i32 tensor", st->path, name,
                      vox_st_dtype_name(e->info.dtype));
  if (dst->dtype != VOX_F32 && dst->dtype != VOX_BF16 && dst->dtype != VOX_I32)
    return vox_errorf(VOX_ERR_DTYPE, "%s: tensor '%s': cannot read into a %s tensor", st->path, name,
                      vox_dtype_name(dst->dtype));
  /* Straight into a contiguous CPU destination; otherwise through a contiguous host tensor and the tensor API. */
  if (dst->device == VOX_CPU && vox_tensor_is_contiguous(dst)) return convert(st, e, dst->dtype, vox_tensor_data(dst));
  vox_tensor *host = NULL;
  VOX_TRY(vox_tensor_empty(dst->dtype, VOX_CPU, dst->ndim, dst->shape, &host));
  vox_status s = convert(st, e, dst->dtype, vox_tensor_data(host));
  if (s == VOX_OK) s = vox_tensor_copy_(dst, host);
  vox_tensor_release(host);
  if (s != VOX_OK) return vox_error_context(s, "%s: tensor '%s': ", st->path, name);
  return VOX_OK;
}

vox_status vox_safetensors_read_tensor(const vox_safetensors *st, const char *name, vox_device device,
                                       vox_dtype dtype, vox_tensor **out) {
  const st_entry *e = NULL;
  *out = NULL;
  VOX_TRY(find_entry(st, name, &e));
  VOX_TRY(vox_tensor_empty(dtype, device, e->info.ndim, e->info.shape, out));
  vox_status s = vox_safetensors_read_into(st, name, *out);
  if (s != VOX_OK) vox_tensor_drop(out);
  return s;
}

/* ---- writing ------------------------------------------------------------------------------------------------- */

typedef struct sbuf {
  char *p;
  size_t len, cap;
  bool oom;
} sbuf;

static void sb_putn(sbuf *b, const char *s, size_t n) {
  if (b->oom) return;
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n + 1) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) {
      b->oom = true;
      return;
    }
    b->p = p;
    b->cap = cap;
  }
  memcpy(b->p + b->len, s, n);
  b->len += n;
  b->p[b->len] = '\0';
}
static void sb_puts(sbuf *b, const char *s) { sb_putn(b, s, strlen(s)); }
static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *b, const char *fmt, ...) {
  char tmp[256];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
  va_end(ap);
  sb_putn(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}
/* A JSON string literal (quotes, backslashes and control characters escaped; UTF-8 passes through). */
static void sb_json_string(sbuf *b, const char *s) {
  sb_puts(b, "\"");
  for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
    if (*c == '"') sb_puts(b, "\\\"");
    else if (*c == '\\') sb_puts(b, "\\\\");
    else if (*c == '\n') sb_puts(b, "\\n");
    else if (*c == '\t') sb_puts(b, "\\t");
    else if (*c == '\r') sb_puts(b, "\\r");
    else if (*c < 0x20) sb_printf(b, "\\u%04x", *c);
    else sb_putn(b, (const char *)c, 1);
  }
  sb_puts(b, "\"");
}

typedef struct w_item {
  const char *name;
  const vox_tensor *t;
  vox_dtype disk;
  uint64_t begin, end;
} w_item;

static int cmp_item_name(const void *a, const void *b) {
  return strcmp(((const w_item *)a)->name, ((const w_item *)b)->name);
}

static vox_status write_all(FILE *f, const char *path, const void *p, size_t n) {
  if (n && fwrite(p, 1, n, f) != n) return vox_errorf(VOX_ERR_IO, "%s: write failed: %s", path, strerror(errno));
  return VOX_OK;
}

static vox_status write_tensor_data(FILE *f, const char *tmp, const w_item *it) {
  vox_tensor *host = NULL;
  const vox_tensor *t = it->t;
  bool direct = t->device == VOX_CPU && t->dtype == it->disk && vox_tensor_is_contiguous(t);
  if (!direct) {
    vox_status s = vox_tensor_to(t, VOX_CPU, it->disk, &host);
    if (s != VOX_OK) return vox_error_context(s, "%s: tensor '%s': ", tmp, it->name);
    t = host;
  }
  vox_status s = write_all(f, tmp, vox_tensor_data(t), it->end - it->begin);
  vox_tensor_release(host);
  return s;
}

/* fsync of the directory makes the rename itself durable. */
static void sync_parent_dir(const char *path) {
  char *dir = strdup(path);
  if (!dir) return;
  char *slash = strrchr(dir, '/');
  const char *d = ".";
  if (slash) {
    *(slash == dir ? slash + 1 : slash) = '\0';
    d = dir;
  }
  int fd = open(d, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    (void)fsync(fd);
    close(fd);
  }
  free(dir);
}

vox_status vox_safetensors_write(const char *path, int n, const char *const *names, const vox_tensor *const *tensors,
                                 vox_dtype on_disk, int n_meta, const char *const *meta_keys,
                                 const char *const *meta_values) {
  if (on_disk != VOX_F32 && on_disk != VOX_BF16)
    return vox_errorf(VOX_ERR_DTYPE, "%s: safetensors on-disk dtype must be f32 or bf16, not %s", path,
                      vox_dtype_name(on_disk));
  if (n < 0 || n_meta < 0) return vox_errorf(VOX_ERR_INVALID, "%s: negative tensor or metadata count", path);
  w_item *items = calloc((size_t)(n ? n : 1), sizeof *items);
  if (!items) return vox_errorf(VOX_ERR_NOMEM, "%s: out of memory", path);
  vox_status s = VOX_OK;
  for (int i = 0; i < n && s == VOX_OK; i++) {
    if (!names[i] || !*names[i] || strcmp(names[i], "__metadata__") == 0)
      s = vox_errorf(VOX_ERR_INVALID, "%s: tensor %d has an empty or reserved name '%s'", path, i,
                     names[i] ? names[i] : "");
    else if (!tensors[i])
      s = vox_errorf(VOX_ERR_INVALID, "%s: tensor '%s' is NULL", path, names[i]);
    items[i] = (w_item){.name = names[i], .t = tensors[i]};
    if (s == VOX_OK) items[i].disk = tensors[i]->dtype == VOX_I32 ? VOX_I32 : on_disk;
  }
  if (s == VOX_OK) {
    qsort(items, (size_t)n, sizeof *items, cmp_item_name);
    for (int i = 1; i < n && s == VOX_OK; i++)
      if (strcmp(items[i - 1].name, items[i].name) == 0)
        s = vox_errorf(VOX_ERR_INVALID, "%s: tensor name '%s' is given twice", path, items[i].name);
  }
  sbuf h = {0};
  if (s == VOX_OK) {
    uint64_t off = 0;
    sb_puts(&h, "{");
    if (n_meta > 0) {
      sb_puts(&h, "\"__metadata__\":{");
      for (int i = 0; i < n_meta; i++) {
        if (i) sb_puts(&h, ",");
        sb_json_string(&h, meta_keys[i]);
        sb_puts(&h, ":");
        sb_json_string(&h, meta_values[i]);
      }
      sb_puts(&h, "}");
    }
    for (int i = 0; i < n; i++) {
      w_item *it = &items[i];
      it->begin = off;
      it->end = off + (uint64_t)vox_tensor_numel(it->t) * vox_dtype_size(it->disk);
      off = it->end;
      if (i || n_meta > 0) sb_puts(&h, ",");
      sb_json_string(&h, it->name);
      sb_printf(&h, ":{\"dtype\":\"%s\",\"shape\":[",
                it->disk == VOX_F32 ? "F32" : it->disk == VOX_BF16 ? "BF16" : "I32");
      for (int d = 0; d < it->t->ndim; d++) sb_printf(&h, "%s%" PRId64, d ? "," : "", it->t->shape[d]);
      sb_printf(&h, "],\"data_offsets\":[%" PRIu64 ",%" PRIu64 "]}", it->begin, it->end);
    }
    sb_puts(&h, "}");
    while (h.len % 8) sb_puts(&h, " ");
    if (h.oom) s = vox_errorf(VOX_ERR_NOMEM, "%s: out of memory building the header", path);
  }
  char *tmp = NULL;
  FILE *f = NULL;
  if (s == VOX_OK) {
    tmp = malloc(strlen(path) + 32);
    if (!tmp) s = vox_errorf(VOX_ERR_NOMEM, "%s: out of memory", path);
    else sprintf(tmp, "%s.tmp-%d", path, (int)getpid());
  }
  if (s == VOX_OK && !(f = fopen(tmp, "wb")))
    s = vox_errorf(VOX_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
  if (s == VOX_OK) {
    uint8_t len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (uint8_t)((uint64_t)h.len >> (8 * i));
    s = write_all(f, tmp, len8, 8);
    if (s == VOX_OK) s = write_all(f, tmp, h.p, h.len);
    for (int i = 0; i < n && s == VOX_OK; i++) s = write_tensor_data(f, tmp, &items[i]);
    if (s == VOX_OK && (fflush(f) != 0 || fsync(fileno(f)) != 0))
      s = vox_errorf(VOX_ERR_IO, "%s: flush/fsync failed: %s", tmp, strerror(errno));
    if (fclose(f) != 0 && s == VOX_OK) s = vox_errorf(VOX_ERR_IO, "%s: close failed: %s", tmp, strerror(errno));
    if (s == VOX_OK && rename(tmp, path) != 0)
      s = vox_errorf(VOX_ERR_IO, "%s: cannot rename the finished file into place: %s", path, strerror(errno));
    if (s != VOX_OK) unlink(tmp);
    else sync_parent_dir(path);
  }
  free(tmp);
  free(h.p);
  free(items);
  return s;
}
