/* Eval metrics: normalisation cases, hand-counted WER/CER breakdowns, totals against an independent full-table
 * edit distance on random word strings, QA whole-word matching, and invalid UTF-8 errors. */
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "train/eval_metrics.h"
#include "vox_test.h"

static void expect_norm(const char *in, const char *want) {
  char *out = NULL;
  VT_OK(vox_eval_normalize(in, &out));
  cr_assert_str_eq(out, want, "normalize(\"%s\")", in);
  free(out);
}

Test(eval_metrics, normalisation) {
  expect_norm("  Hello, World!  ", "hello world");
  expect_norm("Don't STOP\tnow...", "don't stop now");
  expect_norm("Don\xe2\x80\x99t", "don't");               /* typographic apostrophe */
  expect_norm("twenty-one apples", "twenty one apples"); /* hyphen splits */
  expect_norm("'quoted' words", "quoted words");          /* apostrophes not between letters go */
  expect_norm("\xef\xbc\xa1\xef\xbc\xa2", "ab");          /* full-width letters (NFKC) */
  expect_norm("Stra\xc3\x9f" "e", "strasse");             /* case folding */
  expect_norm("a+b=c $5", "a b c 5");
  expect_norm("", "");
  expect_norm("?!", "");
}

Test(eval_metrics, word_errors_hand_counted) {
  vox_eval_errors e = {0};
  VT_OK(vox_eval_word_errors("the cat sat on the mat", "the cat sat on the mat", &e));
  cr_assert_eq(e.substitutions + e.deletions + e.insertions, 0);
  cr_assert_eq(e.ref_units, 6);

  e = (vox_eval_errors){0};
  VT_OK(vox_eval_word_errors("the cat sat on the red mat", "the hat sat on red mat today", &e));
  cr_assert_eq(e.substitutions, 1); /* cat -> hat */
  cr_assert_eq(e.deletions, 1);     /* the */
  cr_assert_eq(e.insertions, 1);    /* today */
  cr_assert_float_eq(vox_eval_error_rate(&e), 3.0 / 7.0, 1e-12);

  /* Punctuation and case do not count. */
  e = (vox_eval_errors){0};
  VT_OK(vox_eval_word_errors("Alice painted the red cup.", "alice painted, the Red cup", &e));
  cr_assert_eq(vox_eval_error_rate(&e), 0.0);

  /* Empty hypothesis: all deletions; empty reference: insertions count per word. */
  e = (vox_eval_errors){0};
  VT_OK(vox_eval_word_errors("one two three", "", &e));
  cr_assert_eq(e.deletions, 3);
  cr_assert_float_eq(vox_eval_error_rate(&e), 1.0, 1e-12);
  e = (vox_eval_errors){0};
  VT_OK(vox_eval_word_errors("", "noise", &e));
  cr_assert_eq(e.insertions, 1);
  cr_assert_float_eq(vox_eval_error_rate(&e), 1.0, 1e-12);
}

Test(eval_metrics, corpus_accumulates) {
  vox_eval_errors e = {0};
  VT_OK(vox_eval_word_errors("a b c d", "a b c d", &e));
  VT_OK(vox_eval_word_errors("e f", "e g", &e));
  cr_assert_eq(e.ref_units, 6);
  cr_assert_float_eq(vox_eval_error_rate(&e), 1.0 / 6.0, 1e-12); /* corpus WER, not the mean of sentence WERs */
}

Test(eval_metrics, char_errors_by_code_point) {
  vox_eval_errors e = {0};
  VT_OK(vox_eval_char_errors("今天 天气", "今天天汽", &e)); /* spaces ignored; one substitution of four */
  cr_assert_eq(e.ref_units, 4);
  cr_assert_eq(e.substitutions, 1);
  cr_assert_eq(e.deletions + e.insertions, 0);
  e = (vox_eval_errors){0};
  VT_OK(vox_eval_char_errors("kitten", "sitting", &e));
  cr_assert_eq(e.substitutions, 2);
  cr_assert_eq(e.insertions, 1);
}

