/* The BPE merge loop over one pre-token: a linked list of symbols and a binary heap of candidate pairs
 * ordered by (rank, position), so a pre-token of n bytes costs O(n log n); plus the pre-token cache. */
#include <stdlib.h>
#include <string.h>

#include "text/tok_internal.h"

typedef struct sym {
  int32_t id, prev, next; /* id -1: merged into its left neighbour */
} sym;

typedef struct cand {
  uint32_t rank;
  int32_t pos, left, right, merged;
} cand;

static inline bool cand_less(const cand *a, const cand *b) {
  return a->rank < b->rank || (a->rank == b->rank && a->pos < b->pos);
}

static void heap_push(cand *h, size_t *n, cand c) {
  size_t i = (*n)++;
  while (i > 0) {
    size_t p = (i - 1) / 2;
    if (!cand_less(&c, &h[p])) break;
    h[i] = h[p];
    i = p;
  }
  h[i] = c;
}

static cand heap_pop(cand *h, size_t *n) {
  cand top = h[0], last = h[--(*n)];
  size_t i = 0, m = *n;
  for (;;) {
    size_t l = 2 * i + 1;
    if (l >= m) break;
    size_t c = (l + 1 < m && cand_less(&h[l + 1], &h[l])) ? l + 1 : l;
    if (!cand_less(&h[c], &last)) break;
    h[i] = h[c];
    i = c;
  }
  h[i] = last;
  return top;
}

vox_status tok_ids_push(vox_token_ids *out, int32_t id) {
  if (out->len == out->cap) {
    size_t cap = out->cap ? out->cap * 2 : 64;
    int32_t *ids = realloc(out->ids, cap * sizeof *ids);
    if (!ids) return vox_errorf(VOX_ERR_NOMEM, "tokenizer: id array of %zu", cap);
    out->ids = ids;
    out->cap = cap;
  }
  out->ids[out->len++] = id;
  return VOX_OK;
}

static inline void try_pair(const vox_tokenizer *t, const sym *s, int32_t pos, cand *h, size_t *nh) {
  if (pos < 0) return;
  int32_t nx = s[pos].next;
  if (nx < 0) return;
  cand c = {.pos = pos, .left = s[pos].id, .right = s[nx].id};
  if (tok_pairmap_get(&t->merges, c.left, c.right, &c.rank, &c.merged) && tok_kept(t, c.merged)) heap_push(h, nh, c);
}

static vox_status bpe_merge(const vox_tokenizer *t, tok_scratch *sc, const char *p, size_t n, vox_token_ids *out) {
  if (sc->syms_cap < n) {
    free(sc->syms);
    free(sc->heap);
    sc->syms_cap = n + n / 2 + 16;
    sc->syms = malloc(sc->syms_cap * sizeof(sym));
    sc->heap = malloc(sc->syms_cap * 3 * sizeof(cand));
    if (!sc->syms || !sc->heap) {
      sc->syms_cap = 0;
      return vox_errorf(VOX_ERR_NOMEM, "tokenizer: BPE scratch for a %zu-byte pre-token", n);
    }
  }
  sym *s = sc->syms;
  cand *h = sc->heap;
  size_t nh = 0;
  for (size_t i = 0; i < n; i++) {
    s[i].id = t->byte_id[(unsigned char)p[i]];
    s[i].prev = (int32_t)i - 1;
    s[i].next = i + 1 < n ? (int32_t)i + 1 : -1;
  }
  /* Each merge removes a symbol and pushes at most two pairs: the heap never exceeds 3n. */
  for (size_t i = 0; i + 1 < n; i++) try_pair(t, s, (int32_t)i, h, &nh);
  while (nh) {
    cand c = heap_pop(h, &nh);
    int32_t r = s[c.pos].next;
    if (s[c.pos].id != c.left || r < 0 || s[r].id != c.right) continue; /* stale */
    s[c.pos].id = c.merged;
    s[c.pos].next = s[r].next;
    if (s[r].next >= 0) s[s[r].next].prev = c.pos;
    s[r].id = -1;
    try_pair(t, s, s[c.pos].prev, h, &nh);
    try_pair(t, s, c.pos, h, &nh);
  }
  for (int32_t i = 0; i >= 0; i = s[i].next) VOX_TRY(tok_ids_push(out, s[i].id));
  return VOX_OK;
}

vox_status tok_bpe_piece(const vox_tokenizer *t, tok_scratch *sc, const char *p, size_t n, vox_token_ids *out) {
  if (n == 0) return VOX_OK;
  if (n == 1) return tok_ids_push(out, t->byte_id[(unsigned char)p[0]]);
  if (t->ignore_merges) {
    int32_t id = tok_strmap_get(&t->vocab, t, p, n);
    if (id >= 0 && tok_kept(t, id)) return tok_ids_push(out, id);
  }
  vox_tokenizer *mt = (vox_tokenizer *)t; /* the cache is the one mutable part, behind its lock */
  uint64_t hash = 0;
  tok_cache_slot *slot = NULL;
  if (n <= TOK_CACHE_KEY) {
    hash = tok_hash_bytes(p, n);
    slot = &mt->cache[hash & (TOK_CACHE_SLOTS - 1)];
    if (pthread_mutex_trylock(&mt->cache_lock) == 0) {
      bool hit = slot->klen == n && slot->hash == hash && !memcmp(slot->key, p, n);
      int32_t ids[TOK_CACHE_IDS];
      int nids = slot->nids;
      if (hit) memcpy(ids, slot->ids, (size_t)nids * sizeof *ids);
      pthread_mutex_unlock(&mt->cache_lock);
      if (hit) {
        for (int i = 0; i < nids; i++) VOX_TRY(tok_ids_push(out, ids[i]));
        return VOX_OK;
      }
    }
  }
  size_t before = out->len;
  VOX_TRY(bpe_merge(t, sc, p, n, out));
  size_t nids = out->len - before;
  if (slot && nids <= TOK_CACHE_IDS && pthread_mutex_trylock(&mt->cache_lock) == 0) {
    slot->hash = hash;
    slot->klen = (uint8_t)n;
    slot->nids = (uint8_t)nids;
    memcpy(slot->key, p, n);
    memcpy(slot->ids, out->ids + before, nids * sizeof(int32_t));
    pthread_mutex_unlock(&mt->cache_lock);
  }
  return VOX_OK;
}

void tok_scratch_free(tok_scratch *s) {
  free(s->syms);
  free(s->heap);
  if (s->md) pcre2_match_data_free(s->md);
  memset(s, 0, sizeof *s);
}
