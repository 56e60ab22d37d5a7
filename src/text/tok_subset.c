/* Vocabulary subsets: restricting a loaded tokenizer to a kept set of ids (vocabulary trimming), and the subset
 * file that names the set (docs/file-formats.md "Vocabulary subset"). */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "text/tok_internal.h"

vox_status vox_vocab_subset_read(const char *path, int32_t **ids, int32_t *n) {
  *ids = NULL;
  *n = 0;
  FILE *f = fopen(path, "r");
  if (!f) return vox_errorf(VOX_ERR_IO, "%s: cannot open vocabulary subset: %s", path, strerror(errno));
  int32_t *v = NULL;
  size_t len = 0, cap = 0;
  char line[256];
  vox_status st = VOX_OK;
  for (int lineno = 1; st == VOX_OK && fgets(line, sizeof line, f); lineno++) {
    char *p = line;
    while (*p == ' ' || *p == '\t') p++;
    if (*p == '#' || *p == '\n' || *p == '\r' || !*p) continue;
    errno = 0;
    char *end;
    long id = strtol(p, &end, 10);
    while (*end == ' ' || *end == '\t' || *end == '\r' || *end == '\n') end++;
    if (end == p || *end || errno || id < 0 || id > INT32_MAX) {
      st = vox_errorf(VOX_ERR_PARSE, "%s:%d: expected one non-negative token id per line, found \"%.40s\"", path, lineno, p);
    } else if (len && id <= v[len - 1]) {
      st = vox_errorf(VOX_ERR_PARSE, "%s:%d: expected ids in ascending order without repeats, found %ld after %d", path,
                      lineno, id, v[len - 1]);
    } else {
      if (len == cap) {
        cap = cap ? cap * 2 : 1024;
        int32_t *g = realloc(v, cap * sizeof *g);
        if (!g) {
          st = vox_errorf(VOX_ERR_NOMEM, "%s: %zu ids", path, cap);
          break;
        }
        v = g;
      }
      v[len++] = (int32_t)id;
    }
  }
  if (st == VOX_OK && ferror(f)) st = vox_errorf(VOX_ERR_IO, "%s: read failed", path);
  if (st == VOX_OK && len == 0) st = vox_errorf(VOX_ERR_PARSE, "%s: expected token ids, found none", path);
  fclose(f);
  if (st != VOX_OK) {
    free(v);
    return st;
  }
  *ids = v;
  *n = (int32_t)len;
  return VOX_OK;
}

vox_status vox_tokenizer_restrict(vox_tokenizer *t, const int32_t *ids, int32_t n, const char *origin) {
  if (t->sub_of) return vox_errorf(VOX_ERR_STATE, "%s: already restricted to the subset %s", t->path, t->sub_origin);
  int32_t *sub_of = malloc((size_t)t->n_ids * sizeof *sub_of), *full_of = malloc((size_t)(n > 0 ? n : 1) * sizeof *full_of);
  char *org = strdup(origin ? origin : "(vocabulary subset)");
  vox_status st = VOX_OK;
  if (!sub_of || !full_of || !org) st = vox_errorf(VOX_ERR_NOMEM, "%s: vocabulary subset of %d ids", t->path, n);
  for (int32_t i = 0; st == VOX_OK && i < t->n_ids; i++) sub_of[i] = -1;
  for (int32_t k = 0; st == VOX_OK && k < n; k++) {
    if (ids[k] < 0 || ids[k] >= t->n_ids || !t->tok_flags[ids[k]])
      st = vox_errorf(VOX_ERR_INVALID, "%s: id %d names no token of %s", org, ids[k], t->path);
    else if (sub_of[ids[k]] >= 0)
      st = vox_errorf(VOX_ERR_INVALID, "%s: id %d is listed twice", org, ids[k]);
    else
      sub_of[ids[k]] = k, full_of[k] = ids[k];
  }
  /* The 256 byte tokens are where BPE starts: with them every text still encodes. */
  for (int b = 0; st == VOX_OK && b < 256; b++)
    if (sub_of[t->byte_id[b]] < 0)
      st = vox_errorf(VOX_ERR_INVALID, "%s: the subset lacks the byte token of 0x%02x (id %d); a subset must keep all "
                      "256 (`vox tokenize --subset-out` does)", org, b, t->byte_id[b]);
  if (st != VOX_OK) {
    free(sub_of);
    free(full_of);
    free(org);
    return st;
  }
  t->sub_of = sub_of;
  t->full_of = full_of;
  t->n_sub = n;
  t->sub_origin = org;
  /* Pre-tokens cached so far were merged without the subset. */
  pthread_mutex_lock(&t->cache_lock);
  for (size_t i = 0; i < TOK_CACHE_SLOTS; i++) t->cache[i].klen = 0;
  pthread_mutex_unlock(&t->cache_lock);
  return VOX_OK;
}

vox_status vox_tokenizer_subset_close(const vox_tokenizer *t, uint8_t *keep) {
  if (t->sub_of) return vox_errorf(VOX_ERR_STATE, "%s: subset closure needs the whole vocabulary", t->path);
  for (int b = 0; b < 256; b++) keep[t->byte_id[b]] = 1;
  for (size_t i = 0; i < t->n_added; i++) keep[t->added[i].id] = 1;
  /* Every merge that builds a kept token keeps both halves, so BPE under the subset takes the same path to it as
   * the whole vocabulary does: texts made of kept tokens encode identically. Halves rank below what they build, so
   * this reaches a fixed point in a few sweeps. */
  const tok_pairmap *m = &t->merges;
  for (bool changed = true; changed;) {
    changed = false;
    for (size_t i = 0; i <= m->mask; i++) {
      if (!m->keys[i] || !keep[m->merged[i]]) continue;
      uint64_t key = m->keys[i] - 1;
      int32_t a = (int32_t)(key >> 32), b = (int32_t)(key & 0xffffffffu);
      if (!keep[a] || !keep[b]) keep[a] = keep[b] = 1, changed = true;
    }
  }
  return VOX_OK;
}
