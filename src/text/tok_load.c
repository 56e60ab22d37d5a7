/* Loads a Hugging Face tokenizer.json (byte-level BPE, Qwen2/2.5/3 kind) into a vox_tokenizer: vocab and
 * merges into hash maps, added tokens, the NFC normaliser and the pre-tokenizer's Split regex (PCRE2 JIT). */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "text/tok_internal.h"

/* The ByteLevel pre-tokenizer's own regex, used when it is configured with use_regex: true. */
static const char gpt2_pattern[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

static vox_status read_file(const char *path, char **data, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return vox_errorf(VOX_ERR_IO, "%s: cannot open tokenizer file: %s", path, strerror(errno));
  size_t cap = 1 << 20, n = 0;
  char *buf = malloc(cap);
  while (buf) {
    size_t got = fread(buf + n, 1, cap - n, f);
    n += got;
    if (n < cap) break;
    char *nb = realloc(buf, cap *= 2);
    if (!nb) free(buf);
    buf = nb;
  }
  bool err = ferror(f);
  fclose(f);
  if (!buf) return vox_errorf(VOX_ERR_NOMEM, "%s: reading tokenizer file", path);
  if (err) {
    free(buf);
    return vox_errorf(VOX_ERR_IO, "%s: read error", path);
  }
  *data = buf;
  *len = n;
  return VOX_OK;
}

static const char *type_of(const cJSON *j) {
  if (!j) return "nothing";
  if (cJSON_IsString(j)) return "a string";
  if (cJSON_IsNumber(j)) return "a number";
  if (cJSON_IsObject(j)) return "an object";
  if (cJSON_IsArray(j)) return "an array";
  if (cJSON_IsBool(j)) return "a boolean";
  if (cJSON_IsNull(j)) return "null";
  return "an unknown value";
}

/* Checks obj[key] is a string equal to one of the `want` alternatives. */
static vox_status expect_type(const char *path, const char *where, const cJSON *obj, const char *want) {
  const cJSON *t = cJSON_GetObjectItemCaseSensitive(obj, "type");
  if (!cJSON_IsString(t))
    return vox_errorf(VOX_ERR_PARSE, "%s: %s.type: expected \"%s\", found %s", path, where, want, type_of(t));
  if (strcmp(t->valuestring, want))
    return vox_errorf(VOX_ERR_UNSUPPORTED, "%s: %s.type: expected \"%s\", found \"%s\"", path, where, want,
                      t->valuestring);
  return VOX_OK;
}

static bool flag(const cJSON *obj, const char *key) { return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(obj, key)); }

static vox_status arena_add(vox_tokenizer *t, int32_t id, const char *s, size_t n) {
  if (t->arena_len + n > t->arena_cap) {
    size_t cap = t->arena_cap ? t->arena_cap : 1 << 20;
    while (cap < t->arena_len + n) cap *= 2;
    char *a = realloc(t->arena, cap);
    if (!a) return vox_errorf(VOX_ERR_NOMEM, "%s: token arena of %zu bytes", t->path, cap);
    t->arena = a;
    t->arena_cap = cap;
  }
  memcpy(t->arena + t->arena_len, s, n);
  t->tok_off[id] = t->arena_len;
  t->tok_len[id] = (uint32_t)n;
  t->arena_len += n;
  return VOX_OK;
}

