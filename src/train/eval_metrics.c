/* WER/CER and QA accuracy: normalisation with utf8proc (NFKC, case folding, Unicode categories), and a
 * two-row Levenshtein alignment that carries the substitution/deletion/insertion counts of the chosen path. */
#include "train/eval_metrics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

static bool is_word_char(utf8proc_int32_t cp) {
  utf8proc_category_t c = utf8proc_category(cp);
  return (c >= UTF8PROC_CATEGORY_LU && c <= UTF8PROC_CATEGORY_LO) || (c >= UTF8PROC_CATEGORY_ND && c <= UTF8PROC_CATEGORY_NO) ||
         (c >= UTF8PROC_CATEGORY_MN && c <= UTF8PROC_CATEGORY_ME);
}

static bool is_separator(utf8proc_int32_t cp) {
  utf8proc_category_t c = utf8proc_category(cp);
  if (c >= UTF8PROC_CATEGORY_PC && c <= UTF8PROC_CATEGORY_SO) return true; /* punctuation and symbols */
  if (c >= UTF8PROC_CATEGORY_ZS && c <= UTF8PROC_CATEGORY_ZP) return true;
  return c == UTF8PROC_CATEGORY_CC || c == UTF8PROC_CATEGORY_CF;
}

/* Decodes NFKC-casefolded text into code points (malloc'd). */
static vox_status to_codepoints(const char *text, utf8proc_int32_t **cps, int64_t *n) {
  utf8proc_uint8_t *mapped = NULL;
  utf8proc_ssize_t len = utf8proc_map((const utf8proc_uint8_t *)text, 0, &mapped,
                                      UTF8PROC_NULLTERM | UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT |
                                          UTF8PROC_CASEFOLD);
  if (len < 0) {
    /* Find the offending byte for the message: utf8proc_map does not say where. */
    const utf8proc_uint8_t *p = (const utf8proc_uint8_t *)text;
    utf8proc_ssize_t off = 0, total = (utf8proc_ssize_t)strlen(text);
    utf8proc_int32_t cp;
    while (off < total) {
      utf8proc_ssize_t k = utf8proc_iterate(p + off, total - off, &cp);
      if (k < 0) break;
      off += k;
    }
    return vox_errorf(VOX_ERR_INVALID, "eval: text is not valid UTF-8 at byte %ld: %s", (long)off, utf8proc_errmsg(len));
  }
  utf8proc_int32_t *out = malloc(sizeof *out * (size_t)(len + 1));
  if (!out) {
    free(mapped);
    return vox_errorf(VOX_ERR_NOMEM, "eval: out of memory normalising %ld bytes", (long)len);
  }
  int64_t count = 0;
  for (utf8proc_ssize_t off = 0; off < len;) {
    utf8proc_ssize_t k = utf8proc_iterate(mapped + off, len - off, &out[count]);
    if (k <= 0) break; /* cannot happen: utf8proc_map produced valid UTF-8 */
    off += k;
    count++;
  }
  free(mapped);
  *cps = out;
  *n = count;
  return VOX_OK;
}

vox_status vox_eval_normalize(const char *text, char **out) {
  *out = NULL;
  utf8proc_int32_t *cps;
  int64_t n;
  VOX_TRY(to_codepoints(text, &cps, &n));
  char *buf = malloc((size_t)n * 4 + 1);
  if (!buf) {
    free(cps);
    return vox_errorf(VOX_ERR_NOMEM, "eval: out of memory normalising text");
  }
  size_t len = 0;
  bool pending_space = false;
  for (int64_t i = 0; i < n; i++) {
    utf8proc_int32_t cp = cps[i];
    bool joiner = cp == '\'' || cp == 0x2019;
    if (joiner && i > 0 && i + 1 < n && is_word_char(cps[i - 1]) && is_word_char(cps[i + 1])) {
      cp = cp == 0x2019 ? '\'' : cp;
    } else if (is_separator(cp)) {
      pending_space = len > 0;
      continue;
    }
    if (pending_space) buf[len++] = ' ';
    pending_space = false;
    len += (size_t)utf8proc_encode_char(cp, (utf8proc_uint8_t *)buf + len);
  }
  buf[len] = '\0';
  free(cps);
  *out = buf;
  return VOX_OK;
}

/* One alignment cell: the cost and how the cheapest path got there. */
typedef struct cell {
  int64_t cost, s, d, i;
} cell;

/* Aligns ref[0..n) with hyp[0..m) under unit costs; equal(a, b) compares units. Ties prefer a match or
 * substitution, then a deletion, then an insertion (the convention of sclite and jiwer). */
static vox_status align(const void *ref, int64_t n, const void *hyp, int64_t m,
                        bool (*equal)(const void *ref, int64_t a, const void *hyp, int64_t b), vox_eval_errors *acc) {
  cell *prev = malloc(sizeof(cell) * (size_t)(m + 1)), *cur = malloc(sizeof(cell) * (size_t)(m + 1));
  if (!prev || !cur) {
    free(prev);
    free(cur);
    return vox_errorf(VOX_ERR_NOMEM, "eval: out of memory aligning %ld x %ld units", (long)n, (long)m);
  }
  for (int64_t j = 0; j <= m; j++) prev[j] = (cell){j, 0, 0, j};
  for (int64_t a = 1; a <= n; a++) {
    cur[0] = (cell){a, 0, a, 0};
    for (int64_t b = 1; b <= m; b++) {
      bool same = equal(ref, a - 1, hyp, b - 1);
      cell diag = prev[b - 1], del = prev[b], ins = cur[b - 1];
      diag.cost += same ? 0 : 1;
      diag.s += same ? 0 : 1;
      del.cost += 1;
      del.d += 1;
      ins.cost += 1;
      ins.i += 1;
      cell best = diag;
      if (del.cost < best.cost) best = del;
      if (ins.cost < best.cost) best = ins;
      cur[b] = best;
    }
    cell *t = prev;
    prev = cur;
    cur = t;
  }
  acc->substitutions += prev[m].s;
  acc->deletions += prev[m].d;
  acc->insertions += prev[m].i;
  acc->ref_units += n;
  free(prev);
  free(cur);
  return VOX_OK;
}

