/* HF config.json: typed getters by dotted key path, defaults and required keys, and errors that name the file,
 * the key and the expected type. */
#include "vox_test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io/hf_config.h"

static const char *qwen_like =
    "{\n"
    "  \"architectures\": [\"Qwen2ForCausalLM\"],\n"
    "  \"hidden_size\": 896,\n"
    "  \"max_position_embeddings\": 32768,\n"
    "  \"rms_norm_eps\": 1e-06,\n"
    "  \"rope_theta\": 1000000.0,\n"
    "  \"vocab_size\": 151936,\n"
    "  \"big\": 1e5,\n"
    "  \"tie_word_embeddings\": true,\n"
    "  \"rope_scaling\": null,\n"
    "  \"torch_dtype\": \"bfloat16\",\n"
    "  \"suppress\": [220, 50257],\n"
    "  \"text_config\": {\"num_attention_heads\": 14, \"sub\": {\"x\": 2}},\n"
    "  \"a.b\": 7\n"
    "}\n";

static char dir[128];
static void setup(void) {
  snprintf(dir, sizeof dir, "/tmp/vox_hfc_XXXXXX");
  cr_assert(mkdtemp(dir));
}
static void teardown(void) {
  char cmd[200];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  (void)system(cmd);
}
TestSuite(hf_config, .init = setup, .fini = teardown);

static const char *write_config(const char *name, const char *text) {
  static char path[256];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "w");
  cr_assert(f);
  fputs(text, f);
  fclose(f);
  return path;
}

static void assert_error_mentions(vox_status st, const char *a, const char *b, const char *c) {
  cr_assert(st != VOX_OK, "expected an error");
  const char *m = vox_last_error();
  cr_assert(strstr(m, a), "error '%s' should mention '%s'", m, a);
  if (b) cr_assert(strstr(m, b), "error '%s' should mention '%s'", m, b);
  if (c) cr_assert(strstr(m, c), "error '%s' should mention '%s'", m, c);
}

Test(hf_config, typed_getters_from_a_directory) {
  write_config("config.json", qwen_like);
  vox_hf_config *c = NULL;
  VT_OK(vox_hf_config_load(dir, &c));
  cr_assert(strstr(vox_hf_config_path(c), "/config.json"));
  int64_t i;
  double d;
  bool b;
  const char *s;
  VT_OK(vox_hf_config_int_req(c, "hidden_size", &i));
  cr_assert_eq(i, 896);
  VT_OK(vox_hf_config_int(c, "big", 0, &i));
  cr_assert_eq(i, 100000, "1e5 is an integer");
  VT_OK(vox_hf_config_int(c, "num_key_value_heads", 2, &i));
  cr_assert_eq(i, 2, "absent -> default");
  VT_OK(vox_hf_config_float_req(c, "rms_norm_eps", &d));
  cr_assert_float_eq(d, 1e-6, 1e-20);
  VT_OK(vox_hf_config_float(c, "hidden_size", 0, &d));
  cr_assert_eq(d, 896.0, "an integer is a fine float");
  VT_OK(vox_hf_config_bool_req(c, "tie_word_embeddings", &b));
  cr_assert(b);
  VT_OK(vox_hf_config_bool(c, "use_sliding_window", false, &b));
  cr_assert(!b);
  VT_OK(vox_hf_config_string_req(c, "torch_dtype", &s));
  cr_assert_str_eq(s, "bfloat16");
  VT_OK(vox_hf_config_string(c, "architectures.0", NULL, &s));
  cr_assert_str_eq(s, "Qwen2ForCausalLM");
  VT_OK(vox_hf_config_string(c, "architectures.1", "none", &s));
  cr_assert_str_eq(s, "none");
  /* Nested keys, and a literal key with a dot in it. */
  VT_OK(vox_hf_config_int_req(c, "text_config.num_attention_heads", &i));
  cr_assert_eq(i, 14);
  VT_OK(vox_hf_config_int_req(c, "text_config.sub.x", &i));
  cr_assert_eq(i, 2);
  VT_OK(vox_hf_config_int_req(c, "a.b", &i));
  cr_assert_eq(i, 7);
  /* null counts as absent. */
  cr_assert(!vox_hf_config_has(c, "rope_scaling"));
  cr_assert(vox_hf_config_has(c, "text_config"));
  VT_OK(vox_hf_config_float(c, "rope_scaling", 1.5, &d));
  cr_assert_eq(d, 1.5);
  int64_t arr[4];
  int n;
  VT_OK(vox_hf_config_int_array(c, "suppress", arr, 4, &n));
  cr_assert_eq(n, 2);
  cr_assert_eq(arr[0], 220);
  cr_assert_eq(arr[1], 50257);
  VT_OK(vox_hf_config_int_array(c, "absent_list", arr, 4, &n));
  cr_assert_eq(n, 0);
  vox_hf_config_free(c);
}

Test(hf_config, wrong_types_name_file_key_and_type) {
  const char *p = write_config("model.json", qwen_like);
  vox_hf_config *c = NULL;
  VT_OK(vox_hf_config_load(p, &c));
  int64_t i;
  double d;
  bool b;
  const char *s;
  assert_error_mentions(vox_hf_config_int(c, "rms_norm_eps", 0, &i), p, "\"rms_norm_eps\"", "an integer");
  assert_error_mentions(vox_hf_config_int(c, "torch_dtype", 0, &i), p, "\"torch_dtype\" is a string", "an integer");
  assert_error_mentions(vox_hf_config_float(c, "architectures", 0, &d), p, "\"architectures\" is an array",
                        "a number");
  assert_error_mentions(vox_hf_config_bool(c, "hidden_size", false, &b), p, "\"hidden_size\" is a number",
                        "a boolean");
  assert_error_mentions(vox_hf_config_string(c, "text_config", "", &s), p, "\"text_config\" is an object",
                        "a string");
  assert_error_mentions(vox_hf_config_int_req(c, "num_hidden_layers", &i), p, "\"num_hidden_layers\"", "missing");
  cr_assert_eq(vox_hf_config_int_req(c, "num_hidden_layers", &i), VOX_ERR_NOT_FOUND);
  assert_error_mentions(vox_hf_config_string_req(c, "rope_scaling", &s), p, "\"rope_scaling\"", "missing");
  assert_error_mentions(vox_hf_config_int_array(c, "architectures", &i, 1, (int[]){0}), p, "architectures.0",
                        "an integer");
  vox_hf_config_free(c);
}

Test(hf_config, bad_files) {
  vox_hf_config *c = NULL;
  assert_error_mentions(vox_hf_config_load(dir, &c), dir, "config.json", NULL);
  cr_assert_null(c);
  const char *p = write_config("config.json", "{\n  \"hidden_size\": 896,\n  \"vocab_size\": ,\n}\n");
  assert_error_mentions(vox_hf_config_load(p, &c), p, "line 3", NULL);
  p = write_config("config.json", "[1, 2]");
  assert_error_mentions(vox_hf_config_load(dir, &c), p, "expected an object", NULL);
  cr_assert_null(c);
  VT_OK(vox_hf_config_parse("{\"x\": 1}", "<inline>", &c));
  cr_assert_str_eq(vox_hf_config_path(c), "<inline>");
  vox_hf_config_free(c);
}
