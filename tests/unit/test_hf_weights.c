/* Registry subtrees in HF form: save/load round trips (f32, bf16, sharded), the index layout, torch-written sharded
 * fixtures, renaming and ignore globs, and all-or-nothing loading with every problem listed in one message. */
#include "vox_test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/hf_weights.h"
#include "io/npy.h"
#include "io/safetensors.h"

static char dir[128];
static void setup(void) {
  snprintf(dir, sizeof dir, "/tmp/vox_hfw_XXXXXX");
  cr_assert(mkdtemp(dir));
}
static void teardown(void) {
  char cmd[200];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  (void)system(cmd);
}
TestSuite(hf_weights, .init = setup, .fini = teardown);

static const char *sub(const char *name) {
  static char buf[4][256];
  static int k;
  k = (k + 1) % 4;
  snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
  return buf[k];
}

static bool exists(const char *p) { return access(p, F_OK) == 0; }

static void assert_error_mentions(vox_status st, const char *a, const char *b) {
  cr_assert(st != VOX_OK, "expected an error");
  const char *m = vox_last_error();
  cr_assert(strstr(m, a), "error '%s' should mention '%s'", m, a);
  if (b) cr_assert(strstr(m, b), "error '%s' should mention '%s'", m, b);
}

/* A small Qwen2-like subtree under `prefix`, plus one parameter outside it; values from `seed`. */
static vox_params *make_reg(const char *prefix, uint64_t seed) {
  vox_params *reg = NULL;
  VT_OK(vox_params_new(&reg));
  static const struct {
    const char *name;
    int ndim;
    int64_t shape[2];
  } spec[] = {
      {"model.embed_tokens.weight", 2, {10, 4}},
      {"model.layers.0.self_attn.q_proj.weight", 2, {4, 4}},
      {"model.layers.0.self_attn.q_proj.bias", 1, {4}},
      {"model.layers.0.mlp.down_proj.weight", 2, {4, 6}},
      {"model.norm.weight", 1, {4}},
      {"lm_head.weight", 2, {10, 4}},
  };
  vox_rng rng = vox_rng_make(seed);
  char name[VOX_PARAM_NAME_MAX];
  for (size_t i = 0; i < sizeof spec / sizeof spec[0]; i++) {
    vox_tensor *t = NULL;
    VT_OK(vox_params_create(reg, vox_params_path(name, sizeof name, "%s%s", prefix, spec[i].name), VOX_CPU,
                            spec[i].ndim, spec[i].shape, &t));
    VT_OK(vox_init_normal(t, &rng, 0.0, 1.0));
  }
  vox_tensor *t = NULL;
  VT_OK(vox_params_create(reg, "projector.linear.weight", VOX_CPU, 2, (int64_t[]){3, 4}, &t));
  VT_OK(vox_init_normal(t, &rng, 0.0, 1.0));
  return reg;
}

/* Every parameter of a equals the same-named one of b (within tol). */
static void assert_regs_equal(const vox_params *a, const vox_params *b, const char *prefix, double rtol) {
  for (int i = 0; i < a->count; i++) {
    if (strncmp(a->items[i].name, prefix, strlen(prefix)) != 0) continue;
    vox_tensor *tb = vox_params_get(b, a->items[i].name);
    cr_assert(tb, "%s missing", a->items[i].name);
    vt_assert_close(tb, a->items[i].tensor, rtol ? 1e-6 : 0, rtol, a->items[i].name);
  }
}

/* Snapshot of all values, to prove a failed load changed nothing. */
static float *snapshot(const vox_params *reg, int64_t *n) {
  *n = vox_params_numel(reg, false);
  float *buf = malloc(sizeof(float) * (size_t)*n), *p = buf;
  for (int i = 0; i < reg->count; i++) {
    VT_OK(vox_tensor_read_f32(reg->items[i].tensor, p));
    p += vox_tensor_numel(reg->items[i].tensor);
  }
  return buf;
}
static void assert_unchanged(const vox_params *reg, const float *before, int64_t n) {
  int64_t m;
  float *now = snapshot(reg, &m);
  cr_assert_eq(m, n);
  cr_assert_eq(memcmp(now, before, sizeof(float) * (size_t)n), 0, "a failed load changed the registry");
  free(now);
}

