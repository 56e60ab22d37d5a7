/* `vox tokenize --tokenizer FILE [--decode]`: stdin lines of UTF-8 text to lines of space-separated ids
 * (special tokens in the text recognised), or with --decode lines of ids back to text. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "text/tokenizer.h"

static void usage(FILE *f) {
  fprintf(f,
          "usage: vox tokenize --tokenizer FILE [--decode] [--skip-special]\n"
          "  Reads lines from stdin. Encoding: each UTF-8 line (without its newline) becomes one line of\n"
          "  space-separated token ids; special tokens written in the text (<|im_start|> ...) are recognised.\n"
          "  --decode: each line of ids becomes the decoded text (exact bytes) and a newline.\n"
          "  --skip-special: with --decode, drop special tokens.\n");
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

static int cmd_tokenize(int argc, char **argv) {
  const char *path = NULL;
  int decode = 0;
  unsigned dflags = 0;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--tokenizer") && i + 1 < argc) path = argv[++i];
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
  vox_tokenizer *tok;
  if (vox_tokenizer_new_from_file(path, &tok) != VOX_OK) return vox_cli_fail("tokenize");
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
