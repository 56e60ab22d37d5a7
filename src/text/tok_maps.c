/* Hash maps of the BPE tokenizer (token bytes -> id, merge pair -> rank) and the ByteLevel byte <-> unicode
 * table. Open addressing with linear probing at load factor <= 1/2: lookups are the encoder's inner loop. */
#include <stdlib.h>
#include <string.h>

#include "text/tok_internal.h"

static size_t pow2_at_least(size_t n) {
  size_t c = 16;
  while (c < n) c <<= 1;
  return c;
}

uint64_t tok_hash_bytes(const void *p, size_t n) {
  /* FNV-1a over 8-byte words then a final avalanche: keys are short (a few bytes). */
  const unsigned char *s = p;
  uint64_t h = 0xcbf29ce484222325ull ^ (n * 0x100000001b3ull);
  while (n >= 8) {
    uint64_t w;
    memcpy(&w, s, 8);
    h = (h ^ w) * 0x100000001b3ull;
    h ^= h >> 29;
    s += 8;
    n -= 8;
  }
  uint64_t w = 0;
  memcpy(&w, s, n);
  h = (h ^ w) * 0x9E3779B97F4A7C15ull;
  h ^= h >> 32;
  h *= 0xD6E8FEB86659FD93ull;
  h ^= h >> 32;
  return h;
}

vox_status tok_strmap_init(tok_strmap *m, size_t n_keys) {
  size_t cap = pow2_at_least(n_keys * 2 + 1);
  m->slots = calloc(cap, sizeof *m->slots);
  if (!m->slots) return vox_errorf(VOX_ERR_NOMEM, "tokenizer: vocabulary map of %zu slots", cap);
  m->mask = cap - 1;
  return VOX_OK;
}

void tok_strmap_free(tok_strmap *m) {
  free(m->slots);
  m->slots = NULL;
}

void tok_strmap_put(tok_strmap *m, const vox_tokenizer *t, int32_t id) {
  const char *s = t->arena + t->tok_off[id];
  size_t n = t->tok_len[id];
  size_t i = (size_t)tok_hash_bytes(s, n) & m->mask;
  for (;;) {
    uint32_t v = m->slots[i];
    if (v == 0) {
      m->slots[i] = (uint32_t)id + 1;
      return;
    }
    int32_t o = (int32_t)v - 1;
    if (t->tok_len[o] == n && !memcmp(t->arena + t->tok_off[o], s, n)) return;
    i = (i + 1) & m->mask;
  }
}

int32_t tok_strmap_get(const tok_strmap *m, const vox_tokenizer *t, const char *s, size_t n) {
  size_t i = (size_t)tok_hash_bytes(s, n) & m->mask;
  for (;;) {
    uint32_t v = m->slots[i];
    if (v == 0) return -1;
    int32_t o = (int32_t)v - 1;
    if (t->tok_len[o] == n && !memcmp(t->arena + t->tok_off[o], s, n)) return o;
    i = (i + 1) & m->mask;
  }
}

vox_status tok_pairmap_init(tok_pairmap *m, size_t n_keys) {
  size_t cap = pow2_at_least(n_keys * 2 + 1);
  m->keys = calloc(cap, sizeof *m->keys);
  m->rank = malloc(cap * sizeof *m->rank);
  m->merged = malloc(cap * sizeof *m->merged);
  m->mask = cap - 1;
  if (!m->keys || !m->rank || !m->merged) {
    tok_pairmap_free(m);
    return vox_errorf(VOX_ERR_NOMEM, "tokenizer: merge map of %zu slots", cap);
  }
  return VOX_OK;
}

void tok_pairmap_free(tok_pairmap *m) {
  free(m->keys);
  free(m->rank);
  free(m->merged);
  m->keys = NULL;
  m->rank = NULL;
  m->merged = NULL;
}

void tok_pairmap_put(tok_pairmap *m, int32_t a, int32_t b, uint32_t rank, int32_t merged) {
  uint64_t key = (((uint64_t)(uint32_t)a << 32) | (uint32_t)b) + 1;
  uint64_t h = key * 0x9E3779B97F4A7C15ull;
  size_t i = (size_t)(h >> 29) & m->mask;
  for (;;) {
    if (m->keys[i] == key) return; /* a repeated merge keeps its first (best) rank */
    if (m->keys[i] == 0) {
      m->keys[i] = key;
      m->rank[i] = rank;
      m->merged[i] = merged;
      return;
    }
    i = (i + 1) & m->mask;
  }
}

void tok_byte_level_tables(uint32_t byte_to_cp[256], int16_t cp_to_byte[324]) {
  /* GPT-2's bytes_to_unicode: printable Latin-1 bytes map to themselves, the other 68 bytes to 256+k. */
  for (int i = 0; i < 324; i++) cp_to_byte[i] = -1;
  int extra = 0;
  for (int b = 0; b < 256; b++) {
    bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    uint32_t cp = printable ? (uint32_t)b : (uint32_t)(256 + extra++);
    byte_to_cp[b] = cp;
    cp_to_byte[cp] = (int16_t)b;
  }
}

static int16_t bl_cp_to_byte[324];
static uint32_t bl_byte_to_cp[256];
static pthread_once_t bl_once = PTHREAD_ONCE_INIT;
static void bl_init(void) { tok_byte_level_tables(bl_byte_to_cp, bl_cp_to_byte); }

bool tok_byte_level_decode(const char *s, size_t n, char *out, size_t *out_len) {
  pthread_once(&bl_once, bl_init);
  const int16_t *cp_to_byte = bl_cp_to_byte;
  const unsigned char *u = (const unsigned char *)s;
  size_t o = 0;
  for (size_t i = 0; i < n;) {
    uint32_t cp;
    if (u[i] < 0x80) {
      cp = u[i];
      i += 1;
    } else if ((u[i] & 0xE0) == 0xC0 && i + 1 < n) {
      cp = ((uint32_t)(u[i] & 0x1F) << 6) | (u[i + 1] & 0x3F);
      i += 2;
    } else {
      return false; /* every table code point is below U+0800 */
    }
    if (cp >= 324 || cp_to_byte[cp] < 0) return false;
    out[o++] = (char)cp_to_byte[cp];
  }
  *out_len = o;
  return true;
}
