/* The `vox` program's subcommand registry: each cli/cmd_*.c registers one command with VOX_CLI_COMMAND.
 * Commands parse their own arguments, call the library, print the library's error message and return 1. */
#ifndef VOX_CLI_CLI_H
#define VOX_CLI_CLI_H

/* argv[0] is the command name. Returns the process exit code. */
typedef int (*vox_cli_fn)(int argc, char **argv);

void vox_cli_register(const char *name, const char *summary, vox_cli_fn fn);
#define VOX_CLI_COMMAND(name, summary, fn) \
  __attribute__((constructor)) static void vox_cli_register_##fn(void) { vox_cli_register(name, summary, fn); }

/* Prints "vox NAME: <last library error>" to stderr and returns 1. */
int vox_cli_fail(const char *name);

#endif
