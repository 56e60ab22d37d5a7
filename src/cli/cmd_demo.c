/* `vox demo`: the main job end to end — builds the synthetic speech corpus, trains recipes/s2t_pipeline.yaml (MinMo's
 * speech-to-text stages on the `small` model, CPU or GPU) and prints each stage's dev WER/CER and QA accuracy. */
#include <cjson/cJSON.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "io/config.h"
#include "train/trainer.h"

static int usage(FILE *f) {
  fprintf(f,
          "usage: vox demo [--size tiny|small|medium] [--run-dir DIR] [--data DIR] [a.b=value ...]\n"
          "Builds the synthetic espeak-ng corpus (data_tools/build_s2t_corpus.sh; reused once built), trains\n"
          "recipes/s2t_pipeline.yaml (encoder and LM warm-ups, pre-align, full-align, LoRA SFT) and prints every\n"
          "stage's dev metrics. Overrides go to the recipe (e.g. stages.sft.lora.rank=16). Re-running resumes or\n"
          "reprints.\n"
          "  --size     corpus size: medium (default, ~8.5 h of speech), small, tiny (smoke test)\n"
          "  --run-dir  where checkpoints and metrics.jsonl go (default checkpoints/s2t_pipeline in the source tree)\n"
          "  --data     corpus folder (default data/s2t in the source tree)\n");
  return f == stdout ? 0 : 2;
}

/* Runs a project script (echoing its output when `echo`); the last line it prints goes to `last` when given. */
static int run_script(const char *cmd, bool echo, char *last, size_t cap) {
  FILE *p = popen(cmd, "r");
  if (!p) return -1;
  char line[4096];
  if (last && cap) last[0] = '\0';
  while (fgets(line, sizeof line, p)) {
    if (echo) fputs(line, stdout);
    if (last) snprintf(last, cap, "%.*s", (int)strcspn(line, "\n"), line);
  }
  fflush(stdout);
  return pclose(p);
}

/* Per stage: the first and the last eval record of metrics.jsonl (the stage's start, with eval.at_start, and its
 * end). */
typedef struct stage_row {
  char name[64];
  long long step_first, step_last;
  double first[4], last[4]; /* loss, wer, cer, qa_acc (NAN when absent) */
  bool seen;
} stage_row;

static void read_metrics(cJSON *o, double v[4]) {
  static const char *const keys[4] = {"loss", "wer", "cer", "qa_acc"};
  for (int k = 0; k < 4; k++) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, keys[k]);
    v[k] = cJSON_IsNumber(x) ? x->valuedouble : NAN;
  }
}

static int collect(const char *metrics_path, stage_row *rows, int max_rows) {
  FILE *f = fopen(metrics_path, "r");
  if (!f) return 0;
  int n = 0;
  char line[8192];
  while (fgets(line, sizeof line, f)) {
    cJSON *o = cJSON_Parse(line);
    const cJSON *ev = cJSON_GetObjectItemCaseSensitive(o, "event");
    const cJSON *si = cJSON_GetObjectItemCaseSensitive(o, "stage");
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(o, "stage_name");
    const cJSON *step = cJSON_GetObjectItemCaseSensitive(o, "step");
    if (cJSON_IsString(ev) && !strcmp(ev->valuestring, "eval") && cJSON_IsNumber(si) && si->valueint >= 0 &&
        si->valueint < max_rows && cJSON_IsString(name) && cJSON_IsNumber(step)) {
      stage_row *r = &rows[si->valueint];
      /* a resumed run appends: a record at an earlier or equal step than the first one starts over */
      if (!r->seen || step->valuedouble <= r->step_first) {
        r->seen = true;
        snprintf(r->name, sizeof r->name, "%s", name->valuestring);
        r->step_first = (long long)step->valuedouble;
        read_metrics(o, r->first);
      }
      r->step_last = (long long)step->valuedouble;
      read_metrics(o, r->last);
      if (si->valueint + 1 > n) n = si->valueint + 1;
    }
    cJSON_Delete(o);
  }
  fclose(f);
  return n;
}

static void cell(double v, bool percent) {
  if (isnan(v)) printf(" %8s", "-");
  else if (percent) printf(" %7.1f%%", 100.0 * v);
  else printf(" %8.3f", v);
}

