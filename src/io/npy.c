/* .npy reading and writing for float32/int32 C-order arrays: enough of the format for fixtures, feature dumps
 * and interchange with NumPy, with messages that say what the header actually contained. */
#include "io/npy.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char npy_magic[6] = {'\x93', 'N', 'U', 'M', 'P', 'Y'};

static vox_status npy_save(const char *path, const void *data, int ndim, const int64_t *shape, const char *descr) {
  if (!path || ndim < 0 || ndim > VOX_NPY_MAX_DIMS || (ndim > 0 && !shape))
    return vox_errorf(VOX_ERR_INVALID, "npy %s: bad arguments (ndim %d, max %d)", path ? path : "(null)", ndim,
                      VOX_NPY_MAX_DIMS);
  int64_t numel = 1;
  char shp[256];
  int len = 0;
  len += snprintf(shp + len, sizeof shp - len, "(");
  for (int i = 0; i < ndim; i++) {
    if (shape[i] < 0) return vox_errorf(VOX_ERR_INVALID, "npy %s: negative dimension %" PRId64, path, shape[i]);
    numel *= shape[i];
    len += snprintf(shp + len, sizeof shp - len, "%" PRId64 "%s", shape[i], (ndim == 1 || i + 1 < ndim) ? "," : "");
    if (i + 1 < ndim) len += snprintf(shp + len, sizeof shp - len, " ");
  }
  snprintf(shp + len, sizeof shp - len, ")");
  if (numel > 0 && !data) return vox_errorf(VOX_ERR_INVALID, "npy %s: NULL data", path);
  char header[512];
  int h = snprintf(header, sizeof header, "{'descr': '%s', 'fortran_order': False, 'shape': %s, }", descr, shp);
  /* v1.0: magic(6) + version(2) + u16 header length, total padded to a multiple of 64, ending in '\n'. */
  int total = 10 + h + 1;
  int pad = (64 - total % 64) % 64;
  for (int i = 0; i < pad; i++) header[h++] = ' ';
  header[h++] = '\n';
  FILE *f = fopen(path, "wb");
  if (!f) return vox_errorf(VOX_ERR_IO, "npy %s: cannot create: %s", path, strerror(errno));
  unsigned char pre[10];
  memcpy(pre, npy_magic, 6);
  pre[6] = 1;
  pre[7] = 0;
  pre[8] = (unsigned char)(h & 0xff);
  pre[9] = (unsigned char)(h >> 8);
  bool ok = fwrite(pre, 1, 10, f) == 10 && fwrite(header, 1, (size_t)h, f) == (size_t)h;
  if (ok && numel > 0) ok = fwrite(data, 4, (size_t)numel, f) == (size_t)numel;
  if (fclose(f) != 0) ok = false;
  if (!ok) return vox_errorf(VOX_ERR_IO, "npy %s: write failed: %s", path, strerror(errno));
  return VOX_OK;
}

vox_status vox_npy_save_f32(const char *path, const float *data, int ndim, const int64_t *shape) {
  return npy_save(path, data, ndim, shape, "<f4");
}
vox_status vox_npy_save_i32(const char *path, const int32_t *data, int ndim, const int64_t *shape) {
  return npy_save(path, data, ndim, shape, "<i4");
}

/* Finds `'key':` in the header dict and returns a pointer just past the colon and spaces. */
static const char *dict_value(const char *hdr, const char *key) {
  char pat[32];
  snprintf(pat, sizeof pat, "'%s'", key);
  const char *p = strstr(hdr, pat);
  if (!p) {
    snprintf(pat, sizeof pat, "\"%s\"", key);
    p = strstr(hdr, pat);
  }
  if (!p) return NULL;
  p += strlen(pat);
  while (*p == ' ') p++;
  if (*p != ':') return NULL;
  p++;
  while (*p == ' ') p++;
  return p;
}