/* Splits a normalised string in place on single spaces. */
static int64_t split_words(char *s, char ***words) {
  int64_t n = 0;
  for (char *p = s; *p; p++) n += (p == s || p[-1] == ' ') && *p != ' ';
  *words = malloc(sizeof(char *) * (size_t)(n + 1));
  if (!*words) return -1;
  int64_t k = 0;
  for (char *tok = strtok(s, " "); tok; tok = strtok(NULL, " ")) (*words)[k++] = tok;
  return k;
}

static bool words_equal(const void *ref, int64_t a, const void *hyp, int64_t b) {
  return strcmp(((char *const *)ref)[a], ((char *const *)hyp)[b]) == 0;
}

static bool cps_equal(const void *ref, int64_t a, const void *hyp, int64_t b) {
  return ((const utf8proc_int32_t *)ref)[a] == ((const utf8proc_int32_t *)hyp)[b];
}

vox_status vox_eval_word_errors(const char *ref, const char *hyp, vox_eval_errors *acc) {
  char *r = NULL, *h = NULL, **rw = NULL, **hw = NULL;
  vox_status st = vox_eval_normalize(ref, &r);
  if (st == VOX_OK) st = vox_eval_normalize(hyp, &h);
  if (st == VOX_OK) {
    int64_t n = split_words(r, &rw), m = split_words(h, &hw);
    st = (n < 0 || m < 0) ? vox_errorf(VOX_ERR_NOMEM, "eval: out of memory splitting words")
                          : align(rw, n, hw, m, words_equal, acc);
  }
  free(rw);
  free(hw);
  free(r);
  free(h);
  return st;
}

/* Normalised code points with spaces dropped. */
static vox_status char_units(const char *text, utf8proc_int32_t **cps, int64_t *n) {
  char *norm;
  VOX_TRY(vox_eval_normalize(text, &norm));
  vox_status st = to_codepoints(norm, cps, n);
  free(norm);
  if (st != VOX_OK) return st;
  int64_t k = 0;
  for (int64_t i = 0; i < *n; i++)
    if ((*cps)[i] != ' ') (*cps)[k++] = (*cps)[i];
  *n = k;
  return VOX_OK;
}

vox_status vox_eval_char_errors(const char *ref, const char *hyp, vox_eval_errors *acc) {
  utf8proc_int32_t *r = NULL, *h = NULL;
  int64_t n = 0, m = 0;
  vox_status st = char_units(ref, &r, &n);
  if (st == VOX_OK) st = char_units(hyp, &h, &m);
  if (st == VOX_OK) st = align(r, n, h, m, cps_equal, acc);
  free(r);
  free(h);
  return st;
}

double vox_eval_error_rate(const vox_eval_errors *e) {
  int64_t errors = e->substitutions + e->deletions + e->insertions;
  if (e->ref_units == 0) return errors > 0 ? (double)errors : 0.0;
  return (double)errors / (double)e->ref_units;
}

static void append(char *out, size_t cap, const char *s) {
  size_t len = strlen(out);
  if (len + 1 < cap) snprintf(out + len, cap - len, "%s", s);
}

/* Appends the English words of 0 <= n < 1e6 as the corpus builders write them ("three hundred and four",
 * "twenty-one"). */
static void number_words(long n, char *out, size_t cap) {
  static const char *const ones[] = {"zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
                                     "ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen",
                                     "seventeen", "eighteen", "nineteen"};
  static const char *const tens[] = {"", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"};
  if (n < 20) {
    append(out, cap, ones[n]);
  } else if (n < 100) {
    append(out, cap, tens[n / 10]);
    if (n % 10) append(out, cap, "-"), append(out, cap, ones[n % 10]);
  } else if (n < 1000) {
    append(out, cap, ones[n / 100]);
    append(out, cap, " hundred");
    if (n % 100) append(out, cap, " and "), number_words(n % 100, out, cap);
  } else {
    number_words(n / 1000, out, cap);
    append(out, cap, " thousand");
    if (n % 1000) append(out, cap, n % 1000 < 100 ? " and " : " "), number_words(n % 1000, out, cap);
  }
}

static vox_status phrase_in(const char *phrase, const char *response, bool *match) {
  char *a = NULL, *r = NULL;
  vox_status st = vox_eval_normalize(phrase, &a);
  if (st == VOX_OK) st = vox_eval_normalize(response, &r);
  if (st == VOX_OK && a[0] != '\0') {
    size_t la = strlen(a);
    for (const char *p = strstr(r, a); p && !*match; p = strstr(p + 1, a)) {
      bool starts = p == r || p[-1] == ' ';
      bool ends = p[la] == '\0' || p[la] == ' ';
      *match = starts && ends;
    }
  }
  free(a);
  free(r);
  return st;
}

vox_status vox_eval_answer_matches(const char *answer, const char *response, bool *match) {
  *match = false;
  VOX_TRY(phrase_in(answer, response, match));
  /* A number may be said in words: "7" matches "the answer is seven". */
  char *end = NULL;
  long n = strtol(answer, &end, 10);
  if (!*match && end != answer && *end == '\0' && n >= 0 && n < 1000000) {
    char words[256] = "";
    number_words(n, words, sizeof words);
    VOX_TRY(phrase_in(words, response, match));
  }
  return VOX_OK;
}
