/* model.llm.vocab_subset end to end below the trainer: the config maps vocab_size and the audio placeholder onto
 * the kept ids, HF weights load the kept rows of the embedding and LM head, and a checkpoint over other ids is
 * refused even when the shapes agree. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/autograd.h"
#include "io/hf_weights.h"
#include "models/speech_llm.h"
#include "train/ckpt.h"
#include "vox_test.h"

static char dir[64];

static void mk_dir(void) {
  snprintf(dir, sizeof dir, "/tmp/vox-vocab-XXXXXX");
  cr_assert(mkdtemp(dir));
}

static void rm_dir(void) {
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  cr_assert(system(cmd) == 0);
}

static const char *path_in(const char *name) {
  static char p[4][256];
  static int k;
  k = (k + 1) % 4;
  snprintf(p[k], sizeof p[k], "%s/%s", dir, name);
  return p[k];
}

static void write_file(const char *name, const char *text) {
  FILE *f = fopen(path_in(name), "w");
  cr_assert(f);
  fputs(text, f);
  fclose(f);
}

/* A tiny speech LLM over a 64-id vocabulary whose placeholder is id 63; `extra` goes under llm. */
static const char *model_yaml(const char *extra) {
  static char y[1024];
  snprintf(y, sizeof y,
           "model:\n"
           "  audio_encoder: {kind: whisper, num_mel_bins: 8, d_model: 16, encoder_layers: 1, encoder_attention_heads: 2,\n"
           "                  encoder_ffn_dim: 32, max_source_positions: 64}\n"
           "  input_projector: {kind: minmo, n_layers: 1, n_heads: 2, d_ff: 32}\n"
           "  llm:\n"
           "    vocab_size: 64\n"
           "    hidden_size: 32\n"
           "    num_hidden_layers: 1\n"
           "    num_attention_heads: 4\n"
           "    num_key_value_heads: 2\n"
           "    intermediate_size: 48\n"
           "    tie_word_embeddings: false\n"
           "%s"
           "  audio_token: {id: 63}\n",
           extra);
  return y;
}

static vox_status parse(const char *yaml, vox_model_config *mc) {
  vox_config *c = NULL;
  vox_status st = vox_config_parse_string(yaml, path_in("m.yaml"), &c);
  if (st == VOX_OK) st = vox_model_config_parse(vox_config_get(c, "model"), mc);
  vox_config_free(c);
  return st;
}

static vox_speech_llm *build(const char *yaml, uint64_t seed) {
  vox_config *c = NULL;
  VT_OK(vox_config_parse_string(yaml, path_in("m.yaml"), &c));
  vox_speech_llm *m = NULL;
  VT_OK(vox_speech_llm_new(vox_config_get(c, "model"), seed, &m));
  vox_config_free(c);
  return m;
}

TestSuite(vocab_subset_model, .init = mk_dir, .fini = rm_dir);

Test(vocab_subset_model, config_maps_size_and_placeholder) {
  write_file("sub.txt", "# kept\n0\n1\n2\n5\n9\n40\n63\n");
  vox_model_config mc;
  VT_OK(parse(model_yaml("    vocab_subset: sub.txt\n"), &mc)); /* relative to m.yaml's directory */
  cr_assert_eq(mc.llm.vocab_size, 7);
  cr_assert_eq(mc.vocab_source_size, 64);
  cr_assert_eq(mc.audio_token_id, 6);
  cr_assert_eq(mc.audio_token_source_id, 63);
  cr_assert_str_eq(mc.vocab_subset, path_in("sub.txt"));
  /* Without a subset the two ids agree. */
  VT_OK(parse(model_yaml(""), &mc));
  cr_assert(mc.llm.vocab_size == 64 && mc.audio_token_id == 63 && mc.audio_token_source_id == 63 && !mc.vocab_subset[0]);

  write_file("no_audio.txt", "0\n1\n2\n");
  cr_assert_neq(parse(model_yaml("    vocab_subset: no_audio.txt\n"), &mc), VOX_OK);
  cr_assert(strstr(vox_last_error(), "m.yaml:13") && strstr(vox_last_error(), "placeholder's id 63"), "%s",
            vox_last_error());
  write_file("past.txt", "0\n63\n64\n");
  cr_assert_neq(parse(model_yaml("    vocab_subset: past.txt\n"), &mc), VOX_OK);
  cr_assert(strstr(vox_last_error(), "id 64, past llm.vocab_size 64"), "%s", vox_last_error());
  cr_assert_neq(parse(model_yaml("    vocab_subset: missing.txt\n"), &mc), VOX_OK);
  cr_assert(strstr(vox_last_error(), "m.yaml:13") && strstr(vox_last_error(), "missing.txt"), "%s", vox_last_error());
  write_file("unsorted.txt", "0\n9\n5\n");
  cr_assert_neq(parse(model_yaml("    vocab_subset: unsorted.txt\n"), &mc), VOX_OK);
  cr_assert(strstr(vox_last_error(), "unsorted.txt:3") && strstr(vox_last_error(), "ascending"), "%s", vox_last_error());
  /* A text-only LLM's subset need not keep the placeholder. */
  VT_OK(parse("model:\n  llm: {vocab_size: 64, hidden_size: 32, num_attention_heads: 4, vocab_subset: no_audio.txt}\n",
              &mc));
  cr_assert_eq(mc.llm.vocab_size, 3);
}