Test(hf_weights, round_trip_f32_with_prefix) {
  vox_params *a = make_reg("llm.", 1), *b = make_reg("llm.", 2);
  VT_OK(vox_params_set_trainable(b, "llm.model.norm.*", false, NULL));
  char out[256];
  snprintf(out, sizeof out, "%s", sub("qwen"));
  VT_OK(vox_hf_save_params(a, "llm.", out, VOX_F32, 0));
  cr_assert(exists(sub("qwen/model.safetensors")));
  cr_assert(!exists(sub("qwen/model.safetensors.index.json")));
  /* Names in the file are below the prefix; the projector is not saved. */
  vox_safetensors *st = NULL;
  VT_OK(vox_safetensors_open(sub("qwen/model.safetensors"), &st));
  cr_assert_eq(vox_safetensors_count(st), 6);
  cr_assert(vox_safetensors_has(st, "model.embed_tokens.weight"));
  cr_assert(!vox_safetensors_has(st, "projector.linear.weight"));
  cr_assert_str_eq(vox_safetensors_metadata(st, "format"), "pt");
  vox_safetensors_close(st);

  float pv[12];
  VT_OK(vox_tensor_read_f32(vox_params_get(b, "projector.linear.weight"), pv));
  VT_OK(vox_hf_load_params(b, "llm.", out, NULL));
  assert_regs_equal(a, b, "llm.", 0);
  cr_assert(!vox_params_get(b, "llm.model.norm.weight")->requires_grad, "requires_grad untouched");
  cr_assert(vox_params_get(b, "llm.model.embed_tokens.weight")->requires_grad, "requires_grad untouched");
  float pv2[12];
  VT_OK(vox_tensor_read_f32(vox_params_get(b, "projector.linear.weight"), pv2));
  cr_assert_eq(memcmp(pv, pv2, sizeof pv), 0, "parameters outside the prefix are not touched");
  /* The file itself can be named too. */
  vox_params *c = make_reg("llm.", 3);
  VT_OK(vox_hf_load_params(c, "llm.", sub("qwen/model.safetensors"), NULL));
  assert_regs_equal(a, c, "llm.", 0);
  vox_params_free(a);
  vox_params_free(b);
  vox_params_free(c);
}

Test(hf_weights, round_trip_bf16_into_bf16_and_f32_params) {
  vox_params *a = make_reg("", 1), *b = make_reg("", 2);
  VT_OK(vox_hf_save_params(a, "model.", sub("bf"), VOX_BF16, 0));
  vox_safetensors *st = NULL;
  VT_OK(vox_safetensors_open(sub("bf/model.safetensors"), &st));
  vox_st_info in;
  VT_OK(vox_safetensors_info(st, "norm.weight", &in));
  cr_assert_eq(in.dtype, VOX_ST_BF16);
  vox_safetensors_close(st);
  /* A registry with one bf16 parameter: loading converts into each parameter's own dtype. */
  vox_tensor *old = vox_params_get(b, "model.norm.weight"), *bf = NULL;
  VT_OK(vox_tensor_to(old, VOX_CPU, VOX_BF16, &bf));
  bf->requires_grad = true;
  vox_params *c = NULL;
  VT_OK(vox_params_new(&c));
  for (int i = 0; i < b->count; i++)
    VT_OK(vox_params_add(c, b->items[i].name, strcmp(b->items[i].name, "model.norm.weight") ? b->items[i].tensor : bf));
  VT_OK(vox_hf_load_params(c, "model.", sub("bf"), NULL));
  assert_regs_equal(a, c, "model.", 1.0 / 128);
  cr_assert_eq(vox_params_get(c, "model.norm.weight")->dtype, VOX_BF16);
  vox_tensor_release(bf);
  vox_params_free(a);
  vox_params_free(b);
  vox_params_free(c);
}

