/* `vox`: dispatches to the registered subcommands; `vox --help` lists them, `vox version` describes the build.
 * Nothing here but argument routing. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "core/status.h"
#include "core/version.h"

#define MAX_COMMANDS 64
static struct {
  const char *name, *summary;
  vox_cli_fn fn;
} commands[MAX_COMMANDS];
static int n_commands;

void vox_cli_register(const char *name, const char *summary, vox_cli_fn fn) {
  if (n_commands < MAX_COMMANDS) {
    commands[n_commands].name = name;
    commands[n_commands].summary = summary;
    commands[n_commands].fn = fn;
    n_commands++;
  }
}

int vox_cli_fail(const char *name) {
  fprintf(stderr, "vox %s: %s\n", name, vox_last_error());
  return 1;
}

static int cmd_version(int argc, char **argv) {
  printf("vox %s (%s build)\nbackends: %s\n", vox_version(), vox_build_type(), vox_build_backends());
  return 0;
}
VOX_CLI_COMMAND("version", "print the version, build type and compiled-in backends", cmd_version)

static void usage(FILE *f) {
  fprintf(f, "usage: vox <command> [args]\n\ncommands:\n");
  /* Registration order follows link order; list alphabetically for the reader. */
  for (int i = 0; i < n_commands; i++)
    for (int j = i + 1; j < n_commands; j++)
      if (strcmp(commands[j].name, commands[i].name) < 0) {
        __typeof__(commands[0]) t = commands[i];
        commands[i] = commands[j];
        commands[j] = t;
      }
  for (int i = 0; i < n_commands; i++) fprintf(f, "  %-12s %s\n", commands[i].name, commands[i].summary);
  fprintf(f, "\nRun `vox <command> --help` for a command's options.\n");
}

int main(int argc, char **argv) {
  /* libgomp reads OMP_WAIT_POLICY once, when it loads. Spinning OpenMP workers steal the cores OpenBLAS needs
   * between kernels (a training step ran 1.7x slower on 2 cores), so vox defaults to passive waiting by
   * re-executing itself once with the variable set; an explicit setting is respected. */
  if (!getenv("OMP_WAIT_POLICY")) {
    setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
    execv("/proc/self/exe", argv); /* returns only on failure: then carry on as we are */
  }
  if (argc < 2) {
    usage(stderr);
    return 2;
  }
  if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
    usage(stdout);
    return 0;
  }
  if (!strcmp(argv[1], "--version")) return cmd_version(argc - 1, argv + 1);
  for (int i = 0; i < n_commands; i++)
    if (!strcmp(commands[i].name, argv[1])) return commands[i].fn(argc - 1, argv + 1);
  fprintf(stderr, "vox: unknown command '%s'\n\n", argv[1]);
  usage(stderr);
  return 2;
}
