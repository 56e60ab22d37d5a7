/* Tokenizer throughput on one core: MB/s of encoding English text with a tokenizer.json, cold (fresh
 * pre-token cache, first pass) and warm (later passes), in wall and thread-CPU time, plus decode. Usage:
 *   bench_tokenizer TOKENIZER_JSON [TEXT_FILE...]   (default text: /usr/share/common-licenses/ (all files)) */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "text/tokenizer.h"

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
/* This thread's CPU time: on a shared, oversubscribed machine wall time measures the neighbours too. */
static double cpu_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void append_file(const char *path, char **buf, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return;
  char chunk[65536];
  size_t n;
  while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
    *buf = realloc(*buf, *len + n + 1);
    memcpy(*buf + *len, chunk, n);
    *len += n;
  }
  fclose(f);
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: bench_tokenizer TOKENIZER_JSON [TEXT_FILE...]\n");
    return 2;
  }
  char *text = NULL;
  size_t len = 0;
  if (argc > 2) {
    for (int i = 2; i < argc; i++) append_file(argv[i], &text, &len);
  } else {
    const char *dir = "/usr/share/common-licenses";
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
      if (e->d_name[0] == '.') continue;
      char p[1024];
      snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
      append_file(p, &text, &len);
    }
    if (d) closedir(d);
  }
  if (!len) {
    fprintf(stderr, "bench_tokenizer: no text to encode\n");
    return 1;
  }
  double t0 = now();
  vox_tokenizer *tok;
  if (vox_tokenizer_new_from_file(argv[1], &tok) != VOX_OK) {
    fprintf(stderr, "bench_tokenizer: %s\n", vox_last_error());
    return 1;
  }
  double t_load = now() - t0;

  /* Encode line by line, as a data loader would (one call per sample). */
  vox_token_ids ids = {0};
  size_t total_ids = 0;
  double t_cold = 0, t_warm = 0, c_cold = 0, c_warm = 0;
  int warm_passes = 0;
  for (int pass = 0; pass < 1 || (t_warm < 2.0 && pass < 200); pass++) {
    double t = now(), c = cpu_now();
    const char *p = text, *end = text + len;
    size_t pass_ids = 0;
    while (p < end) {
      const char *nl = memchr(p, '\n', (size_t)(end - p));
      const char *le = nl ? nl + 1 : end;
      ids.len = 0;
      if (vox_tokenizer_encode(tok, p, (size_t)(le - p), 0, &ids) != VOX_OK) {
        fprintf(stderr, "bench_tokenizer: %s\n", vox_last_error());
        return 1;
      }
      pass_ids += ids.len;
      p = le;
    }
    double dt = now() - t, dc = cpu_now() - c;
    if (pass == 0) t_cold = dt, c_cold = dc, total_ids = pass_ids;
    else t_warm += dt, c_warm += dc, warm_passes++;
  }
  /* Decode the whole text's ids in one call. */
  vox_token_ids all = {0};
  vox_tokenizer_encode(tok, text, len, 0, &all);
  double t = now();
  int dec_passes = 0;
  while (now() - t < 0.5) {
    char *out;
    size_t on;
    vox_tokenizer_decode(tok, all.ids, all.len, 0, &out, &on);
    free(out);
    dec_passes++;
  }
  double t_dec = (now() - t) / dec_passes;
  double mb = (double)len / 1e6;
  printf("text: %.2f MB, %zu tokens (%.2f bytes/token); load %.3f s\n", mb, total_ids, (double)len / (double)total_ids, t_load);
  printf("encode cold (first pass, empty cache): %6.2f MB/s wall, %6.2f MB/s per CPU second\n", mb / t_cold, mb / c_cold);
  printf("encode warm (%3d passes):              %6.2f MB/s wall, %6.2f MB/s per CPU second\n", warm_passes,
         mb * warm_passes / t_warm, mb * warm_passes / c_warm);
  printf("decode:                                %6.1f MB/s wall\n", mb / t_dec);
  vox_token_ids_free(&ids);
  vox_token_ids_free(&all);
  vox_tokenizer_free(tok);
  free(text);
  return 0;
}
