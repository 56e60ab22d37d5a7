/* `vox plot RUN_DIR [--out PNG]`: draws the training loss and every eval metric of run_dir/metrics.jsonl against
 * the step with gnuplot (pngcairo or png terminal) into one PNG (default RUN_DIR/metrics.png). */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"

#define MAX_SERIES 16

static int usage(FILE *f) {
  fprintf(f, "usage: vox plot RUN_DIR [--out PNG]\n"
             "Plots train loss and eval metrics of RUN_DIR/metrics.jsonl with gnuplot (default RUN_DIR/metrics.png).\n");
  return f == stdout ? 0 : 2;
}

static int cmd_plot(int argc, char **argv) {
  if (argc < 2) return usage(stderr);
  if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) return usage(stdout);
  const char *run = argv[1];
  char out[4096], in[4096], data[4096];
  snprintf(out, sizeof out, "%s/metrics.png", run);
  for (int i = 2; i < argc; i++) {
    if (!strcmp(argv[i], "--out") && i + 1 < argc) snprintf(out, sizeof out, "%s", argv[++i]);
    else return usage(stderr);
  }
  snprintf(in, sizeof in, "%s/metrics.jsonl", run);
  FILE *f = fopen(in, "r");
  if (!f) {
    fprintf(stderr, "vox plot: %s: cannot open (is %s a run directory?)\n", in, run);
    return 1;
  }
  /* series 0: train loss; then one series per eval metric name. Steps are made global across stages by adding
   * the steps of the stages before (a stage's step restarts at 0). */
  char names[MAX_SERIES][64] = {"train loss"};
  int n_series = 1;
  snprintf(data, sizeof data, "%s/.plot-%d.dat", run, (int)getpid());
  FILE *d[MAX_SERIES] = {0};
  char dpath[MAX_SERIES][4200];
  char *line = NULL;
  size_t cap = 0;
  int lineno = 0, points = 0;
  long long offset = 0, stage_max = 0;
  int cur_stage = 0;
  while (getline(&line, &cap, f) > 0) {
    lineno++;
    cJSON *o = cJSON_Parse(line);
    if (!o) {
      fprintf(stderr, "vox plot: %s:%d: not a JSON object (skipped)\n", in, lineno);
      continue;
    }
    const char *ev = cJSON_GetStringValue(cJSON_GetObjectItem(o, "event"));
    cJSON *st = cJSON_GetObjectItem(o, "step"), *sg = cJSON_GetObjectItem(o, "stage");
    int stage = cJSON_IsNumber(sg) ? sg->valueint : 0;
    if (stage != cur_stage) offset += stage > cur_stage ? stage_max : 0, cur_stage = stage, stage_max = 0;
    long long step = cJSON_IsNumber(st) ? (long long)st->valuedouble : 0;
    if (step > stage_max) stage_max = step;
    for (cJSON *it = o->child; ev && it; it = it->next) {
      int s = -1;
      if (!strcmp(ev, "train") && !strcmp(it->string, "loss")) s = 0;
      if (!strcmp(ev, "eval") && cJSON_IsNumber(it) && strcmp(it->string, "step") && strcmp(it->string, "stage") &&
          strcmp(it->string, "time") && strcmp(it->string, "tokens") && strcmp(it->string, "ppl")) {
        char nm[64];
        snprintf(nm, sizeof nm, "eval %s", it->string);
        for (int k = 1; k < n_series; k++)
          if (!strcmp(names[k], nm)) s = k;
        if (s < 0 && n_series < MAX_SERIES) snprintf(names[s = n_series++], 64, "%s", nm);
      }
      if (s < 0 || !cJSON_IsNumber(it)) continue;
      if (!d[s]) {
        snprintf(dpath[s], sizeof dpath[s], "%s.%d", data, s);
        d[s] = fopen(dpath[s], "w");
        if (!d[s]) continue;
      }
      fprintf(d[s], "%lld %.9g\n", offset + step, it->valuedouble);
      points++;
    }
    cJSON_Delete(o);
  }
  free(line);
  fclose(f);
  for (int s = 0; s < n_series; s++)
    if (d[s]) fclose(d[s]);
  if (points == 0) {
    fprintf(stderr, "vox plot: %s has no train or eval records yet\n", in);
    return 1;
  }
  char gp[4200];
  snprintf(gp, sizeof gp, "%s.gp", data);
  FILE *g = fopen(gp, "w");
  if (!g) {
    fprintf(stderr, "vox plot: cannot write %s\n", gp);
    return 1;
  }
  fprintf(g, "set terminal pngcairo size 1000,600 noenhanced\nset output '%s'\nset title '%s' noenhanced\n"
             "set xlabel 'step'\nset ylabel 'loss / metric'\nset grid\nset key outside right\nplot ",
          out, run);
  int first = 1;
  for (int s = 0; s < n_series; s++)
    if (d[s]) {
      fprintf(g, "%s'%s' using 1:2 with %s title '%s'", first ? "" : ", ", dpath[s], s ? "linespoints" : "lines",
              names[s]);
      first = 0;
    }
  fputc('\n', g);
  fclose(g);
  char cmd[8600];
  snprintf(cmd, sizeof cmd, "gnuplot '%s' 2>&1", gp);
  int rc = system(cmd);
  if (rc != 0) { /* no cairo terminal: the plain png one */
    snprintf(cmd, sizeof cmd, "sed -i 's/pngcairo/png/' '%s' && gnuplot '%s' 2>&1", gp, gp);
    rc = system(cmd);
  }
  unlink(gp);
  for (int s = 0; s < n_series; s++)
    if (d[s]) unlink(dpath[s]);
  if (rc != 0) {
    fprintf(stderr, "vox plot: gnuplot failed (is gnuplot installed?)\n");
    return 1;
  }
  printf("%s\n", out);
  return 0;
}
VOX_CLI_COMMAND("plot", "plot a run's loss and eval curves (metrics.jsonl) to PNG with gnuplot", cmd_plot)
