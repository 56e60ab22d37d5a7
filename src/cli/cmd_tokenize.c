/* `vox tokenize --tokenizer FILE [--decode]`: stdin lines of UTF-8 text to lines of space-separated ids
 * (special tokens in the text recognised), or with --decode lines of ids back to text; --subset-out builds the
 * vocabulary subset file of the texts on stdin. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "text/tokenizer.h"

static void usage(FILE *f) {
  fprintf(f,
          "usage: vox tokenize --tokenizer FILE [--add-special TEXT=ID]... [--subset FILE | --subset-out FILE]\n"
          "                    [--decode] [--skip-special]\n"
          "  Reads lines from stdin. Encoding: each UTF-8 line (without its newline) becomes one line of\n"
          "  space-separated token ids; special tokens written in the text (<|im_start|> ...) are recognised.\n"
          "  --decode: each line of ids becomes the decoded text (exact bytes) and a newline.\n"
          "  --skip-special: with --decode, drop special tokens.\n"
          "  --add-special TEXT=ID: add a special token first (a model's audio placeholder: <|audio|>=151669).\n"
          "  --subset FILE: ids are indices into the vocabulary subset FILE (as a model with\n"
          "    model.llm.vocab_subset sees them).\n"
          "  --subset-out FILE: print nothing; write the vocabulary subset of every token the stdin lines encode to\n"
          "    (plus the byte tokens, the added tokens and what BPE needs to reach them; docs/file-formats.md).\n");
}

static int decode_line(const vox_tokenizer *tok, char *line, size_t lineno, unsigned flags, vox_token_ids *ids) {
  ids->len = 0;
  char *p = line;
  for (;;) {
    while (*p == ' ' || *p == '\t' || *p == '\r') p++;
    if (!*p) break;
    errno = 0;
    char *end;
    long v = strtol(p, &end, 10);
    if (end == p || errno || v < INT32_MIN || v > INT32_MAX || (*end && *end != ' ' && *end != '\t' && *end != '\r')) {
      fprintf(stderr, "vox tokenize: line %zu: expected space-separated integer ids, found \"%.20s\"\n", lineno, p);
      return 1;
    }
    int32_t id = (int32_t)v;
    if (ids->len == ids->cap) {
      size_t cap = ids->cap ? ids->cap * 2 : 256;
      int32_t *n = realloc(ids->ids, cap * sizeof *n);
      if (!n) return fprintf(stderr, "vox tokenize: out of memory\n"), 1;
      ids->ids = n;
      ids->cap = cap;
    }
    ids->ids[ids->len++] = id;
    p = end;
  }
  char *text;
  size_t n;
  if (vox_tokenizer_decode(tok, ids->ids, ids->len, flags, &text, &n) != VOX_OK) {
    fprintf(stderr, "vox tokenize: line %zu: %s\n", lineno, vox_last_error());
    return 1;
  }
  fwrite(text, 1, n, stdout);
  fputc('\n', stdout);
  free(text);
  return 0;
}

static int encode_line(const vox_tokenizer *tok, const char *line, size_t len, size_t lineno, vox_token_ids *ids) {
  ids->len = 0;
  if (vox_tokenizer_encode(tok, line, len, VOX_TOKENIZE_SPECIAL, ids) != VOX_OK) {
    fprintf(stderr, "vox tokenize: line %zu: %s\n", lineno, vox_last_error());
    return 1;
  }
  for (size_t i = 0; i < ids->len; i++) printf(i ? " %d" : "%d", ids->ids[i]);
  fputc('\n', stdout);
  return 0;
}

/* Collects the tokens of every stdin line, closes them into a subset and writes it (temporary file, then rename). */
static int build_subset(const vox_tokenizer *tok, const char *tok_path, const char *out_path) {
  int32_t V = vox_tokenizer_vocab_size(tok);
  uint8_t *keep = calloc((size_t)V, 1);
  char *line = NULL, tmp[4096];
  size_t cap = 0, lineno = 0;
  ssize_t got;
  vox_token_ids ids = {0};
  int rc = keep ? 0 : 1;
  while (rc == 0 && (got = getline(&line, &cap, stdin)) >= 0) {
    lineno++;
    size_t len = (size_t)got;
    if (len && line[len - 1] == '\n') line[--len] = '\0';
    ids.len = 0;
    if (vox_tokenizer_encode(tok, line, len, VOX_TOKENIZE_SPECIAL, &ids) != VOX_OK) {
      fprintf(stderr, "vox tokenize: line %zu: %s\n", lineno, vox_last_error());
      rc = 1;
    }
    for (size_t i = 0; rc == 0 && i < ids.len; i++) keep[ids.ids[i]] = 1;
  }
  if (rc == 0 && vox_tokenizer_subset_close(tok, keep) != VOX_OK) rc = vox_cli_fail("tokenize");
  FILE *f = NULL;
  if (rc == 0) {
    snprintf(tmp, sizeof tmp, "%s.tmp", out_path);
    if (!(f = fopen(tmp, "w"))) rc = 1, fprintf(stderr, "vox tokenize: %s: cannot write: %s\n", tmp, strerror(errno));
  }
  if (f) {
    int32_t n = 0;
    for (int32_t i = 0; i < V; i++) n += keep[i];
    fprintf(f, "# vocabulary subset: %d of the %d token ids of %s, from %zu lines of text (vox tokenize --subset-out)\n",
            n, V, tok_path, lineno);
    for (int32_t i = 0; i < V; i++)
      if (keep[i]) fprintf(f, "%d\n", i);
    if (fclose(f) != 0 || rename(tmp, out_path) != 0) {
      fprintf(stderr, "vox tokenize: %s: write failed: %s\n", out_path, strerror(errno));
      unlink(tmp);
      rc = 1;
    } else {
      fprintf(stderr, "vox tokenize: %s: %d token ids\n", out_path, n);
    }
  }
  free(line);
  free(keep);
  vox_token_ids_free(&ids);
  return rc;
}