static vox_status load_normalizer(vox_tokenizer *t, const cJSON *norm) {
  if (!norm || cJSON_IsNull(norm)) return VOX_OK;
  const cJSON *type = cJSON_GetObjectItemCaseSensitive(norm, "type");
  if (cJSON_IsString(type) && !strcmp(type->valuestring, "NFC")) {
    t->nfc = true;
    return VOX_OK;
  }
  if (cJSON_IsString(type) && !strcmp(type->valuestring, "Sequence")) {
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(norm, "normalizers");
    const cJSON *n;
    int i = 0;
    cJSON_ArrayForEach(n, list) {
      const cJSON *nt = cJSON_GetObjectItemCaseSensitive(n, "type");
      if (!cJSON_IsString(nt) || strcmp(nt->valuestring, "NFC"))
        return vox_errorf(VOX_ERR_UNSUPPORTED, "%s: normalizer.normalizers[%d].type: expected \"NFC\", found %s%s%s",
                          t->path, i, cJSON_IsString(nt) ? "\"" : "",
                          cJSON_IsString(nt) ? nt->valuestring : type_of(nt), cJSON_IsString(nt) ? "\"" : "");
      t->nfc = true;
      i++;
    }
    return VOX_OK;
  }
  return vox_errorf(VOX_ERR_UNSUPPORTED, "%s: normalizer.type: expected \"NFC\", a Sequence of NFC, or null; found %s%s%s",
                    t->path, cJSON_IsString(type) ? "\"" : "", cJSON_IsString(type) ? type->valuestring : type_of(type),
                    cJSON_IsString(type) ? "\"" : "");
}

static vox_status compile_split(vox_tokenizer *t, const char *pattern, uint32_t extra, const char *where) {
  int err;
  PCRE2_SIZE off;
  t->split_re = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP | extra, &err, &off, NULL);
  if (!t->split_re) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(err, msg, sizeof msg);
    return vox_errorf(VOX_ERR_PARSE, "%s: %s: expected a regex PCRE2 accepts; at offset %zu: %s", t->path, where,
                      (size_t)off, (const char *)msg);
  }
  /* JIT is an optimisation: pcre2_match falls back to the interpreter where it is unavailable. */
  (void)pcre2_jit_compile(t->split_re, PCRE2_JIT_COMPLETE);
  return VOX_OK;
}

static vox_status load_byte_level(vox_tokenizer *t, const cJSON *bl, const char *where) {
  if (flag(bl, "add_prefix_space"))
    return vox_errorf(VOX_ERR_UNSUPPORTED, "%s: %s.add_prefix_space: expected false", t->path, where);
  const cJSON *use_regex = cJSON_GetObjectItemCaseSensitive(bl, "use_regex");
  if ((!use_regex || cJSON_IsTrue(use_regex)) && !t->split_re) return compile_split(t, gpt2_pattern, 0, where);
  return VOX_OK;
}

static vox_status load_pre_tokenizer(vox_tokenizer *t, const cJSON *pre) {
  const cJSON *type = cJSON_GetObjectItemCaseSensitive(pre, "type");
  if (cJSON_IsString(type) && !strcmp(type->valuestring, "ByteLevel")) return load_byte_level(t, pre, "pre_tokenizer");
  VOX_TRY(expect_type(t->path, "pre_tokenizer", pre, "Sequence"));
  const cJSON *list = cJSON_GetObjectItemCaseSensitive(pre, "pretokenizers");
  if (!cJSON_IsArray(list) || cJSON_GetArraySize(list) != 2)
    return vox_errorf(VOX_ERR_UNSUPPORTED, "%s: pre_tokenizer.pretokenizers: expected [Split, ByteLevel], found %s",
                      t->path, type_of(list));
  const cJSON *split = cJSON_GetArrayItem(list, 0), *bl = cJSON_GetArrayItem(list, 1);
  VOX_TRY(expect_type(t->path, "pre_tokenizer.pretokenizers[0]", split, "Split"));
  VOX_TRY(expect_type(t->path, "pre_tokenizer.pretokenizers[1]", bl, "ByteLevel"));
  const cJSON *behavior = cJSON_GetObjectItemCaseSensitive(split, "behavior");
  if (!cJSON_IsString(behavior) || strcmp(behavior->valuestring, "Isolated"))
    return vox_errorf(VOX_ERR_UNSUPPORTED, "%s: pre_tokenizer.pretokenizers[0].behavior: expected \"Isolated\"", t->path);
  if (flag(split, "invert"))
    return vox_errorf(VOX_ERR_UNSUPPORTED, "%s: pre_tokenizer.pretokenizers[0].invert: expected false", t->path);
  const cJSON *pat = cJSON_GetObjectItemCaseSensitive(split, "pattern");
  const cJSON *re = cJSON_GetObjectItemCaseSensitive(pat, "Regex");
  const cJSON *lit = cJSON_GetObjectItemCaseSensitive(pat, "String");
  if (cJSON_IsString(re)) {
    VOX_TRY(compile_split(t, re->valuestring, 0, "pre_tokenizer.pretokenizers[0].pattern.Regex"));
  } else if (cJSON_IsString(lit)) {
    VOX_TRY(compile_split(t, lit->valuestring, PCRE2_LITERAL, "pre_tokenizer.pretokenizers[0].pattern.String"));
  } else {
    return vox_errorf(VOX_ERR_PARSE, "%s: pre_tokenizer.pretokenizers[0].pattern: expected {\"Regex\": string} or "
                      "{\"String\": string}, found %s", t->path, type_of(pat));
  }
  return load_byte_level(t, bl, "pre_tokenizer.pretokenizers[1]");
}

