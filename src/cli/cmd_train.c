/* `vox train RECIPE.yaml [a.b=value ...] [--stop-after N]`: resolves the recipe (extends, overrides, references)
 * and runs its stages; SIGTERM/SIGUSR1 checkpoint at the next step boundary and exit 0. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "dist/train_dist.h"
#include "io/config.h"
#include "train/recipe.h"
#include "train/task.h"
#include "train/trainer.h"

static int usage(FILE *f) {
  fprintf(f, "usage: vox train RECIPE.yaml [a.b=value | +a.b=value | ~a.b ...] [--stop-after N]\n"
             "Runs the recipe's stages (docs/recipes.md), resuming from the newest valid checkpoint in run_dir\n"
             "(resume: auto). SIGTERM or SIGUSR1: checkpoint at the next step boundary and exit 0.\n"
             "  --stop-after N   checkpoint and stop after N steps of this invocation\n"
             "tasks:");
  for (int i = 0; i < vox_task_count(); i++) fprintf(f, "\n  %-8s %s", vox_task_at(i)->name, vox_task_at(i)->summary);
  fputc('\n', f);
  return f == stdout ? 0 : 2;
}

static int cmd_train(int argc, char **argv) {
  if (argc < 2) return usage(stderr);
  if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) return usage(stdout);
  char **overrides = calloc((size_t)argc, sizeof *overrides);
  int n_over = 0;
  long long stop_after = 0;
  for (int i = 2; i < argc; i++) {
    if (!strcmp(argv[i], "--stop-after")) {
      char *end = NULL;
      if (i + 1 >= argc || (stop_after = strtoll(argv[i + 1], &end, 10), *end) || stop_after < 1) {
        fprintf(stderr, "vox train: --stop-after needs a positive step count\n");
        free(overrides);
        return 2;
      }
      i++;
    } else if (!strncmp(argv[i], "--", 2)) {
      fprintf(stderr, "vox train: unknown option '%s'\n", argv[i]);
      free(overrides);
      return usage(stderr);
    } else {
      overrides[n_over++] = argv[i];
    }
  }
  vox_config *cfg = NULL;
  vox_status st = vox_config_load(argv[1], n_over, overrides, &cfg);
  free(overrides);
  if (st != VOX_OK) return vox_cli_fail("train");
  if (vox_train_install_signal_handlers() != VOX_OK) {
    vox_config_free(cfg);
    return vox_cli_fail("train");
  }
  /* Data parallelism: under mpirun/srun with several ranks, MPI (CPU) or NCCL (CUDA); otherwise the local
   * communicator, which never initialises MPI. Recipe keys: distributed.{bucket_mb, zero} (docs/distributed.md). */
  vox_train_dist seam;
  vox_train_dist_ctx *dist = NULL;
  st = vox_train_dist_new(cfg, vox_recipe_device(cfg), &dist, &seam);
  if (st != VOX_OK) {
    vox_config_free(cfg);
    return vox_cli_fail("train");
  }
  vox_train_opts opts = {.dist = &seam, .stop_after = stop_after, .out = stdout};
  vox_train_outcome outcome;
  st = vox_train_run(cfg, &opts, &outcome);
  vox_config_free(cfg);
  if (st != VOX_OK) {
    int rc = vox_cli_fail("train");
    vox_train_dist_abort(dist, vox_last_error()); /* ends the other ranks (returns only at world 1) */
    vox_train_dist_free(dist);
    return rc;
  }
  vox_train_dist_free(dist);
  return 0;
}
VOX_CLI_COMMAND("train", "train a recipe's stages (checkpoints, exact resume, metrics.jsonl)", cmd_train)