static void expect_rows(vox_speech_llm *full, vox_speech_llm *sub, const char *name, const int32_t *ids, int n) {
  vox_tensor *a = vox_params_get(full->params, name), *b = vox_params_get(sub->params, name);
  cr_assert(a && b, "%s", name);
  int64_t H = a->shape[1];
  float *fa = malloc(sizeof(float) * (size_t)vox_tensor_numel(a)), *fb = malloc(sizeof(float) * (size_t)vox_tensor_numel(b));
  VT_OK(vox_tensor_read_f32(a, fa));
  VT_OK(vox_tensor_read_f32(b, fb));
  cr_assert_eq(b->shape[0], n);
  for (int k = 0; k < n; k++)
    cr_assert(!memcmp(fb + k * H, fa + ids[k] * H, sizeof(float) * (size_t)H), "%s row %d is not source row %d", name,
              k, ids[k]);
  free(fa);
  free(fb);
}

Test(vocab_subset_model, hf_weights_load_the_kept_rows) {
  const int32_t ids[] = {0, 1, 2, 5, 9, 40, 63};
  write_file("sub.txt", "0\n1\n2\n5\n9\n40\n63\n");
  vox_speech_llm *full = build(model_yaml(""), 3), *sub = build(model_yaml("    vocab_subset: sub.txt\n"), 4);
  const char *hf = path_in("hf");
  VT_OK(vox_hf_save_params(full->params, "llm.", hf, VOX_F32, 0));
  char source[300];
  snprintf(source, sizeof source, "hf:%s", hf);
  VT_OK(vox_speech_llm_load_part(sub, "llm", source));
  expect_rows(full, sub, "llm.model.embed_tokens.weight", ids, 7);
  expect_rows(full, sub, "llm.lm_head.weight", ids, 7);
  vox_tensor *a = vox_params_get(full->params, "llm.model.norm.weight"), *b = vox_params_get(sub->params, "llm.model.norm.weight");
  vt_assert_close(b, a, 0, 0, "the other tensors load whole");
  vox_speech_llm_free(sub);

  /* A subset id the file has no row for: refused, naming the row, nothing loaded. */
  write_file("wide.txt", "0\n63\n80\n");
  const char *wide = "model:\n"
                     "  audio_encoder: {kind: whisper, num_mel_bins: 8, d_model: 16, encoder_layers: 1,\n"
                     "                  encoder_attention_heads: 2, encoder_ffn_dim: 32, max_source_positions: 64}\n"
                     "  input_projector: {kind: minmo, n_layers: 1, n_heads: 2, d_ff: 32}\n"
                     "  llm: {vocab_size: 100, hidden_size: 32, num_hidden_layers: 1, num_attention_heads: 4,\n"
                     "        num_key_value_heads: 2, intermediate_size: 48, tie_word_embeddings: false,\n"
                     "        vocab_subset: wide.txt}\n"
                     "  audio_token: {id: 63}\n";
  sub = build(wide, 5);
  cr_assert_neq(vox_speech_llm_load_part(sub, "llm", source), VOX_OK);
  cr_assert(strstr(vox_last_error(), "has no row 80") && strstr(vox_last_error(), "nothing was loaded"), "%s",
            vox_last_error());
  vox_speech_llm_free(sub);
  vox_speech_llm_free(full);
}

Test(vocab_subset_model, checkpoint_over_other_ids_is_refused) {
  int32_t a[] = {0, 1, 2, 5, 9, 40, 63}, b[] = {0, 1, 3, 5, 9, 40, 63};
  write_file("sub.txt", "0\n1\n2\n5\n9\n40\n63\n");
  vox_speech_llm *m = build(model_yaml("    vocab_subset: sub.txt\n"), 6);
  const char *ck = path_in("c.h5");
  vox_train_ckpt_info info = {.config_yaml = "{}", .stage_name = "s", .save_all = true, .hang_before_commit = -1,
                              .vocab_subset = a, .n_vocab_subset = 7};
  vox_train_state state = {0};
  VT_OK(vox_train_ckpt_save(ck, &info, m->params, NULL, &state));
  vox_train_sources same = {.vocab_subset = a, .n_vocab_subset = 7}, other = {.vocab_subset = b, .n_vocab_subset = 7},
                    whole = {0};
  VT_OK(vox_train_ckpt_load_params(ck, m->params, "", &same));
  cr_assert_neq(vox_train_ckpt_load_params(ck, m->params, "", &other), VOX_OK);
  cr_assert(strstr(vox_last_error(), "c.h5") && strstr(vox_last_error(), "model.llm.vocab_subset"), "%s",
            vox_last_error());
  cr_assert_neq(vox_train_ckpt_load_params(ck, m->params, "llm.", &whole), VOX_OK);
  cr_assert(strstr(vox_last_error(), "the whole vocabulary"), "%s", vox_last_error());
  /* Parts without the embedding load regardless. */
  VT_OK(vox_train_ckpt_load_params(ck, m->params, "audio_encoder.", &other));
  vox_speech_llm_free(m);
}
