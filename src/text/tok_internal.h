/* Internals of the BPE tokenizer shared by the files of src/text/: the loaded model, its hash maps,
 * the pre-token cache and the per-call scratch. Not a public header. */
#ifndef VOX_TEXT_TOK_INTERNAL_H
#define VOX_TEXT_TOK_INTERNAL_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "text/tokenizer.h"

/* ---- byte-string -> id map (open addressing; keys live in the tokenizer's byte arena) ---------------- */
typedef struct tok_strmap {
  uint32_t *slots; /* id + 1, 0 = empty */
  size_t mask;     /* capacity - 1, a power of two */
} tok_strmap;

/* ---- (left id, right id) -> (rank, merged id) --------------------------------------------------- */
typedef struct tok_pairmap {
  uint64_t *keys;  /* (left << 32 | right) + 1, 0 = empty */
  uint32_t *rank;
  int32_t *merged;
  size_t mask;
} tok_pairmap;

typedef struct tok_added {
  char *content;
  size_t len;
  int32_t id;
  bool special, lstrip, rstrip, single_word, normalized;
} tok_added;

/* Direct-mapped cache of short pre-tokens and their ids. */
#define TOK_CACHE_SLOTS (1u << 16)
#define TOK_CACHE_KEY 23
#define TOK_CACHE_IDS 8
typedef struct tok_cache_slot {
  uint64_t hash;
  uint8_t klen, nids; /* klen 0 = empty */
  char key[TOK_CACHE_KEY];
  int32_t ids[TOK_CACHE_IDS];
} tok_cache_slot;

struct vox_tokenizer {
  char *path;
  /* every token's raw bytes: id -> [tok_off[id], tok_off[id] + tok_len[id]) in arena */
  char *arena;
  size_t arena_len, arena_cap;
  uint64_t *tok_off;
  uint32_t *tok_len;
  uint8_t *tok_flags; /* TOK_F_* */
  int32_t n_ids;      /* largest id + 1 */
  tok_strmap vocab;   /* raw bytes -> id (model vocab) */
  tok_pairmap merges;
  int32_t byte_id[256]; /* the single-byte tokens, the BPE's starting symbols */

  tok_added *added;
  size_t n_added;
  uint8_t added_first[256]; /* 1 when some added token starts with that byte */

  bool nfc;
  bool ignore_merges;   /* model.ignore_merges: a pre-token found whole in the vocab skips BPE */
  pcre2_code *split_re; /* NULL: the whole segment is one pre-token */

  pthread_mutex_t cache_lock;
  tok_cache_slot *cache;

  /* A vocabulary subset (vox_tokenizer_restrict): ids outside the tokenizer are subset indices. NULL sub_of: the
   * whole vocabulary. Merges whose result is dropped are never applied, so any text still encodes. */
  int32_t *sub_of;  /* full id -> subset index, -1 dropped; n_ids entries */
  int32_t *full_of; /* subset index -> full id; n_sub entries */
  int32_t n_sub;
  char *sub_origin; /* where the subset came from, for messages */
};

enum { TOK_F_PRESENT = 1, TOK_F_SPECIAL = 2, TOK_F_ADDED = 4 };

/* True when the full-vocabulary id may appear in an encoding (always without a subset). */
static inline bool tok_kept(const vox_tokenizer *t, int32_t full_id) { return !t->sub_of || t->sub_of[full_id] >= 0; }
/* The full-vocabulary id of a public id (a subset index under a subset), -1 when it names nothing. */
int32_t tok_full_id(const vox_tokenizer *t, int32_t public_id);

uint64_t tok_hash_bytes(const void *p, size_t n);
vox_status tok_strmap_init(tok_strmap *m, size_t n_keys);
void tok_strmap_free(tok_strmap *m);
/* Inserts id (whose bytes are already in the arena); an existing equal key keeps its id. */
void tok_strmap_put(tok_strmap *m, const vox_tokenizer *t, int32_t id);
int32_t tok_strmap_get(const tok_strmap *m, const vox_tokenizer *t, const char *s, size_t n); /* -1 if absent */

vox_status tok_pairmap_init(tok_pairmap *m, size_t n_keys);
void tok_pairmap_free(tok_pairmap *m);
void tok_pairmap_put(tok_pairmap *m, int32_t a, int32_t b, uint32_t rank, int32_t merged);
/* Returns true and fills rank/merged when the pair merges. */
static inline bool tok_pairmap_get(const tok_pairmap *m, int32_t a, int32_t b, uint32_t *rank, int32_t *merged) {
  uint64_t key = (((uint64_t)(uint32_t)a << 32) | (uint32_t)b) + 1;
  uint64_t h = key * 0x9E3779B97F4A7C15ull;
  size_t i = (size_t)(h >> 29) & m->mask;
  for (;;) {
    uint64_t k = m->keys[i];
    if (k == key) {
      *rank = m->rank[i];
      *merged = m->merged[i];
      return true;
    }
    if (k == 0) return false;
    i = (i + 1) & m->mask;
  }
}

/* The GPT-2 byte <-> unicode table of the ByteLevel pre-tokenizer. */
void tok_byte_level_tables(uint32_t byte_to_cp[256], int16_t cp_to_byte[324]);
/* Converts a byte-level string ("Ġthe") to its bytes (" the"); false when a character is outside the
 * table. out must hold n bytes. */
bool tok_byte_level_decode(const char *s, size_t n, char *out, size_t *out_len);

/* Per-call scratch of the BPE merge loop. */
typedef struct tok_scratch {
  void *syms;
  size_t syms_cap;
  void *heap;
  size_t heap_cap;
  pcre2_match_data *md;
  char *norm; /* NFC output */
} tok_scratch;
void tok_scratch_free(tok_scratch *s);

/* BPE over one pre-token's bytes; appends ids. */
vox_status tok_bpe_piece(const vox_tokenizer *t, tok_scratch *s, const char *p, size_t n, vox_token_ids *out);
vox_status tok_ids_push(vox_token_ids *out, int32_t id);
/* Encodes one segment free of added tokens: NFC, split, BPE. */
vox_status tok_encode_plain(const vox_tokenizer *t, tok_scratch *s, const char *p, size_t n, vox_token_ids *out);
/* Offset of the first invalid UTF-8 byte, or n when all is valid. */
size_t tok_utf8_check(const char *p, size_t n);

#endif