/* Looks a byte-level token string up in the vocab; -1 when absent or not byte-level. */
static int32_t vocab_lookup_bl(const vox_tokenizer *t, const char *s, size_t n, char *buf) {
  size_t bn;
  if (!tok_byte_level_decode(s, n, buf, &bn)) return -1;
  return tok_strmap_get(&t->vocab, t, buf, bn);
}

static vox_status load_model(vox_tokenizer *t, const cJSON *model, const cJSON *added) {
  if (!cJSON_IsObject(model)) return vox_errorf(VOX_ERR_PARSE, "%s: model: expected an object, found %s", t->path, type_of(model));
  VOX_TRY(expect_type(t->path, "model", model, "BPE"));
  if (flag(model, "byte_fallback"))
    return vox_errorf(VOX_ERR_UNSUPPORTED, "%s: model.byte_fallback: expected false (byte-level BPE)", t->path);
  const char *affix_keys[] = {"continuing_subword_prefix", "end_of_word_suffix"};
  for (int k = 0; k < 2; k++) {
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(model, affix_keys[k]);
    if (cJSON_IsString(a) && a->valuestring[0])
      return vox_errorf(VOX_ERR_UNSUPPORTED, "%s: model.%s: expected \"\" or null", t->path, affix_keys[k]);
  }
  t->ignore_merges = flag(model, "ignore_merges");
  const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
  const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
  if (!cJSON_IsObject(vocab))
    return vox_errorf(VOX_ERR_PARSE, "%s: model.vocab: expected an object of token -> id, found %s", t->path, type_of(vocab));
  if (!cJSON_IsArray(merges))
    return vox_errorf(VOX_ERR_PARSE, "%s: model.merges: expected an array, found %s", t->path, type_of(merges));

  /* Size the id space over the vocab and the added tokens. */
  int64_t max_id = -1;
  size_t n_vocab = 0;
  const cJSON *e;
  cJSON_ArrayForEach(e, vocab) {
    if (!cJSON_IsNumber(e) || e->valuedouble < 0 || e->valuedouble > INT32_MAX - 1 || e->valuedouble != (double)(int64_t)e->valuedouble)
      return vox_errorf(VOX_ERR_PARSE, "%s: model.vocab[\"%s\"]: expected a non-negative integer id, found %s", t->path,
                        e->string, type_of(e));
    if (e->valueint > max_id) max_id = e->valueint;
    n_vocab++;
  }
  if (added && !cJSON_IsArray(added))
    return vox_errorf(VOX_ERR_PARSE, "%s: added_tokens: expected an array, found %s", t->path, type_of(added));
  int i = 0;
  cJSON_ArrayForEach(e, added) {
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(e, "id");
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(e, "content");
    if (!cJSON_IsNumber(id) || id->valuedouble < 0 || id->valuedouble > INT32_MAX - 1)
      return vox_errorf(VOX_ERR_PARSE, "%s: added_tokens[%d].id: expected a non-negative integer, found %s", t->path, i, type_of(id));
    if (!cJSON_IsString(content) || !content->valuestring[0])
      return vox_errorf(VOX_ERR_PARSE, "%s: added_tokens[%d].content: expected a non-empty string, found %s", t->path, i,
                        type_of(content));
    if (id->valueint > max_id) max_id = id->valueint;
    i++;
  }
  t->n_ids = (int32_t)(max_id + 1);
  t->tok_off = calloc((size_t)t->n_ids + 1, sizeof *t->tok_off);
  t->tok_len = calloc((size_t)t->n_ids + 1, sizeof *t->tok_len);
  t->tok_flags = calloc((size_t)t->n_ids + 1, 1);
  if (!t->tok_off || !t->tok_len || !t->tok_flags) return vox_errorf(VOX_ERR_NOMEM, "%s: %d token entries", t->path, t->n_ids);

  char buf[1024];
  cJSON_ArrayForEach(e, vocab) {
    size_t sn = strlen(e->string), bn;
    char *tmp = sn <= sizeof buf ? buf : malloc(sn);
    if (!tmp) return vox_errorf(VOX_ERR_NOMEM, "%s: vocab entry", t->path);
    bool ok = tok_byte_level_decode(e->string, sn, tmp, &bn);
    vox_status st = VOX_OK;
    int32_t id = e->valueint;
    if (!ok)
      st = vox_errorf(VOX_ERR_PARSE, "%s: model.vocab[\"%s\"]: expected a ByteLevel-encoded token string", t->path, e->string);
    else if (t->tok_flags[id])
      st = vox_errorf(VOX_ERR_PARSE, "%s: model.vocab[\"%s\"]: expected a unique id, %d is used twice", t->path, e->string, id);
    else
      st = arena_add(t, id, tmp, bn);
    if (tmp != buf) free(tmp);
    VOX_TRY(st);
    t->tok_flags[id] = TOK_F_PRESENT;
  }
  VOX_TRY(tok_strmap_init(&t->vocab, n_vocab));
  for (int32_t id = 0; id < t->n_ids; id++)
    if (t->tok_flags[id]) tok_strmap_put(&t->vocab, t, id);
  for (int b = 0; b < 256; b++) {
    char c = (char)b;
    t->byte_id[b] = tok_strmap_get(&t->vocab, t, &c, 1);
    if (t->byte_id[b] < 0)
      return vox_errorf(VOX_ERR_PARSE, "%s: model.vocab: expected a token for every byte (ByteLevel), byte 0x%02x has none",
                        t->path, b);
  }

  /* Merges: "a b" strings (older files) or ["a", "b"] pairs; rank = position. */
  VOX_TRY(tok_pairmap_init(&t->merges, (size_t)cJSON_GetArraySize(merges)));
  uint32_t rank = 0;
  cJSON_ArrayForEach(e, merges) {
    const char *a, *b;
    size_t an, bn;
    if (cJSON_IsString(e)) {
      const char *sp = strchr(e->valuestring, ' ');
      if (!sp) return vox_errorf(VOX_ERR_PARSE, "%s: model.merges[%u]: expected \"left right\", found \"%s\"", t->path, rank, e->valuestring);
      a = e->valuestring;
      an = (size_t)(sp - a);
      b = sp + 1;
      bn = strlen(b);
    } else if (cJSON_IsArray(e) && cJSON_GetArraySize(e) == 2 && cJSON_IsString(e->child) && cJSON_IsString(e->child->next)) {
      a = e->child->valuestring;
      an = strlen(a);
      b = e->child->next->valuestring;
      bn = strlen(b);
    } else {
      return vox_errorf(VOX_ERR_PARSE, "%s: model.merges[%u]: expected a string or a pair of strings, found %s", t->path, rank,
                        type_of(e));
    }
    if (an + bn > sizeof buf / 2)
      return vox_errorf(VOX_ERR_PARSE, "%s: model.merges[%u]: expected tokens shorter than %zu bytes", t->path, rank, sizeof buf / 2);
    int32_t ia = vocab_lookup_bl(t, a, an, buf), ib = vocab_lookup_bl(t, b, bn, buf);
    char joined[sizeof buf / 2];
    memcpy(joined, a, an);
    memcpy(joined + an, b, bn);
    int32_t im = vocab_lookup_bl(t, joined, an + bn, buf);
    if (ia < 0 || ib < 0 || im < 0)
      return vox_errorf(VOX_ERR_PARSE, "%s: model.merges[%u]: expected \"%.*s\", \"%.*s\" and their concatenation in model.vocab",
                        t->path, rank, (int)an, a, (int)bn, b);
    tok_pairmap_put(&t->merges, ia, ib, rank, im);
    rank++;
  }

  /* Added tokens: their bytes are their content, matched on the raw text before BPE. */
  t->n_added = (size_t)cJSON_GetArraySize(added);
  t->added = calloc(t->n_added ? t->n_added : 1, sizeof *t->added);
  if (!t->added) return vox_errorf(VOX_ERR_NOMEM, "%s: added tokens", t->path);
  size_t k = 0;
  cJSON_ArrayForEach(e, added) {
    tok_added *a = &t->added[k++];
    const char *content = cJSON_GetObjectItemCaseSensitive(e, "content")->valuestring;
    a->len = strlen(content);
    a->content = strdup(content);
    if (!a->content) return vox_errorf(VOX_ERR_NOMEM, "%s: added token", t->path);
    if (tok_utf8_check(a->content, a->len) != a->len)
      return vox_errorf(VOX_ERR_PARSE, "%s: added_tokens[%zu].content: expected valid UTF-8", t->path, k - 1);
    a->id = cJSON_GetObjectItemCaseSensitive(e, "id")->valueint;
    a->special = flag(e, "special");
    a->lstrip = flag(e, "lstrip");
    a->rstrip = flag(e, "rstrip");
    a->single_word = flag(e, "single_word");
    a->normalized = flag(e, "normalized");
    VOX_TRY(arena_add(t, a->id, a->content, a->len));
    t->tok_flags[a->id] = TOK_F_PRESENT | TOK_F_ADDED | (a->special ? TOK_F_SPECIAL : 0);
    t->added_first[(unsigned char)a->content[0]] = 1;
  }
  return VOX_OK;
}