static char *slurp(const char *path) {
  FILE *f = fopen(path, "rb");
  cr_assert(f, "%s", path);
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *s = malloc((size_t)n + 1);
  cr_assert(fread(s, 1, (size_t)n, f) == (size_t)n);
  s[n] = 0;
  fclose(f);
  return s;
}

Test(hf_weights, sharded_save_layout_and_load) {
  vox_params *a = make_reg("", 1), *b = make_reg("", 2);
  /* f32 sizes in registration order: embed 160, q 64, q bias 16, down 96, norm 16, lm_head 160, projector 48 = 560
   * bytes. Greedy 250-byte shards: [embed, q, q bias] [down, norm] [lm_head, projector]. */
  char out[256];
  snprintf(out, sizeof out, "%s", sub("sh"));
  VT_OK(vox_hf_save_params(a, "", out, VOX_F32, 1 << 20)); /* fits: one file first */
  cr_assert(exists(sub("sh/model.safetensors")));
  VT_OK(vox_hf_save_params(a, "", out, VOX_F32, 250));
  cr_assert(!exists(sub("sh/model.safetensors")), "the single file of the earlier save is removed");
  cr_assert(exists(sub("sh/model-00001-of-00003.safetensors")));
  cr_assert(exists(sub("sh/model-00002-of-00003.safetensors")));
  cr_assert(exists(sub("sh/model-00003-of-00003.safetensors")));
  char *idx = slurp(sub("sh/model.safetensors.index.json"));
  const char *want =
      "{\n"
      "  \"metadata\": {\n"
      "    \"total_size\": 560\n"
      "  },\n"
      "  \"weight_map\": {\n"
      "    \"lm_head.weight\": \"model-00003-of-00003.safetensors\",\n"
      "    \"model.embed_tokens.weight\": \"model-00001-of-00003.safetensors\",\n"
      "    \"model.layers.0.mlp.down_proj.weight\": \"model-00002-of-00003.safetensors\",\n"
      "    \"model.layers.0.self_attn.q_proj.bias\": \"model-00001-of-00003.safetensors\",\n"
      "    \"model.layers.0.self_attn.q_proj.weight\": \"model-00001-of-00003.safetensors\",\n"
      "    \"model.norm.weight\": \"model-00002-of-00003.safetensors\",\n"
      "    \"projector.linear.weight\": \"model-00003-of-00003.safetensors\"\n"
      "  }\n"
      "}\n";
  cr_assert_str_eq(idx, want);
  free(idx);
  VT_OK(vox_hf_load_params(b, "", out, NULL));
  assert_regs_equal(a, b, "", 0);
  /* bf16 halves the bytes (280): two shards now; the three of the earlier save are removed. */
  VT_OK(vox_hf_save_params(a, "", out, VOX_BF16, 250));
  cr_assert(exists(sub("sh/model-00001-of-00002.safetensors")));
  cr_assert(!exists(sub("sh/model-00001-of-00003.safetensors")));
  cr_assert(!exists(sub("sh/model-00003-of-00003.safetensors")));
  VT_OK(vox_hf_load_params(b, "", sub("sh/model.safetensors.index.json"), NULL));
  assert_regs_equal(a, b, "", 1.0 / 128);
  /* Back to one file: the index and the shards go. */
  VT_OK(vox_hf_save_params(a, "", out, VOX_F32, 0));
  cr_assert(exists(sub("sh/model.safetensors")));
  cr_assert(!exists(sub("sh/model.safetensors.index.json")));
  cr_assert(!exists(sub("sh/model-00002-of-00002.safetensors")));
  vox_params_free(a);
  vox_params_free(b);
}