/* Plain full-table Levenshtein distance: an independent check of the two-row aligner's total. */
static int full_table_distance(const int *a, int n, const int *b, int m) {
  int *d = malloc(sizeof(int) * (size_t)((n + 1) * (m + 1)));
  for (int i = 0; i <= n; i++) d[i * (m + 1)] = i;
  for (int j = 0; j <= m; j++) d[j] = j;
  for (int i = 1; i <= n; i++)
    for (int j = 1; j <= m; j++) {
      int sub = d[(i - 1) * (m + 1) + j - 1] + (a[i - 1] != b[j - 1]);
      int del = d[(i - 1) * (m + 1) + j] + 1, ins = d[i * (m + 1) + j - 1] + 1;
      int best = sub < del ? sub : del;
      d[i * (m + 1) + j] = best < ins ? best : ins;
    }
  int r = d[n * (m + 1) + m];
  free(d);
  return r;
}

Test(eval_metrics, totals_match_full_table_on_random_strings) {
  static const char *vocab[] = {"red", "cup", "the", "a", "seven", "blue"};
  vox_rng rng = vox_rng_make(42);
  for (int trial = 0; trial < 200; trial++) {
    int a[12], b[12];
    int n = (int)(vox_rng_next_double(&rng) * 12), m = (int)(vox_rng_next_double(&rng) * 12);
    char ref[128] = "", hyp[128] = "";
    for (int i = 0; i < n; i++) {
      a[i] = (int)(vox_rng_next_double(&rng) * 6);
      strcat(ref, vocab[a[i]]);
      strcat(ref, " ");
    }
    for (int j = 0; j < m; j++) {
      b[j] = (int)(vox_rng_next_double(&rng) * 6);
      strcat(hyp, vocab[b[j]]);
      strcat(hyp, " ");
    }
    vox_eval_errors e = {0};
    VT_OK(vox_eval_word_errors(ref, hyp, &e));
    cr_assert_eq(e.substitutions + e.deletions + e.insertions, full_table_distance(a, n, b, m), "trial %d: \"%s\" vs \"%s\"",
                 trial, ref, hyp);
    cr_assert_eq(e.ref_units, n);
    cr_assert_eq(n - e.deletions - e.substitutions + e.substitutions + e.insertions, m,
                 "counts must account for every hypothesis word");
  }
}

Test(eval_metrics, answer_matching_whole_words) {
  bool ok;
  VT_OK(vox_eval_answer_matches("seven", "The answer is seven.", &ok));
  cr_assert(ok);
  VT_OK(vox_eval_answer_matches("seven", "It is seventeen", &ok));
  cr_assert(!ok);
  VT_OK(vox_eval_answer_matches("Twenty-One", "twenty one, I think", &ok));
  cr_assert(ok);
  VT_OK(vox_eval_answer_matches("b a n", "spelled b a n k", &ok));
  cr_assert(ok);
  VT_OK(vox_eval_answer_matches("7", "Three plus four is seven.", &ok));
  cr_assert(ok, "digits match number words");
  VT_OK(vox_eval_answer_matches("104", "It is one hundred and four", &ok));
  cr_assert(ok);
  VT_OK(vox_eval_answer_matches("21", "twenty-one", &ok));
  cr_assert(ok);
  VT_OK(vox_eval_answer_matches("2021", "two thousand and twenty-one", &ok));
  cr_assert(ok);
  VT_OK(vox_eval_answer_matches("17", "seven", &ok));
  cr_assert(!ok);
  VT_OK(vox_eval_answer_matches("", "anything", &ok));
  cr_assert(!ok, "an empty answer matches nothing");
}

Test(eval_metrics, invalid_utf8_is_an_error) {
  vox_eval_errors e = {0};
  cr_assert_neq(vox_eval_word_errors("ok \xff bad", "ok", &e), VOX_OK);
  cr_assert(strstr(vox_last_error(), "UTF-8"), "message: %s", vox_last_error());
}