vox_status vox_tokenizer_add_special_token(vox_tokenizer *t, const char *content, int32_t id) {
  size_t len = content ? strlen(content) : 0;
  if (len == 0 || tok_utf8_check(content, len) != len)
    return vox_errorf(VOX_ERR_INVALID, "%s: added special token: expected non-empty UTF-8 content", t->path);
  if (id < 0) return vox_errorf(VOX_ERR_INVALID, "%s: special token \"%s\": negative id %d", t->path, content, id);
  if (t->sub_of)
    return vox_errorf(VOX_ERR_STATE, "%s: special token \"%s\": add it before restricting to the subset %s", t->path,
                      content, t->sub_origin);
  int32_t existing;
  if (vox_tokenizer_token_to_id(t, content, &existing) == VOX_OK) {
    if (existing == id) return VOX_OK;
    return vox_errorf(VOX_ERR_INVALID, "%s: special token \"%s\" already has id %d, not %d", t->path, content, existing, id);
  }
  vox_error_clear();
  if (id < t->n_ids && (t->tok_flags[id] & TOK_F_PRESENT))
    return vox_errorf(VOX_ERR_INVALID, "%s: cannot add special token \"%s\" as id %d: the id is taken", t->path, content, id);
  if (id >= t->n_ids) {
    size_t n = (size_t)id + 2;
    uint64_t *off = realloc(t->tok_off, n * sizeof *off);
    if (off) t->tok_off = off;
    uint32_t *ln = realloc(t->tok_len, n * sizeof *ln);
    if (ln) t->tok_len = ln;
    uint8_t *fl = realloc(t->tok_flags, n);
    if (fl) t->tok_flags = fl;
    if (!off || !ln || !fl) return vox_errorf(VOX_ERR_NOMEM, "%s: growing the id space to %d", t->path, id + 1);
    for (size_t i = (size_t)t->n_ids; i < n; i++) t->tok_off[i] = 0, t->tok_len[i] = 0, t->tok_flags[i] = 0;
    t->n_ids = id + 1;
  }
  tok_added *grown = realloc(t->added, (t->n_added + 1) * sizeof *grown);
  if (!grown) return vox_errorf(VOX_ERR_NOMEM, "%s: added tokens", t->path);
  t->added = grown;
  tok_added *a = &t->added[t->n_added];
  *a = (tok_added){.len = len, .id = id, .special = true};
  a->content = strdup(content);
  if (!a->content) return vox_errorf(VOX_ERR_NOMEM, "%s: added token", t->path);
  VOX_TRY(arena_add(t, id, content, len));
  t->n_added++;
  t->tok_flags[id] = TOK_F_PRESENT | TOK_F_ADDED | TOK_F_SPECIAL;
  t->added_first[(unsigned char)content[0]] = 1;
  return VOX_OK;
}