Test(hf_weights, torch_written_sharded_fixture) {
  vox_params *reg = NULL;
  VT_OK(vox_params_new(&reg));
  static const struct {
    const char *name;
    int ndim;
    int64_t shape[2];
  } spec[] = {{"model.embed_tokens.weight", 2, {6, 4}},
              {"model.layers.0.mlp.up_proj.weight", 2, {8, 4}},
              {"model.layers.0.mlp.up_proj.bias", 1, {8}},
              {"model.norm.weight", 1, {4}}};
  char name[256];
  for (int i = 0; i < 4; i++) {
    VT_OK(vox_params_create(reg, vox_params_path(name, sizeof name, "llm.%s", spec[i].name), VOX_CPU, spec[i].ndim,
                            spec[i].shape, NULL));
    VT_OK(vox_tensor_fill_(reg->items[i].tensor, 0.0));
  }
  VT_OK(vox_hf_load_params(reg, "llm.", vt_fixture("safetensors/sharded"), NULL));
  for (int i = 0; i < 4; i++) {
    char npy[512];
    snprintf(npy, sizeof npy, "%s", vt_fixture("safetensors/sharded/expected/"));
    strncat(npy, spec[i].name, sizeof npy - strlen(npy) - 5);
    strcat(npy, ".npy");
    vox_npy ref;
    VT_OK(vox_npy_load(npy, &ref));
    vt_assert_close_f32(reg->items[i].tensor, ref.data, 0, 0, spec[i].name);
    vox_npy_free(&ref);
  }
  vox_params_free(reg);
}

/* ---- all-or-nothing loading and its messages ----------------------------------------------------------------- */

Test(hf_weights, missing_unexpected_misshaped_in_one_message) {
  vox_params *a = make_reg("", 1);
  VT_OK(vox_hf_save_params(a, "", sub("m"), VOX_F32, 0));
  /* The target: lm_head absent, an extra parameter, and q_proj of another shape. */
  vox_params *b = NULL;
  VT_OK(vox_params_new(&b));
  vox_rng rng = vox_rng_make(7);
  for (int i = 0; i < a->count; i++) {
    const char *n = a->items[i].name;
    if (strcmp(n, "lm_head.weight") == 0) continue;
    vox_tensor *t = NULL, *src = a->items[i].tensor;
    if (strcmp(n, "model.layers.0.self_attn.q_proj.weight") == 0)
      VT_OK(vox_params_create(b, n, VOX_CPU, 2, (int64_t[]){4, 8}, &t));
    else
      VT_OK(vox_params_create(b, n, VOX_CPU, src->ndim, src->shape, &t));
    VT_OK(vox_init_normal(t, &rng, 0, 1));
  }
  VT_OK(vox_params_create(b, "model.extra.weight", VOX_CPU, 1, (int64_t[]){3}, NULL));
  VT_OK(vox_init_constant(vox_params_get(b, "model.extra.weight"), 0.5));
  int64_t n;
  float *before = snapshot(b, &n);
  vox_status st = vox_hf_load_params(b, "", sub("m"), NULL);
  cr_assert_eq(st, VOX_ERR_SHAPE);
  const char *m = vox_last_error();
  cr_log_info("%s", m);
  cr_assert(strstr(m, sub("m/model.safetensors")), "%s", m);
  cr_assert(strstr(m, "model.extra.weight f32[3]"), "missing listed with shape: %s", m);
  cr_assert(strstr(m, "lm_head.weight F32[10,4]"), "unexpected listed with shape: %s", m);
  cr_assert(strstr(m, "model.layers.0.self_attn.q_proj.weight: file F32[4,4], model f32[4,8]"), "%s", m);
  assert_unchanged(b, before, n);
  free(before);
  vox_params_free(a);
  vox_params_free(b);
}

Test(hf_weights, missing_tensor_and_ignore_missing) {
  vox_params *a = make_reg("", 1), *b = make_reg("", 2);
  /* Save only the decoder (no lm_head, as with tied embeddings). */
  vox_params *dec = NULL;
  VT_OK(vox_params_new(&dec));
  for (int i = 0; i < a->count; i++)
    if (strncmp(a->items[i].name, "model.", 6) == 0) VT_OK(vox_params_add(dec, a->items[i].name, a->items[i].tensor));
  VT_OK(vox_hf_save_params(dec, "", sub("t"), VOX_F32, 0));
  int64_t n;
  float *before = snapshot(b, &n);
  /* The projector is in b's registry and under the empty prefix: missing too. */
  vox_status st = vox_hf_load_params(b, "", sub("t"), NULL);
  assert_error_mentions(st, "lm_head.weight f32[10,4]", "projector.linear.weight");
  cr_assert(strstr(vox_last_error(), "2 parameters missing"), "%s", vox_last_error());
  cr_assert_eq(st, VOX_ERR_NOT_FOUND);
  assert_unchanged(b, before, n);
  const char *ignore[] = {"lm_head.*", "projector.*", NULL};
  vox_hf_load_opts o = {.strict = true, .ignore_missing = ignore};
  VT_OK(vox_hf_load_params(b, "", sub("t"), &o));
  assert_regs_equal(dec, b, "model.", 0);
  free(before);
  vox_params_free(a);
  vox_params_free(b);
  vox_params_free(dec);
}

