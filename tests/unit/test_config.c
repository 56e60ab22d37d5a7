/* The YAML config tree: parsing with file:line, extends, overrides, references, typed reads and the errors
 * a researcher sees for malformed recipes. */
#include "vox_test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io/config.h"

static char tmpdir[256];

static void write_file(const char *name, const char *text) {
  char path[512];
  snprintf(path, sizeof path, "%s/%s", tmpdir, name);
  FILE *f = fopen(path, "w");
  cr_assert(f);
  fputs(text, f);
  fclose(f);
}

static const char *path_of(const char *name) {
  static char path[512];
  snprintf(path, sizeof path, "%s/%s", tmpdir, name);
  return path;
}

static void setup(void) {
  snprintf(tmpdir, sizeof tmpdir, "/tmp/vox_config_XXXXXX");
  cr_assert(mkdtemp(tmpdir));
}
static void teardown(void) {
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
  (void)system(cmd);
}

TestSuite(config, .init = setup, .fini = teardown);

Test(config, extends_merge_overrides_and_refs) {
  write_file("model.yaml", "model:\n  d_model: 64\n  layers: 2\n  name: tiny\noptim:\n  lr: 1.0e-3\n  betas: [0.9, 0.95]\n");
  write_file("recipe.yaml",
             "extends: model.yaml\nmodel:\n  layers: 4\nrun_dir: runs/${model.name}-${model.layers}\n"
             "optim:\n  lr: 3e-4\n");
  char *ov[] = {"optim.lr=5e-4", "+train.steps=10", "~model.name"};
  vox_config *c = NULL;
  /* The reference to model.name is resolved after overrides, so deleting it must fail clearly. */
  cr_assert_eq(vox_config_load(path_of("recipe.yaml"), 3, ov, &c), VOX_ERR_NOT_FOUND);
  cr_assert(strstr(vox_last_error(), "model.name") != NULL, "%s", vox_last_error());
  VT_OK(vox_config_load(path_of("recipe.yaml"), 2, ov, &c));
  int64_t layers, d, steps;
  double lr;
  const char *run_dir;
  VT_OK(vox_config_int(c, "model.layers", 0, &layers));
  VT_OK(vox_config_int(c, "model.d_model", 0, &d));
  VT_OK(vox_config_int(c, "train.steps", 0, &steps));
  VT_OK(vox_config_float(c, "optim.lr", 0, &lr));
  VT_OK(vox_config_string(c, "run_dir", NULL, &run_dir));
  cr_assert_eq(layers, 4);
  cr_assert_eq(d, 64);
  cr_assert_eq(steps, 10);
  cr_assert_float_eq(lr, 5e-4, 1e-12);
  cr_assert_str_eq(run_dir, "runs/tiny-4");
  double beta2;
  VT_OK(vox_config_float(c, "optim.betas.1", 0, &beta2));
  cr_assert_float_eq(beta2, 0.95, 1e-12);
  /* The layer count still says where it was written. */
  vox_config *n = vox_config_get(c, "model.layers");
  cr_assert(strstr(n->file, "recipe.yaml") && n->line == 3, "%s:%d", n->file, n->line);
  char *yaml = NULL;
  VT_OK(vox_config_to_yaml(c, &yaml));
  vox_config *back = NULL;
  VT_OK(vox_config_parse_string(yaml, "<emitted>", &back));
  VT_OK(vox_config_int(back, "model.layers", 0, &layers));
  cr_assert_eq(layers, 4);
  free(yaml);
  vox_config_free(back);
  vox_config_free(c);
}