static int add_special(vox_tokenizer *tok, const char *arg) {
  const char *eq = strrchr(arg, '=');
  char *end;
  long id = eq ? strtol(eq + 1, &end, 10) : -1;
  if (!eq || eq == arg || *end || id < 0 || id > INT32_MAX) {
    fprintf(stderr, "vox tokenize: --add-special: expected TEXT=ID, found '%s'\n", arg);
    return 2;
  }
  char *text = strndup(arg, (size_t)(eq - arg));
  vox_status st = text ? vox_tokenizer_add_special_token(tok, text, (int32_t)id) : VOX_ERR_NOMEM;
  free(text);
  return st == VOX_OK ? 0 : vox_cli_fail("tokenize");
}

static int cmd_tokenize(int argc, char **argv) {
  const char *path = NULL, *subset = NULL, *subset_out = NULL;
  const char *specials[16];
  int decode = 0, n_specials = 0;
  unsigned dflags = 0;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--tokenizer") && i + 1 < argc) path = argv[++i];
    else if (!strcmp(argv[i], "--subset") && i + 1 < argc) subset = argv[++i];
    else if (!strcmp(argv[i], "--subset-out") && i + 1 < argc) subset_out = argv[++i];
    else if (!strcmp(argv[i], "--add-special") && i + 1 < argc && n_specials < 16) specials[n_specials++] = argv[++i];
    else if (!strcmp(argv[i], "--decode")) decode = 1;
    else if (!strcmp(argv[i], "--skip-special")) dflags |= VOX_DETOKENIZE_SKIP_SPECIAL;
    else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) return usage(stdout), 0;
    else {
      fprintf(stderr, "vox tokenize: unknown or incomplete argument '%s'\n", argv[i]);
      usage(stderr);
      return 2;
    }
  }
  if (!path) {
    fprintf(stderr, "vox tokenize: --tokenizer FILE is required\n");
    usage(stderr);
    return 2;
  }
  if (subset && subset_out) {
    fprintf(stderr, "vox tokenize: --subset and --subset-out exclude each other\n");
    return 2;
  }
  vox_tokenizer *tok;
  if (vox_tokenizer_new_from_file(path, &tok) != VOX_OK) return vox_cli_fail("tokenize");
  for (int i = 0; i < n_specials; i++)
    if (add_special(tok, specials[i]) != 0) return vox_tokenizer_free(tok), 1;
  if (subset_out) {
    int brc = build_subset(tok, path, subset_out);
    vox_tokenizer_free(tok);
    return brc;
  }
  if (subset) {
    int32_t *keep_ids = NULL, n_keep = 0;
    vox_status st = vox_vocab_subset_read(subset, &keep_ids, &n_keep);
    if (st == VOX_OK) st = vox_tokenizer_restrict(tok, keep_ids, n_keep, subset);
    free(keep_ids);
    if (st != VOX_OK) return vox_tokenizer_free(tok), vox_cli_fail("tokenize");
  }
  char *line = NULL;
  size_t cap = 0, lineno = 0;
  ssize_t got;
  int rc = 0;
  vox_token_ids ids = {0};
  while (rc == 0 && (got = getline(&line, &cap, stdin)) >= 0) {
    lineno++;
    size_t len = (size_t)got;
    if (len && line[len - 1] == '\n') line[--len] = '\0';
    rc = decode ? decode_line(tok, line, lineno, dflags, &ids) : encode_line(tok, line, len, lineno, &ids);
  }
  free(line);
  vox_token_ids_free(&ids);
  vox_tokenizer_free(tok);
  if (fflush(stdout) != 0) return 1;
  return rc;
}
VOX_CLI_COMMAND("tokenize", "encode stdin lines to token ids (or --decode ids to text) with a tokenizer.json", cmd_tokenize)