static const char *strip_model(const char *file_name, char *buf, size_t cap, void *ctx) {
  (void)ctx;
  if (strncmp(file_name, "model.", 6) != 0) return NULL; /* skips lm_head and the projector */
  snprintf(buf, cap, "decoder.%s", file_name + 6);
  return buf;
}

Test(hf_weights, unexpected_strict_lenient_ignore_and_rename) {
  vox_params *a = make_reg("", 1);
  VT_OK(vox_hf_save_params(a, "", sub("u"), VOX_F32, 0));
  /* Target: only the decoder, under "llm." with "model." renamed to "decoder.". */
  vox_params *b = NULL;
  VT_OK(vox_params_new(&b));
  char name[256];
  for (int i = 0; i < a->count; i++) {
    const char *nm = a->items[i].name;
    if (strncmp(nm, "model.", 6) != 0) continue;
    vox_tensor *src = a->items[i].tensor;
    VT_OK(vox_params_create(b, vox_params_path(name, sizeof name, "llm.decoder.%s", nm + 6), VOX_CPU, src->ndim,
                            src->shape, NULL));
    VT_OK(vox_tensor_fill_(b->items[b->count - 1].tensor, 0.0));
  }
  vox_hf_load_opts strict = {.strict = true};
  /* Without renaming nothing matches: every file tensor is unexpected, every parameter missing. */
  vox_status st = vox_hf_load_params(b, "llm.", sub("u"), &strict);
  assert_error_mentions(st, "7 unexpected tensors", "5 parameters missing");
  cr_assert(strstr(vox_last_error(), "... and 1 more"), "long lists are cut: %s", vox_last_error());
  /* Renaming skips lm_head/projector and maps the rest. */
  vox_hf_load_opts ren = {.strict = true, .rename = strip_model};
  VT_OK(vox_hf_load_params(b, "llm.", sub("u"), &ren));
  vt_assert_close(vox_params_get(b, "llm.decoder.norm.weight"), vox_params_get(a, "model.norm.weight"), 0, 0, "renamed");
  /* Identity names under the prefix "llm.decoder." cannot match "model.*" names: with ignore_unexpected for the
   * non-model tensors and a rename that only strips "model.", strict passes. */
  const char *ign[] = {"lm_head.*", "projector.*", NULL};
  vox_hf_load_opts ign_o = {.strict = true, .ignore_unexpected = ign};
  st = vox_hf_load_params(b, "llm.decoder.", sub("u"), &ign_o);
  assert_error_mentions(st, "5 unexpected", "model.norm.weight");
  cr_assert(!strstr(vox_last_error(), "lm_head"), "ignored tensors are not reported: %s", vox_last_error());
  /* Lenient: unexpected tensors are skipped with a warning, the rest loads. */
  VT_OK(vox_params_set_trainable(b, "*", false, NULL));
  vox_hf_load_opts lenient = {.strict = false, .rename = strip_model};
  VT_OK(vox_hf_load_params(b, "llm.", sub("u"), &lenient));
  cr_assert(!vox_params_get(b, "llm.decoder.norm.weight")->requires_grad);
  vox_params_free(a);
  vox_params_free(b);
}

