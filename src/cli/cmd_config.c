/* `vox config RECIPE [key.path=value ...]`: prints the fully resolved configuration (extends merged,
 * overrides applied, references resolved), exactly what a run would use and store in its checkpoints. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "io/config.h"

static int cmd_config(int argc, char **argv) {
  if (argc < 2 || !strcmp(argv[1], "--help")) {
    fprintf(argc < 2 ? stderr : stdout,
            "usage: vox config RECIPE.yaml [a.b=value | +a.b=value | ~a.b ...]\n"
            "Prints the resolved configuration as YAML.\n");
    return argc < 2 ? 2 : 0;
  }
  vox_config *c = NULL;
  if (vox_config_load(argv[1], argc - 2, argv + 2, &c) != VOX_OK) return vox_cli_fail("config");
  char *yaml = NULL;
  if (vox_config_to_yaml(c, &yaml) != VOX_OK) {
    vox_config_free(c);
    return vox_cli_fail("config");
  }
  fputs(yaml, stdout);
  free(yaml);
  vox_config_free(c);
  return 0;
}
VOX_CLI_COMMAND("config", "print a recipe's resolved configuration (extends, overrides, references)", cmd_config)