static vox_status load_json(vox_tokenizer *t, const cJSON *root) {
  if (!cJSON_IsObject(root))
    return vox_errorf(VOX_ERR_PARSE, "%s: expected a JSON object at the top level, found %s", t->path, type_of(root));
  VOX_TRY(load_model(t, cJSON_GetObjectItemCaseSensitive(root, "model"), cJSON_GetObjectItemCaseSensitive(root, "added_tokens")));
  VOX_TRY(load_normalizer(t, cJSON_GetObjectItemCaseSensitive(root, "normalizer")));
  const cJSON *pre = cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer");
  if (!cJSON_IsObject(pre))
    return vox_errorf(VOX_ERR_UNSUPPORTED, "%s: pre_tokenizer: expected a ByteLevel or Sequence[Split, ByteLevel] object, found %s",
                      t->path, type_of(pre));
  VOX_TRY(load_pre_tokenizer(t, pre));
  const cJSON *dec = cJSON_GetObjectItemCaseSensitive(root, "decoder");
  if (dec && !cJSON_IsNull(dec)) VOX_TRY(expect_type(t->path, "decoder", dec, "ByteLevel"));
  return VOX_OK;
}

vox_status vox_tokenizer_new_from_file(const char *path, vox_tokenizer **out) {
  *out = NULL;
  if (!path) return vox_errorf(VOX_ERR_INVALID, "vox_tokenizer_new_from_file: path is NULL");
  char *data = NULL;
  size_t len = 0;
  VOX_TRY(read_file(path, &data, &len));
  const char *end = NULL;
  cJSON *root = cJSON_ParseWithLengthOpts(data, len, &end, false);
  if (!root) {
    size_t off = end ? (size_t)(end - data) : 0;
    const char *ep = cJSON_GetErrorPtr();
    if (ep && ep >= data && ep <= data + len) off = (size_t)(ep - data);
    size_t line = 1;
    for (size_t i = 0; i < off && i < len; i++) line += data[i] == '\n';
    free(data);
    return vox_errorf(VOX_ERR_PARSE, "%s: malformed JSON near byte %zu (line %zu): expected a tokenizer.json document",
                      path, off, line);
  }
  free(data);
  vox_tokenizer *t = calloc(1, sizeof *t);
  vox_status st = VOX_OK;
  if (!t || !(t->path = strdup(path)) || !(t->cache = calloc(TOK_CACHE_SLOTS, sizeof *t->cache))) {
    st = vox_errorf(VOX_ERR_NOMEM, "%s: tokenizer", path);
  } else {
    pthread_mutex_init(&t->cache_lock, NULL);
    st = load_json(t, root);
  }
  cJSON_Delete(root);
  if (st != VOX_OK) {
    vox_tokenizer_free(t);
    return st;
  }
  *out = t;
  return VOX_OK;
}

void vox_tokenizer_free(vox_tokenizer *t) {
  if (!t) return;
  for (size_t i = 0; i < t->n_added; i++) free(t->added[i].content);
  free(t->added);
  tok_strmap_free(&t->vocab);
  tok_pairmap_free(&t->merges);
  if (t->split_re) pcre2_code_free(t->split_re);
  if (t->cache) pthread_mutex_destroy(&t->cache_lock);
  free(t->cache);
  free(t->arena);
  free(t->tok_off);
  free(t->tok_len);
  free(t->tok_flags);
  free(t->sub_of);
  free(t->full_of);
  free(t->sub_origin);
  free(t->path);
  free(t);
}