Test(config, errors_name_file_line_and_key) {
  write_file("bad_type.yaml", "optim:\n  lr: fast\n");
  vox_config *c = NULL;
  double lr;
  VT_OK(vox_config_load(path_of("bad_type.yaml"), 0, NULL, &c));
  cr_assert_eq(vox_config_float(c, "optim.lr", 0, &lr), VOX_ERR_PARSE);
  cr_assert(strstr(vox_last_error(), "bad_type.yaml:2") && strstr(vox_last_error(), "optim.lr") &&
                strstr(vox_last_error(), "expected a number"),
            "%s", vox_last_error());
  const char *allowed[] = {"learning_rate", "betas", NULL};
  cr_assert_eq(vox_config_check_keys(vox_config_get(c, "optim"), allowed), VOX_ERR_PARSE);
  cr_assert(strstr(vox_last_error(), "unknown key optim.lr"), "%s", vox_last_error());
  int64_t steps;
  cr_assert_eq(vox_config_int_req(c, "train.steps", &steps), VOX_ERR_NOT_FOUND);
  cr_assert(strstr(vox_last_error(), "train.steps"), "%s", vox_last_error());
  vox_config_free(c);

  write_file("malformed.yaml", "a: 1\nb: [1, 2\nc: 3\n");
  cr_assert_eq(vox_config_load(path_of("malformed.yaml"), 0, NULL, &c), VOX_ERR_PARSE);
  cr_assert(strstr(vox_last_error(), "malformed.yaml:"), "%s", vox_last_error());
  write_file("dup.yaml", "a: 1\na: 2\n");
  cr_assert_eq(vox_config_load(path_of("dup.yaml"), 0, NULL, &c), VOX_ERR_PARSE);
  cr_assert(strstr(vox_last_error(), "dup.yaml:2") && strstr(vox_last_error(), "duplicate key"), "%s", vox_last_error());
  write_file("cycle_a.yaml", "extends: cycle_b.yaml\n");
  write_file("cycle_b.yaml", "extends: cycle_a.yaml\n");
  cr_assert_eq(vox_config_load(path_of("cycle_a.yaml"), 0, NULL, &c), VOX_ERR_PARSE);
  cr_assert_eq(vox_config_load(path_of("missing.yaml"), 0, NULL, &c), VOX_ERR_IO);
  cr_assert(strstr(vox_last_error(), "missing.yaml"), "%s", vox_last_error());
}

Test(config, override_errors) {
  write_file("r.yaml", "a:\n  b: 1\n");
  vox_config *c = NULL;
  char *typo[] = {"a.c=2"};
  cr_assert_eq(vox_config_load(path_of("r.yaml"), 1, typo, &c), VOX_ERR_NOT_FOUND);
  cr_assert(strstr(vox_last_error(), "a.c"), "%s", vox_last_error());
  char *exists[] = {"+a.b=2"};
  cr_assert_eq(vox_config_load(path_of("r.yaml"), 1, exists, &c), VOX_ERR_INVALID);
  char *noeq[] = {"a.b"};
  cr_assert_eq(vox_config_load(path_of("r.yaml"), 1, noeq, &c), VOX_ERR_PARSE);
  char *list[] = {"a.b=[1, 2, 3]"};
  VT_OK(vox_config_load(path_of("r.yaml"), 1, list, &c));
  cr_assert_eq(vox_config_get(c, "a.b")->kind, VOX_CONFIG_SEQ);
  vox_config_free(c);
}

Test(config, list_items_by_index_or_name) {
  write_file("p.yaml", "stages:\n  - name: prealign\n    steps: 10\n  - name: sft\n    lora: {rank: 8}\n");
  vox_config *c = NULL;
  char *ov[] = {"stages.sft.lora.rank=16", "stages.0.steps=20", "+stages.prealign.eval={every: 5}"};
  VT_OK(vox_config_load(path_of("p.yaml"), 3, ov, &c));
  int64_t v;
  VT_OK(vox_config_int(c, "stages.1.lora.rank", 0, &v));
  cr_assert_eq(v, 16);
  VT_OK(vox_config_int(c, "stages.prealign.steps", 0, &v));
  cr_assert_eq(v, 20);
  VT_OK(vox_config_int(c, "stages.0.eval.every", 0, &v));
  cr_assert_eq(v, 5);
  cr_assert_null(vox_config_get(c, "stages.nosuch"));
  vox_config_free(c);
  char *bad[] = {"stages.nosuch.steps=3"};
  cr_assert_neq(vox_config_load(path_of("p.yaml"), 1, bad, &c), VOX_OK);
}