Test(hf_weights, index_naming_a_missing_shard_and_bad_paths) {
  vox_params *a = make_reg("", 1), *b = make_reg("", 2);
  VT_OK(vox_hf_save_params(a, "", sub("s"), VOX_F32, 250));
  cr_assert(exists(sub("s/model-00003-of-00003.safetensors")));
  unlink(sub("s/model-00002-of-00003.safetensors"));
  int64_t n;
  float *before = snapshot(b, &n);
  assert_error_mentions(vox_hf_load_params(b, "", sub("s"), NULL), sub("s/model.safetensors.index.json"),
                        "model-00002-of-00003.safetensors");
  assert_unchanged(b, before, n);
  /* An index whose weight_map puts a tensor in a shard that lacks it. */
  FILE *f = fopen(sub("s/model.safetensors.index.json"), "w");
  fputs("{\"metadata\":{},\"weight_map\":{\"model.norm.weight\":\"model-00001-of-00003.safetensors\"}}", f);
  fclose(f);
  assert_error_mentions(vox_hf_load_params(b, "", sub("s"), NULL), "'model.norm.weight'",
                        "model-00001-of-00003.safetensors");
  f = fopen(sub("s/model.safetensors.index.json"), "w");
  fputs("{\"weight_map\": [", f);
  fclose(f);
  assert_error_mentions(vox_hf_load_params(b, "", sub("s"), NULL), "model.safetensors.index.json", "JSON");
  assert_unchanged(b, before, n);
  /* A directory without weights, a path that does not exist. */
  cr_assert(mkdir(sub("empty"), 0777) == 0);
  assert_error_mentions(vox_hf_load_params(b, "", sub("empty"), NULL), sub("empty"), "model.safetensors");
  assert_error_mentions(vox_hf_load_params(b, "", sub("nope"), NULL), sub("nope"), NULL);
  /* A corrupt shard: the error names the shard file. */
  VT_OK(vox_hf_save_params(a, "", sub("c"), VOX_F32, 0));
  f = fopen(sub("c/model.safetensors"), "r+b");
  fseek(f, 3, SEEK_SET);
  fputc(0x01, f); /* header length now 16 MB more: far beyond the file */
  fclose(f);
  assert_error_mentions(vox_hf_load_params(b, "", sub("c"), NULL), sub("c/model.safetensors"), "header length");
  assert_unchanged(b, before, n);
  /* Saving: nothing under the prefix, an unsupported dtype. */
  assert_error_mentions(vox_hf_save_params(a, "encoder.", sub("x"), VOX_F32, 0), "encoder.", "nothing to save");
  assert_error_mentions(vox_hf_save_params(a, "", sub("x"), VOX_I32, 0), "f32 or bf16", NULL);
  free(before);
  vox_params_free(a);
  vox_params_free(b);
}

static const char *all_to_one(const char *file_name, char *buf, size_t cap, void *ctx) {
  (void)ctx;
  if (strcmp(file_name, "model.norm.weight") && strcmp(file_name, "model.layers.0.self_attn.q_proj.bias")) return NULL;
  snprintf(buf, cap, "model.norm.weight");
  return buf;
}

Test(hf_weights, two_tensors_onto_one_parameter_and_escaping_index) {
  vox_params *a = make_reg("", 1), *b = make_reg("", 2);
  VT_OK(vox_hf_save_params(a, "", sub("d"), VOX_F32, 0));
  int64_t n;
  float *before = snapshot(b, &n);
  const char *ign[] = {"*", NULL};
  vox_hf_load_opts o = {.strict = true, .rename = all_to_one, .ignore_missing = ign};
  assert_error_mentions(vox_hf_load_params(b, "", sub("d"), &o), "loaded twice", "model.norm.weight");
  assert_unchanged(b, before, n);
  /* An index may only name files beside it. */
  cr_assert(mkdir(sub("e"), 0777) == 0);
  FILE *f = fopen(sub("e/model.safetensors.index.json"), "w");
  fputs("{\"weight_map\":{\"model.norm.weight\":\"../d/model.safetensors\"}}", f);
  fclose(f);
  assert_error_mentions(vox_hf_load_params(b, "", sub("e"), NULL), "../d/model.safetensors", "beside the index");
  assert_unchanged(b, before, n);
  free(before);
  vox_params_free(a);
  vox_params_free(b);
}