vox_status vox_npy_load(const char *path, vox_npy *out) {
  if (!path || !out) return vox_errorf(VOX_ERR_INVALID, "vox_npy_load: NULL argument");
  memset(out, 0, sizeof *out);
  FILE *f = fopen(path, "rb");
  if (!f) {
    if (errno == ENOENT) return vox_errorf(VOX_ERR_NOT_FOUND, "npy %s: file not found", path);
    return vox_errorf(VOX_ERR_IO, "npy %s: cannot open: %s", path, strerror(errno));
  }
  vox_status s = VOX_OK;
  char *hdr = NULL;
  unsigned char pre[12];
  if (fread(pre, 1, 8, f) != 8 || memcmp(pre, npy_magic, 6) != 0) {
    s = vox_errorf(VOX_ERR_PARSE, "npy %s: not a .npy file (missing \\x93NUMPY magic)", path);
    goto done;
  }
  uint32_t hlen;
  if (pre[6] == 1) {
    if (fread(pre + 8, 1, 2, f) != 2) goto trunc;
    hlen = pre[8] | (uint32_t)pre[9] << 8;
  } else if (pre[6] == 2 || pre[6] == 3) {
    if (fread(pre + 8, 1, 4, f) != 4) goto trunc;
    hlen = pre[8] | (uint32_t)pre[9] << 8 | (uint32_t)pre[10] << 16 | (uint32_t)pre[11] << 24;
    if (hlen > (1u << 24)) {
      s = vox_errorf(VOX_ERR_PARSE, "npy %s: header length %u is implausible", path, hlen);
      goto done;
    }
  } else {
    s = vox_errorf(VOX_ERR_PARSE, "npy %s: unsupported format version %d.%d", path, pre[6], pre[7]);
    goto done;
  }
  hdr = malloc(hlen + 1);
  if (!hdr) {
    s = vox_errorf(VOX_ERR_NOMEM, "npy %s: cannot allocate header", path);
    goto done;
  }
  if (fread(hdr, 1, hlen, f) != hlen) goto trunc;
  hdr[hlen] = 0;
  const char *d = dict_value(hdr, "descr"), *fo = dict_value(hdr, "fortran_order"), *sh = dict_value(hdr, "shape");
  if (!d || !fo || !sh) {
    s = vox_errorf(VOX_ERR_PARSE, "npy %s: header lacks descr/fortran_order/shape: %s", path, hdr);
    goto done;
  }
  if (!strncmp(d, "'<f4'", 5) || !strncmp(d, "'=f4'", 5))
    out->dtype = VOX_NPY_F32;
  else if (!strncmp(d, "'<i4'", 5) || !strncmp(d, "'=i4'", 5))
    out->dtype = VOX_NPY_I32;
  else {
    char what[32];
    int k = 0;
    while (d[k] && d[k] != ',' && k < 31) what[k] = d[k], k++;
    what[k] = 0;
    s = vox_errorf(VOX_ERR_DTYPE, "npy %s: dtype %s not supported (want '<f4' float32 or '<i4' int32)", path, what);
    goto done;
  }
  if (strncmp(fo, "False", 5) != 0) {
    s = vox_errorf(VOX_ERR_UNSUPPORTED, "npy %s: Fortran-order arrays are not supported", path);
    goto done;
  }
  if (*sh != '(') {
    s = vox_errorf(VOX_ERR_PARSE, "npy %s: malformed shape in header: %s", path, hdr);
    goto done;
  }
  const char *p = sh + 1;
  out->numel = 1;
  for (;;) {
    while (*p == ' ' || *p == ',') p++;
    if (*p == ')') break;
    char *end;
    errno = 0;
    long long v = strtoll(p, &end, 10);
    if (end == p || v < 0 || errno) {
      s = vox_errorf(VOX_ERR_PARSE, "npy %s: malformed shape in header: %s", path, hdr);
      goto done;
    }
    if (out->ndim == VOX_NPY_MAX_DIMS) {
      s = vox_errorf(VOX_ERR_UNSUPPORTED, "npy %s: more than %d dimensions", path, VOX_NPY_MAX_DIMS);
      goto done;
    }
    out->shape[out->ndim++] = v;
    if (v > 0 && out->numel > INT64_MAX / 4 / v) {
      s = vox_errorf(VOX_ERR_PARSE, "npy %s: shape too large", path);
      goto done;
    }
    out->numel *= v;
    p = end;
  }
  out->data = malloc((size_t)(out->numel ? out->numel : 1) * 4);
  if (!out->data) {
    s = vox_errorf(VOX_ERR_NOMEM, "npy %s: cannot allocate %" PRId64 " elements", path, out->numel);
    goto done;
  }
  size_t got = fread(out->data, 4, (size_t)out->numel, f);
  if (got != (size_t)out->numel) {
    s = vox_errorf(VOX_ERR_PARSE, "npy %s: truncated data (%zu of %" PRId64 " elements)", path, got, out->numel);
    goto done;
  }
  goto done;
trunc:
  s = vox_errorf(VOX_ERR_PARSE, "npy %s: truncated header", path);
done:
  free(hdr);
  fclose(f);
  if (s != VOX_OK) vox_npy_free(out);
  return s;
}

vox_status vox_npy_load_f32(const char *path, float **data, int *ndim, int64_t shape[VOX_NPY_MAX_DIMS]) {
  if (!data || !ndim || !shape) return vox_errorf(VOX_ERR_INVALID, "vox_npy_load_f32: NULL argument");
  *data = NULL;
  vox_npy a;
  VOX_TRY(vox_npy_load(path, &a));
  if (a.dtype != VOX_NPY_F32) {
    vox_npy_free(&a);
    return vox_errorf(VOX_ERR_DTYPE, "npy %s: expected float32, file holds int32", path);
  }
  *data = a.data;
  *ndim = a.ndim;
  memcpy(shape, a.shape, sizeof a.shape);
  return VOX_OK;
}

void vox_npy_free(vox_npy *a) {
  if (!a) return;
  free(a->data);
  memset(a, 0, sizeof *a);
}
