/* `vox data check MANIFEST... [--no-files]`: validates JSONL manifests and prints counts per task, hours,
 * every bad line as file:line and missing files; exits 1 when anything is wrong. */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "data/manifest.h"

static void usage(FILE *f) {
  fprintf(f,
          "usage: vox data check MANIFEST.jsonl... [--no-files]\n"
          "  Validates every line (JSON, required keys per task, types, durations) and, unless --no-files,\n"
          "  that the audio / speech_tokens / *_audio / *_file files exist. Prints counts per task and total hours.\n"
          "  Exit status 1 when any line is bad or any file is missing.\n");
}

static int data_check(int argc, char **argv) {
  bool check_files = true;
  int n_paths = 0;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--no-files")) check_files = false;
    else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
      usage(stdout);
      return 0;
    } else if (argv[i][0] == '-') {
      fprintf(stderr, "vox data check: unknown option '%s'\n", argv[i]);
      usage(stderr);
      return 2;
    } else n_paths++;
  }
  if (!n_paths) {
    usage(stderr);
    return 2;
  }
  int rc = 0;
  for (int i = 1; i < argc; i++) {
    if (argv[i][0] == '-') continue;
    vox_manifest_report *r = NULL;
    if (vox_manifest_validate(argv[i], check_files, &r) != VOX_OK) return vox_cli_fail("data check");
    for (int64_t k = 0; k < r->n_issues; k++) {
      if (r->issues[k].line) fprintf(stderr, "%s:%d: %s\n", r->path, r->issues[k].line, r->issues[k].message);
      else fprintf(stderr, "%s: %s\n", r->path, r->issues[k].message);
    }
    printf("%s\n", r->path);
    for (int t = 0; t < r->n_tasks; t++)
      printf("  task %-10s %8lld samples %10.3f hours\n", r->task_names[t], (long long)r->task_counts[t],
             r->task_seconds[t] / 3600.0);
    printf("  total           %8lld samples %10.3f hours\n", (long long)r->n_good, r->total_seconds / 3600.0);
    printf("  lines %lld, good %lld, bad %lld, ", (long long)r->n_lines, (long long)r->n_good, (long long)r->n_bad);
    if (check_files) printf("missing files %lld\n", (long long)r->n_missing_files);
    else printf("missing files not checked (--no-files)\n");
    if (r->n_issues) rc = 1;
    vox_manifest_report_free(r);
  }
  return rc;
}

static int cmd_data(int argc, char **argv) {
  if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
    usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  if (!strcmp(argv[1], "check")) return data_check(argc - 1, argv + 1);
  fprintf(stderr, "vox data: unknown subcommand '%s' (known: check)\n", argv[1]);
  usage(stderr);
  return 2;
}
VOX_CLI_COMMAND("data", "data tools: `vox data check MANIFEST` validates a JSONL manifest", cmd_data)
