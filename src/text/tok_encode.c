/* Encoding and decoding: UTF-8 validation, added-token matching on the raw text, NFC (utf8proc), the
 * pre-tokenizer split (PCRE2, "Isolated": matches and the gaps between them are pre-tokens), then BPE. */
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "text/tok_internal.h"

size_t tok_utf8_check(const char *p, size_t n) {
  const unsigned char *s = (const unsigned char *)p;
  size_t i = 0;
  while (i < n) {
    /* ASCII runs dominate: skip 8 bytes at a time. */
    while (i + 8 <= n) {
      uint64_t w;
      memcpy(&w, s + i, 8);
      if (w & 0x8080808080808080ull) break;
      i += 8;
    }
    if (i >= n) break;
    unsigned c = s[i];
    if (c < 0x80) {
      i++;
      continue;
    }
    size_t len;
    uint32_t cp, min;
    if (c >= 0xC2 && c <= 0xDF) len = 2, cp = c & 0x1F, min = 0x80;
    else if (c >= 0xE0 && c <= 0xEF) len = 3, cp = c & 0x0F, min = 0x800;
    else if (c >= 0xF0 && c <= 0xF4) len = 4, cp = c & 0x07, min = 0x10000;
    else return i;
    if (i + len > n) return i;
    for (size_t k = 1; k < len; k++) {
      if ((s[i + k] & 0xC0) != 0x80) return i;
      cp = (cp << 6) | (s[i + k] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return i;
    i += len;
  }
  return n;
}

/* Only code points >= U+0300 (lead byte >= 0xCC) can change under NFC; most text skips utf8proc. */
static bool may_change_under_nfc(const char *p, size_t n) {
  for (size_t i = 0; i < n; i++)
    if ((unsigned char)p[i] >= 0xCC) return true;
  return false;
}

static vox_status split_and_merge(const vox_tokenizer *t, tok_scratch *s, const char *p, size_t n, vox_token_ids *out) {
  if (!t->split_re) return tok_bpe_piece(t, s, p, n, out);
  if (!s->md) {
    s->md = pcre2_match_data_create_from_pattern(t->split_re, NULL);
    if (!s->md) return vox_errorf(VOX_ERR_NOMEM, "tokenizer: regex match data");
  }
  size_t pos = 0, gap = 0;
  while (pos < n) {
    int rc = pcre2_match(t->split_re, (PCRE2_SPTR)p, n, pos, PCRE2_NO_UTF_CHECK, s->md, NULL);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      PCRE2_UCHAR msg[256];
      pcre2_get_error_message(rc, msg, sizeof msg);
      return vox_errorf(VOX_ERR_INVALID, "%s: pre-tokenizer regex failed at byte %zu: %s", t->path, pos, (const char *)msg);
    }
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(s->md);
    size_t ms = ov[0], me = ov[1];
    if (me == ms) {
      /* An empty match splits nothing; step over one character. */
      pos = ms + 1;
      while (pos < n && ((unsigned char)p[pos] & 0xC0) == 0x80) pos++;
      continue;
    }
    if (ms > gap) VOX_TRY(tok_bpe_piece(t, s, p + gap, ms - gap, out));
    VOX_TRY(tok_bpe_piece(t, s, p + ms, me - ms, out));
    pos = gap = me;
  }
  if (gap < n) VOX_TRY(tok_bpe_piece(t, s, p + gap, n - gap, out));
  return VOX_OK;
}

vox_status tok_encode_plain(const vox_tokenizer *t, tok_scratch *s, const char *p, size_t n, vox_token_ids *out) {
  if (n == 0) return VOX_OK;
  if (!t->nfc || !may_change_under_nfc(p, n)) return split_and_merge(t, s, p, n, out);
  utf8proc_uint8_t *norm = NULL;
  utf8proc_ssize_t nn = utf8proc_map((const utf8proc_uint8_t *)p, (utf8proc_ssize_t)n, &norm,
                                     UTF8PROC_STABLE | UTF8PROC_COMPOSE);
  if (nn < 0) return vox_errorf(VOX_ERR_INVALID, "%s: NFC normalisation failed: %s", t->path, utf8proc_errmsg(nn));
  vox_status st = split_and_merge(t, s, (const char *)norm, (size_t)nn, out);
  free(norm);
  return st;
}

static bool is_space(unsigned char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }
static bool is_word(unsigned char c) {
  return c >= 0x80 || c == '_' || (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z');
}

/* The added token matching at text[i] (longest wins), or NULL. */
static const tok_added *match_added(const vox_tokenizer *t, const char *text, size_t len, size_t i, bool special) {
  const tok_added *best = NULL;
  for (size_t k = 0; k < t->n_added; k++) {
    const tok_added *a = &t->added[k];
    if ((a->special && !special) || a->len > len - i || (best && a->len <= best->len) || memcmp(text + i, a->content, a->len)) continue;
    if (a->single_word && ((i > 0 && is_word((unsigned char)text[i - 1])) ||
                           (i + a->len < len && is_word((unsigned char)text[i + a->len]))))
      continue;
    best = a;
  }
  return best;
}

static vox_status encode_all(const vox_tokenizer *t, tok_scratch *s, const char *text, size_t len, unsigned flags,
                             vox_token_ids *out) {
  if (t->n_added == 0) return tok_encode_plain(t, s, text, len, out);
  bool special = flags & VOX_TOKENIZE_SPECIAL;
  size_t seg = 0, i = 0;
  while (i < len) {
    if (!t->added_first[(unsigned char)text[i]]) {
      i++;
      continue;
    }
    const tok_added *a = match_added(t, text, len, i, special);
    if (!a) {
      i++;
      continue;
    }
    size_t ms = i, me = i + a->len;
    if (a->lstrip)
      while (ms > seg && is_space((unsigned char)text[ms - 1])) ms--;
    if (a->rstrip)
      while (me < len && is_space((unsigned char)text[me])) me++;
    VOX_TRY(tok_encode_plain(t, s, text + seg, ms - seg, out));
    VOX_TRY(tok_ids_push(out, a->id));
    seg = i = me;
  }
  return tok_encode_plain(t, s, text + seg, len - seg, out);
}

vox_status vox_tokenizer_encode(const vox_tokenizer *t, const char *text, size_t len, unsigned flags, vox_token_ids *out) {
  if (!t || !out || (!text && len))
    return vox_errorf(VOX_ERR_INVALID, "vox_tokenizer_encode: NULL %s", !t ? "tokenizer" : !out ? "output" : "text");
  size_t bad = tok_utf8_check(text, len);
  if (bad < len) {
    return vox_errorf(VOX_ERR_INVALID, "tokenizer encode: invalid UTF-8 at byte offset %zu (byte 0x%02x)", bad,
                      (unsigned char)text[bad]);
  }
  size_t before = out->len;
  tok_scratch s = {0};
  vox_status st = encode_all(t, &s, text, len, flags, out);
  tok_scratch_free(&s);
  /* Under a subset BPE only reaches kept tokens; an added token written in the text may still be dropped. */
  for (size_t i = before; st == VOX_OK && t->sub_of && i < out->len; i++) {
    int32_t full = out->ids[i];
    if (t->sub_of[full] < 0) {
      st = vox_errorf(VOX_ERR_NOT_FOUND, "tokenizer encode: token \"%.*s\" (id %d) is not in the vocabulary subset %s",
                      (int)t->tok_len[full], t->arena + t->tok_off[full], full, t->sub_origin);
    } else {
      out->ids[i] = t->sub_of[full];
    }
  }
  if (st != VOX_OK) out->len = before;
  return st;
}

int32_t tok_full_id(const vox_tokenizer *t, int32_t id) {
  if (t->sub_of) return id >= 0 && id < t->n_sub ? t->full_of[id] : -1;
  return id >= 0 && id < t->n_ids && t->tok_flags[id] ? id : -1;
}

vox_status vox_tokenizer_decode(const vox_tokenizer *t, const int32_t *ids, size_t n, unsigned flags, char **out,
                                size_t *out_len) {
  *out = NULL;
  if (out_len) *out_len = 0;
  size_t total = 0;
  for (size_t i = 0; i < n; i++) {
    int32_t id = tok_full_id(t, ids[i]);
    if (id < 0)
      return vox_errorf(VOX_ERR_INDEX, "tokenizer decode: ids[%zu] = %d names no token (vocab size %d)", i, ids[i],
                        vox_tokenizer_vocab_size(t));
    if ((flags & VOX_DETOKENIZE_SKIP_SPECIAL) && (t->tok_flags[id] & TOK_F_SPECIAL)) continue;
    total += t->tok_len[id];
  }
  char *buf = malloc(total + 1);
  if (!buf) return vox_errorf(VOX_ERR_NOMEM, "tokenizer decode: %zu bytes", total + 1);
  size_t o = 0;
  for (size_t i = 0; i < n; i++) {
    int32_t id = tok_full_id(t, ids[i]);
    if ((flags & VOX_DETOKENIZE_SKIP_SPECIAL) && (t->tok_flags[id] & TOK_F_SPECIAL)) continue;
    memcpy(buf + o, t->arena + t->tok_off[id], t->tok_len[id]);
    o += t->tok_len[id];
  }
  buf[o] = '\0';
  if ((flags & VOX_DETOKENIZE_REPLACE_INVALID) && tok_utf8_check(buf, o) < o) {
    /* At most 3 bytes (U+FFFD) per input byte. */
    char *rep = malloc(3 * o + 1);
    if (!rep) {
      free(buf);
      return vox_errorf(VOX_ERR_NOMEM, "tokenizer decode: %zu bytes", 3 * o + 1);
    }
    size_t r = 0;
    for (size_t i = 0; i < o;) {
      size_t ok = tok_utf8_check(buf + i, o - i);
      memcpy(rep + r, buf + i, ok);
      r += ok, i += ok;
      if (i < o) memcpy(rep + r, "\xEF\xBF\xBD", 3), r += 3, i++;
    }
    rep[r] = '\0';
    free(buf);
    buf = rep, o = r;
  }
  *out = buf;
  if (out_len) *out_len = o;
  return VOX_OK;
}

static vox_status public_id(const vox_tokenizer *t, const char *token, int32_t full, int32_t *id) {
  if (!tok_kept(t, full))
    return vox_errorf(VOX_ERR_NOT_FOUND, "%s: token \"%s\" (id %d) is not in the vocabulary subset %s", t->path, token,
                      full, t->sub_origin);
  *id = t->sub_of ? t->sub_of[full] : full;
  return VOX_OK;
}

vox_status vox_tokenizer_token_to_id(const vox_tokenizer *t, const char *token, int32_t *id) {
  size_t n = strlen(token);
  for (size_t k = 0; k < t->n_added; k++)
    if (t->added[k].len == n && !memcmp(t->added[k].content, token, n)) return public_id(t, token, t->added[k].id, id);
  char *buf = malloc(n + 1);
  size_t bn;
  if (!buf) return vox_errorf(VOX_ERR_NOMEM, "tokenizer token_to_id");
  bool ok = tok_byte_level_decode(token, n, buf, &bn);
  int32_t found = ok ? tok_strmap_get(&t->vocab, t, buf, bn) : -1;
  free(buf);
  if (found < 0) return vox_errorf(VOX_ERR_NOT_FOUND, "%s: no token \"%s\" in the vocabulary or added tokens", t->path, token);
  return public_id(t, token, found, id);
}

const char *vox_tokenizer_id_bytes(const vox_tokenizer *t, int32_t id, size_t *len) {
  id = tok_full_id(t, id);
  if (id < 0) return NULL;
  *len = t->tok_len[id];
  return t->arena + t->tok_off[id];
}

int32_t vox_tokenizer_vocab_size(const vox_tokenizer *t) { return t->sub_of ? t->n_sub : t->n_ids; }

bool vox_tokenizer_is_special(const vox_tokenizer *t, int32_t id) {
  id = tok_full_id(t, id);
  return id >= 0 && (t->tok_flags[id] & TOK_F_SPECIAL);
}

void vox_token_ids_free(vox_token_ids *ids) {
  if (!ids) return;
  free(ids->ids);
  memset(ids, 0, sizeof *ids);
}