static void print_table(const stage_row *rows, int n) {
  printf("\n%-15s %11s %8s %8s %8s %8s\n", "stage", "dev at step", "loss", "WER", "CER", "QA acc");
  for (int i = 0; i < n; i++) {
    const stage_row *r = &rows[i];
    if (!r->seen) continue;
    if (r->step_first != r->step_last) {
      printf("%-15s %11lld", r->name, r->step_first);
      for (int k = 0; k < 4; k++) cell(r->first[k], k > 0);
      printf("\n");
    }
    printf("%-15s %11lld", r->name, r->step_last);
    for (int k = 0; k < 4; k++) cell(r->last[k], k > 0);
    printf("\n");
  }
}

static int cmd_demo(int argc, char **argv) {
  const char *size = "medium", *run_dir = NULL, *data = NULL;
  char **overrides = calloc((size_t)argc + 8, sizeof *overrides);
  int n_over = 0;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
      free(overrides);
      return usage(stdout);
    }
    const char **opt = !strcmp(argv[i], "--size") ? &size : !strcmp(argv[i], "--run-dir") ? &run_dir
                       : !strcmp(argv[i], "--data")   ? &data : NULL;
    if (opt) {
      if (i + 1 >= argc) {
        free(overrides);
        return usage(stderr);
      }
      *opt = argv[++i];
    } else if (!strncmp(argv[i], "--", 2)) {
      fprintf(stderr, "vox demo: unknown option '%s'\n", argv[i]);
      free(overrides);
      return usage(stderr);
    } else {
      overrides[n_over++] = argv[i];
    }
  }
  if (strcmp(size, "tiny") && strcmp(size, "small") && strcmp(size, "medium")) {
    free(overrides);
    return usage(stderr);
  }
  const char *src = VOX_SOURCE_DIR;
  char default_run[PATH_MAX], default_data[PATH_MAX], cmd[3 * PATH_MAX], last[PATH_MAX];
  snprintf(default_run, sizeof default_run, "%s/checkpoints/s2t_pipeline", src);
  snprintf(default_data, sizeof default_data, "%s/data/s2t", src);
  if (!run_dir) run_dir = default_run;
  if (!data) data = default_data;

  printf("== 1/3 tokenizer and corpus\n");
  fflush(stdout);
  snprintf(cmd, sizeof cmd, "bash '%s/data_tools/fetch_qwen_tokenizer.sh'", src);
  if (run_script(cmd, true, last, sizeof last) != 0) {
    fprintf(stderr, "vox demo: could not fetch the Qwen tokenizer (data_tools/fetch_qwen_tokenizer.sh)\n");
    free(overrides);
    return 1;
  }
  char tok[PATH_MAX];
  snprintf(tok, sizeof tok, "%s", last);
  snprintf(cmd, sizeof cmd, "bash '%s/data_tools/build_s2t_corpus.sh' '%s' %s 2>&1", src, data, size);
  if (run_script(cmd, true, NULL, 0) != 0) {
    fprintf(stderr, "vox demo: building the corpus failed (data_tools/build_s2t_corpus.sh)\n");
    free(overrides);
    return 1;
  }

  /* The LM warm-up's fresh transcripts and questions (a few seconds; the dev and test sentences are never among
   * them), written in the user turn as the encoder hands them over (unpunctuated, a few word errors: --heard). */
  snprintf(cmd, sizeof cmd, "[ -s '%s/text_forms.jsonl' ] || python3 '%s/data_tools/build_text_forms.py' "
           "'%s/text_forms.jsonl' --n 40000 --qa 4000 --seed 13 --heard 0.05,0.06,0.02 --exclude '%s/asr/dev.jsonl' "
           "'%s/asr/test.jsonl' 2>&1",
           data, src, data, data, data);
  if (run_script(cmd, true, NULL, 0) != 0) {
    fprintf(stderr, "vox demo: writing the text forms failed (data_tools/build_text_forms.py)\n");
    free(overrides);
    return 1;
  }
  /* The LLM keeps the rows of the tokens the corpus uses (model.llm.vocab_subset): built from the training texts. */
  char self[PATH_MAX];
  ssize_t sl = readlink("/proc/self/exe", self, sizeof self - 1);
  if (sl <= 0) {
    fprintf(stderr, "vox demo: cannot find the vox executable (/proc/self/exe)\n");
    free(overrides);
    return 1;
  }
  self[sl] = '\0';
  snprintf(cmd, sizeof cmd, "bash '%s/data_tools/build_vocab_subset.sh' '%s' '%s' '%s/vocab_subset.txt' '%s/sft_train.jsonl' "
           "'%s/text_forms.jsonl' 2>&1", src, self, tok, data, data, data);
  if (run_script(cmd, true, NULL, 0) != 0) {
    fprintf(stderr, "vox demo: building the vocabulary subset failed (data_tools/build_vocab_subset.sh)\n");
    free(overrides);
    return 1;
  }

  /* The recipe's data and tokenizer paths point into the source tree; these make any --data/--run-dir work. */
  /* Every dataset of recipes/s2t_pipeline.yaml is listed: one left out would read the source tree's data/s2t. */
  static const char *const sets[][2] = {{"ctc_train", "ctc_train.jsonl"},  {"asr_train", "asr/train.jsonl"},
                                        {"asr_dev", "asr/dev.jsonl"},        {"sft_train", "sft_train.jsonl"},
                                        {"sft_dev", "sft_dev.jsonl"},        {"text_train", "sft_train.jsonl"},
                                        {"text_dev", "sft_dev.jsonl"},       {"text_forms", "text_forms.jsonl"}};
  enum { n_sets = sizeof sets / sizeof sets[0] };
  char own[3 + n_sets][PATH_MAX + 64];
  snprintf(own[0], sizeof own[0], "run_dir=%s", run_dir);
  snprintf(own[1], sizeof own[1], "tokenizer=%s", tok);
  snprintf(own[2], sizeof own[2], "model.llm.vocab_subset=%s/vocab_subset.txt", data);
  for (int k = 0; k < n_sets; k++)
    snprintf(own[3 + k], sizeof own[3 + k], "data.%s.manifest=%s/%s", sets[k][0], data, sets[k][1]);
  char *all[64];
  int n_all = 0;
  for (int k = 0; k < 3 + n_sets; k++) all[n_all++] = own[k];
  for (int k = 0; k < n_over && n_all < 64; k++) all[n_all++] = overrides[k];
  free(overrides);
  char recipe[PATH_MAX];
  snprintf(recipe, sizeof recipe, "%s/recipes/s2t_pipeline.yaml", src);
  vox_config *cfg = NULL;
  if (vox_config_load(recipe, n_all, all, &cfg) != VOX_OK) return vox_cli_fail("demo");

  printf("== 2/3 training %s (run_dir %s)\n", recipe, run_dir);
  fflush(stdout);
  if (vox_train_install_signal_handlers() != VOX_OK) {
    vox_config_free(cfg);
    return vox_cli_fail("demo");
  }
  vox_train_opts opts = {.out = stdout};
  vox_train_outcome outcome;
  vox_status st = vox_train_run(cfg, &opts, &outcome);
  vox_config_free(cfg);
  if (st != VOX_OK) return vox_cli_fail("demo");

  printf("\n== 3/3 results (dev sets: %s/asr/dev.jsonl for ASR, %s/sft_dev.jsonl for SFT)\n", data, data);
  stage_row rows[16] = {0};
  char metrics[PATH_MAX + 32];
  snprintf(metrics, sizeof metrics, "%s/metrics.jsonl", run_dir);
  int n = collect(metrics, rows, 16);
  print_table(rows, n);
  if (outcome == VOX_TRAIN_STOPPED) {
    printf("\nstopped on request; run `vox demo` again to resume\n");
    return 0;
  }
  snprintf(cmd, sizeof cmd, "ls -1 '%s'/checkpoints/s*-step*.h5 2>/dev/null | sort | tail -n 1", run_dir);
  if (run_script(cmd, false, last, sizeof last) == 0 && last[0])
    printf("\nfinal checkpoint (every parameter, LoRA adapters included): %s\n", last);
  printf("hypotheses of the last eval of each stage: %s/eval_<stage>_hyp.jsonl; curves: vox plot %s\n", run_dir, run_dir);
  return 0;
}
VOX_CLI_COMMAND("demo", "the main job: synthetic speech corpus -> MinMo speech-to-text stages -> dev WER/QA table", cmd_demo)
