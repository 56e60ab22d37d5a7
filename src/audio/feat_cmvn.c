/* CMVN statistics from FunASR's am.mvn (Kaldi nnet1 text: <AddShift> and <Rescale> components) and their
 * application x = (x + shift) * scale. The parser is token based so line breaks inside vectors are fine. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audio/features.h"

static char *slurp(const char *path, vox_status *s) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    *s = errno == ENOENT ? vox_errorf(VOX_ERR_NOT_FOUND, "cmvn %s: file not found", path)
                         : vox_errorf(VOX_ERR_IO, "cmvn %s: cannot open: %s", path, strerror(errno));
    return NULL;
  }
  size_t cap = 1 << 16, len = 0;
  char *buf = malloc(cap);
  while (buf) {
    if (len + 1 >= cap) {
      char *nb = realloc(buf, cap *= 2);
      if (!nb) {
        free(buf);
        buf = NULL;
        break;
      }
      buf = nb;
    }
    size_t r = fread(buf + len, 1, cap - len - 1, f);
    if (r == 0) break;
    len += r;
  }
  fclose(f);
  if (!buf) {
    *s = vox_errorf(VOX_ERR_NOMEM, "cmvn %s: out of memory", path);
    return NULL;
  }
  buf[len] = 0;
  *s = VOX_OK;
  return buf;
}

/* Parses "<Tag> D D  <LearnRateCoef> c [ v1 ... vD ]" starting at the tag. */
static vox_status parse_component(const char *path, const char *text, const char *tag, int *dim, float **vals) {
  const char *p = strstr(text, tag);
  if (!p) return vox_errorf(VOX_ERR_PARSE, "cmvn %s: no %s component (expected FunASR am.mvn format)", path, tag);
  p += strlen(tag);
  char *end;
  long d1 = strtol(p, &end, 10);
  if (end == p || d1 <= 0 || d1 > 1 << 20)
    return vox_errorf(VOX_ERR_PARSE, "cmvn %s: %s: expected a positive dimension after the tag", path, tag);
  const char *open = strchr(end, '[');
  const char *next_tag = strchr(end, '<');
  /* "<LearnRateCoef> c" may precede the vector; skip it but do not run into the next component */
  if (next_tag && !strncmp(next_tag, "<LearnRateCoef>", 15)) next_tag = strchr(next_tag + 1, '<');
  if (!open || (next_tag && open > next_tag))
    return vox_errorf(VOX_ERR_PARSE, "cmvn %s: %s: no '[' vector follows", path, tag);
  float *v = malloc((size_t)d1 * sizeof(float));
  if (!v) return vox_errorf(VOX_ERR_NOMEM, "cmvn %s: out of memory", path);
  p = open + 1;
  long k = 0;
  for (;;) {
    while (isspace((unsigned char)*p)) p++;
    if (*p == ']') break;
    if (!*p) {
      free(v);
      return vox_errorf(VOX_ERR_PARSE, "cmvn %s: %s: vector not closed with ']'", path, tag);
    }
    errno = 0;
    float x = strtof(p, &end);
    if (end == p || errno == ERANGE) {
      free(v);
      return vox_errorf(VOX_ERR_PARSE, "cmvn %s: %s: bad number at element %ld near \"%.12s\"", path, tag, k, p);
    }
    if (k == d1) {
      free(v);
      return vox_errorf(VOX_ERR_PARSE, "cmvn %s: %s: more than the declared %ld values", path, tag, d1);
    }
    v[k++] = x;
    p = end;
  }
  if (k != d1) {
    free(v);
    return vox_errorf(VOX_ERR_PARSE, "cmvn %s: %s: %ld values, header declares %ld", path, tag, k, d1);
  }
  *dim = (int)d1;
  *vals = v;
  return VOX_OK;
}

vox_status vox_cmvn_load(const char *path, vox_cmvn **out) {
  if (!path || !out) return vox_errorf(VOX_ERR_INVALID, "vox_cmvn_load: NULL argument");
  *out = NULL;
  vox_status s;
  char *text = slurp(path, &s);
  if (!text) return s;
  int d_shift = 0, d_scale = 0;
  float *shift = NULL, *scale = NULL;
  s = parse_component(path, text, "<AddShift>", &d_shift, &shift);
  if (s == VOX_OK) s = parse_component(path, text, "<Rescale>", &d_scale, &scale);
  free(text);
  if (s == VOX_OK && d_shift != d_scale)
    s = vox_errorf(VOX_ERR_PARSE, "cmvn %s: <AddShift> has %d values but <Rescale> has %d", path, d_shift, d_scale);
  vox_cmvn *c = NULL;
  if (s == VOX_OK && !(c = malloc(sizeof *c))) s = vox_errorf(VOX_ERR_NOMEM, "cmvn %s: out of memory", path);
  if (s != VOX_OK) {
    free(shift);
    free(scale);
    return s;
  }
  c->dim = d_shift;
  c->shift = shift;
  c->scale = scale;
  *out = c;
  return VOX_OK;
}

vox_status vox_cmvn_apply(const vox_cmvn *cmvn, float *feats, int64_t frames, int bins) {
  if (!cmvn || (!feats && frames > 0)) return vox_errorf(VOX_ERR_INVALID, "vox_cmvn_apply: NULL argument");
  if (bins != cmvn->dim)
    return vox_errorf(VOX_ERR_SHAPE, "cmvn: features have %d bins, statistics have %d (LFR stacking changes the width)",
                      bins, cmvn->dim);
  for (int64_t t = 0; t < frames; t++) {
    float *row = feats + t * bins;
    for (int k = 0; k < bins; k++) row[k] = (row[k] + cmvn->shift[k]) * cmvn->scale[k];
  }
  return VOX_OK;
}

void vox_cmvn_free(vox_cmvn *cmvn) {
  if (!cmvn) return;
  free(cmvn->shift);
  free(cmvn->scale);
  free(cmvn);
}
