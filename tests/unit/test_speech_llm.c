/* Speech-LLM composite tests: parts under their prefixes with the analytic counts, audio spliced at the
 * placeholder, a padded batch's loss equal to the per-sample losses, gradients stopping at frozen parts, batched
 * greedy decoding with the KV cache equal to argmax of full forwards, beam search against an exhaustive check,
 * part loading (checkpoint and HF, all-or-nothing), and config errors naming file:line and the key. */
#include <criterion/logging.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/autograd.h"
#include "io/checkpoint.h"
#include "io/hf_weights.h"
#include "models/speech_llm.h"
#include "vox_test.h"

static const char *TINY =
    "model:\n"
    "  audio_encoder: {kind: whisper, num_mel_bins: 8, d_model: 16, encoder_layers: 1, encoder_attention_heads: 2,\n"
    "                  encoder_ffn_dim: 32, max_source_positions: 64}\n"
    "  input_projector: {kind: minmo, n_layers: 1, n_heads: 2, d_ff: 32}\n"
    "  llm: {vocab_size: 64, hidden_size: 32, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2,\n"
    "        intermediate_size: 48, initializer_range: 0.2, tie_word_embeddings: false}\n"
    "  output_projector: {}\n"
    "  voice_lm: {speech_vocab: 20, hidden_size: 16, num_hidden_layers: 1, num_attention_heads: 2,\n"
    "             num_key_value_heads: 1, intermediate_size: 32, tie_word_embeddings: true}\n"
    "  duplex: {d_model: 16, n_heads: 2, d_ff: 32}\n"
    "  audio_token: {id: 63}\n";

static vox_speech_llm *tiny(uint64_t seed) {
  vox_config *c = NULL;
  VT_OK(vox_config_parse_string(TINY, "tiny.yaml", &c));
  vox_speech_llm *m = NULL;
  VT_OK(vox_speech_llm_new(vox_config_get(c, "model"), seed, &m));
  vox_config_free(c);
  return m;
}

#define PH 63
static const int32_t S0[] = {1, 2, PH, 3, 4, 5, 6};
static const int32_t L0[] = {-100, -100, -100, -100, 4, 5, 6};
static const int32_t S1[] = {7, PH, 8, 9, 10};
static const int32_t L1[] = {-100, -100, -100, 9, 10};

typedef struct batch {
  vox_tensor *feats, *lens;
  const int32_t *ids[2], *labels[2];
  int32_t n[2];
  vox_s2t_batch b;
} batch;

/* Two samples, 20 and 13 frames of 8 mels (the second right-padded). */
static void make_batch(batch *t) {
  t->feats = vt_randn(VT_SHAPE(2, 20, 8), 77, 1.0f, false);
  t->lens = vt_from_i32(VT_SHAPE(2), (int32_t[]){20, 13});
  t->ids[0] = S0, t->ids[1] = S1, t->labels[0] = L0, t->labels[1] = L1;
  t->n[0] = 7, t->n[1] = 5;
  t->b = (vox_s2t_batch){.B = 2, .features = t->feats, .feat_lens = t->lens, .ids = t->ids, .labels = t->labels,
                         .n_ids = t->n};
}

/* Sample i alone: its own frames only, no padding. */
static vox_s2t_batch single(batch *t, int i, vox_tensor **feats) {
  int64_t T = i == 0 ? 20 : 13;
  vox_tensor *v = NULL;
  VT_OK(vox_tensor_view_slice(t->feats, 0, i, i + 1, 1, &v));
  vox_tensor *w = NULL;
  VT_OK(vox_tensor_view_slice(v, 1, 0, T, 1, &w));
  VT_OK(vox_tensor_clone(w, feats));
  vox_tensor_release(v);
  vox_tensor_release(w);
  return (vox_s2t_batch){.B = 1, .features = *feats, .ids = &t->ids[i], .labels = &t->labels[i], .n_ids = &t->n[i]};
}

static void free_batch(batch *t) {
  vox_tensor_release(t->feats);
  vox_tensor_release(t->lens);
}

Test(speech_llm, parts_under_prefixes_with_analytic_counts) {
  vox_speech_llm *m = tiny(1);
  int64_t counts[6], total = 0;
  vox_model_config_numel(&m->cfg, counts);
  for (int i = 0; i < 6; i++) {
    char prefix[64];
    snprintf(prefix, sizeof prefix, "%s.", vox_model_parts[i]);
    int64_t real = vox_speech_llm_numel(m, prefix, false);
    cr_assert_eq(real, counts[i], "%s: registered %lld, computed %lld", prefix, (long long)real, (long long)counts[i]);
    cr_assert(real > 0);
    total += real;
  }
  cr_assert_eq(total, vox_params_numel(m->params, false), "every parameter lives under a part prefix");
  cr_assert_not_null(vox_params_get(m->params, "audio_encoder.encoder.conv1.weight"));
  cr_assert_not_null(vox_params_get(m->params, "input_projector.conv.weight"));
  cr_assert_not_null(vox_params_get(m->params, "llm.model.layers.1.self_attn.q_proj.bias"));
  cr_assert_not_null(vox_params_get(m->params, "output_projector.linear.weight"));
  cr_assert_not_null(vox_params_get(m->params, "voice_lm.model.embed_tokens.weight"));
  cr_assert_not_null(vox_params_get(m->params, "duplex.head.weight"));
  vox_speech_llm_free(m);
}

Test(speech_llm, splice_puts_audio_at_the_placeholder) {
  vox_speech_llm *m = tiny(2);
  batch t;
  make_batch(&t);
  vox_tensor *audio = NULL, *emb = NULL;
  int32_t *al = NULL, *lens = NULL, *lab = NULL;
  VT_OK(vox_speech_llm_encode_audio(m, t.feats, t.lens, false, NULL, &audio, &al));
  cr_assert_eq(al[0], 5, "20 frames -> 10 -> 5: %d", al[0]);
  cr_assert_eq(al[1], 4, "13 frames -> 7 -> 4: %d", al[1]);
  VT_OK(vox_speech_llm_splice(m, &t.b, audio, al, &emb, &lens, &lab));
  cr_assert_eq(lens[0], 6 + 5);
  cr_assert_eq(lens[1], 4 + 4);
  int64_t L = emb->shape[1], H = 32, Ta = audio->shape[1];
  cr_assert_eq(L, 11);
  float *e = malloc((size_t)(2 * L * H) * sizeof *e), *a = malloc((size_t)(2 * Ta * H) * sizeof *a),
        *w = malloc(64 * 32 * sizeof *w);
  VT_OK(vox_tensor_read_f32(emb, e));
  VT_OK(vox_tensor_read_f32(audio, a));
  VT_OK(vox_tensor_read_f32(m->llm.embed.weight, w));
  /* Expected source of each row: token id >= 0, or -(1 + audio frame). */
  const int32_t want0[] = {1, 2, -1, -2, -3, -4, -5, 3, 4, 5, 6};
  const int32_t want1[] = {7, -1, -2, -3, -4, 8, 9, 10};
  for (int b = 0; b < 2; b++)
    for (int64_t r = 0; r < lens[b]; r++) {
      int32_t src = b ? want1[r] : want0[r];
      const float *expect = src >= 0 ? w + src * H : a + (b * Ta + (-src - 1)) * H;
      cr_assert(!memcmp(e + (b * L + r) * H, expect, (size_t)H * sizeof(float)), "row %d.%lld", b, (long long)r);
    }
  /* Labels: the ids' labels with -100 over the audio rows and the padding. */
  const int32_t lab0[] = {-100, -100, -100, -100, -100, -100, -100, -100, 4, 5, 6};
  for (int r = 0; r < 11; r++) cr_assert_eq(lab[r], lab0[r], "label %d", r);
  const int32_t lab1[] = {-100, -100, -100, -100, -100, -100, 9, 10, -100, -100, -100};
  for (int r = 0; r < 11; r++) cr_assert_eq(lab[L + r], lab1[r], "label 1.%d", r);
  free(e);
  free(a);
  free(w);
  free(al);
  free(lens);
  free(lab);
  vox_tensor_release(audio);
  vox_tensor_release(emb);
  free_batch(&t);
  vox_speech_llm_free(m);
}

Test(speech_llm, padded_batch_loss_equals_per_sample_losses) {
  vox_speech_llm *m = tiny(3);
  batch t;
  make_batch(&t);
  vox_tensor *loss = NULL;
  int64_t n = 0;
  VT_OK(vox_speech_llm_s2t_loss(m, &t.b, false, NULL, &loss, &n));
  cr_assert_eq(n, 3 + 2, "label positions: %lld", (long long)n);
  double lb, li[2], sum = 0;
  int64_t ni[2];
  VT_OK(vox_tensor_item(loss, &lb));
  for (int i = 0; i < 2; i++) {
    vox_tensor *f = NULL, *l = NULL;
    vox_s2t_batch s = single(&t, i, &f);
    VT_OK(vox_speech_llm_s2t_loss(m, &s, false, NULL, &l, &ni[i]));
    VT_OK(vox_tensor_item(l, &li[i]));
    sum += li[i] * (double)ni[i];
    vox_tensor_release(f);
    vox_tensor_release(l);
  }
  cr_assert_eq(ni[0], 3);
  cr_assert_eq(ni[1], 2);
  cr_log_info("batch %.6f, samples %.6f %.6f", lb, li[0], li[1]);
  cr_assert(fabs(lb - sum / 5.0) < 1e-5, "batched %.7f vs per-sample %.7f", lb, sum / 5.0);
  cr_assert(fabs(li[0] - li[1]) > 1e-4, "the samples differ (the check is not vacuous)");
  vox_tensor_release(loss);
  free_batch(&t);
  vox_speech_llm_free(m);
}

Test(speech_llm, gradients_stop_at_frozen_parts) {
  vox_speech_llm *m = tiny(4);
  VT_OK(vox_speech_llm_set_trainable(m, "*", false, NULL));
  VT_OK(vox_speech_llm_set_trainable(m, "input_projector.*", true, NULL));
  batch t;
  make_batch(&t);
  vox_tensor *loss = NULL;
  long nodes = vox_autograd_live_nodes();
  VT_OK(vox_speech_llm_s2t_loss(m, &t.b, true, NULL, &loss, NULL));
  VT_OK(vox_backward(loss, NULL));
  vox_tensor_release(loss);
  for (int i = 0; i < m->params->count; i++) {
    bool proj = !strncmp(m->params->items[i].name, "input_projector.", 16);
    cr_assert_eq(m->params->items[i].tensor->grad != NULL, proj, "%s", m->params->items[i].name);
  }
  cr_assert_eq(vox_autograd_live_nodes(), nodes, "the graph is freed");
  free_batch(&t);
  vox_speech_llm_free(m);
}

/* Reference decoding: full forward (no cache) of sample i's prompt + generated tokens, argmax at the end. */
static int32_t full_argmax(vox_speech_llm *m, batch *t, int i, const int32_t *gen, int n_gen) {
  vox_tensor *f = NULL, *audio = NULL, *emb = NULL, *h = NULL, *row = NULL, *lg = NULL, *am = NULL;
  int32_t *al = NULL, *lens = NULL;
  int32_t ids[64], n = t->n[i] + n_gen;
  memcpy(ids, t->ids[i], (size_t)t->n[i] * sizeof *ids);
  memcpy(ids + t->n[i], gen, (size_t)n_gen * sizeof *ids);
  const int32_t *ip = ids;
  vox_s2t_batch s = single(t, i, &f);
  s.ids = &ip;
  s.n_ids = &n;
  s.labels = NULL;
  vox_no_grad_begin();
  VT_OK(vox_speech_llm_encode_audio(m, f, NULL, false, NULL, &audio, &al));
  VT_OK(vox_speech_llm_splice(m, &s, audio, al, &emb, &lens, NULL));
  VT_OK(vox_qwen2_forward_embeds(&m->llm, emb, NULL, NULL, NULL, false, NULL, &h));
  VT_OK(vox_op_slice(h, 1, lens[0] - 1, lens[0], 1, &row));
  VT_OK(vox_qwen2_logits(&m->llm, row, &lg));
  VT_OK(vox_op_argmax(lg, -1, &am));
  vox_no_grad_end();
  int32_t best;
  VT_OK(vox_tensor_read_i32(am, &best));
  vox_tensor *all[] = {f, audio, emb, h, row, lg, am};
  for (int k = 0; k < 7; k++) vox_tensor_release(all[k]);
  free(al);
  free(lens);
  return best;
}

Test(speech_llm, batched_greedy_with_cache_equals_full_forward_argmax) {
  vox_speech_llm *m = tiny(5);
  batch t;
  make_batch(&t);
  t.b.labels = NULL;
  int32_t **out = NULL, *olen = NULL;
  vox_generate_opts o = {.max_new_tokens = 6, .beam_size = 1};
  VT_OK(vox_speech_llm_generate(m, &t.b, &o, &out, &olen));
  bool differ = false;
  for (int i = 0; i < 2; i++) {
    cr_assert_eq(olen[i], 6);
    for (int s = 0; s < 6; s++) {
      int32_t want = full_argmax(m, &t, i, out[i], s);
      cr_assert_eq(out[i][s], want, "sample %d step %d: cached %d, full forward %d", i, s, out[i][s], want);
    }
    differ |= out[i][0] != out[0][0] || out[i][3] != out[0][3];
  }
  cr_log_info("greedy: %d %d %d ... / %d %d %d ...", out[0][0], out[0][1], out[0][2], out[1][0], out[1][1], out[1][2]);
  /* Stopping at eos: the token sample 0 emits at step 2 ends it there (and is not returned). */
  int32_t eos = out[0][2];
  int expect1 = 6;
  for (int s = 0; s < 6; s++)
    if (out[1][s] == eos) {
      expect1 = s;
      break;
    }
  vox_generate_opts o2 = {.max_new_tokens = 6, .beam_size = 1, .eos_ids = &eos, .n_eos = 1};
  int32_t **out2 = NULL, *olen2 = NULL;
  VT_OK(vox_speech_llm_generate(m, &t.b, &o2, &out2, &olen2));
  int expect0 = 6;
  for (int s = 0; s < 6; s++)
    if (out[0][s] == eos) {
      expect0 = s;
      break;
    }
  cr_assert_eq(olen2[0], expect0);
  cr_assert_eq(olen2[1], expect1);
  cr_assert(!memcmp(out2[1], out[1], (size_t)olen2[1] * sizeof(int32_t)));
  for (int i = 0; i < 2; i++) {
    free(out[i]);
    free(out2[i]);
  }
  free(out);
  free(out2);
  free(olen);
  free(olen2);
  (void)differ;
  free_batch(&t);
  vox_speech_llm_free(m);
}

/* Log-probabilities after sample 0's prompt + gen (full forward). */
static void full_logprobs(vox_speech_llm *m, batch *t, const int32_t *gen, int n_gen, float *lp) {
  vox_tensor *f = NULL, *audio = NULL, *emb = NULL, *h = NULL, *row = NULL, *lg = NULL, *ls = NULL;
  int32_t *al = NULL, *lens = NULL;
  int32_t ids[64], n = t->n[0] + n_gen;
  memcpy(ids, t->ids[0], (size_t)t->n[0] * sizeof *ids);
  memcpy(ids + t->n[0], gen, (size_t)n_gen * sizeof *ids);
  const int32_t *ip = ids;
  vox_s2t_batch s = single(t, 0, &f);
  s.ids = &ip;
  s.n_ids = &n;
  vox_no_grad_begin();
  VT_OK(vox_speech_llm_encode_audio(m, f, NULL, false, NULL, &audio, &al));
  VT_OK(vox_speech_llm_splice(m, &s, audio, al, &emb, &lens, NULL));
  VT_OK(vox_qwen2_forward_embeds(&m->llm, emb, NULL, NULL, NULL, false, NULL, &h));
  VT_OK(vox_op_slice(h, 1, lens[0] - 1, lens[0], 1, &row));
  VT_OK(vox_qwen2_logits(&m->llm, row, &lg));
  VT_OK(vox_op_log_softmax(lg, -1, &ls));
  vox_no_grad_end();
  VT_OK(vox_tensor_read_f32(ls, lp));
  vox_tensor *all[] = {f, audio, emb, h, row, lg, ls};
  for (int k = 0; k < 7; k++) vox_tensor_release(all[k]);
  free(al);
  free(lens);
}

Test(speech_llm, beam_search_finds_the_best_two_token_continuation_among_its_beams) {
  vox_speech_llm *m = tiny(6);
  batch t;
  make_batch(&t);
  vox_s2t_batch b1 = t.b;
  vox_tensor *f = NULL;
  b1 = single(&t, 0, &f);
  b1.labels = NULL;
  const int k = 3;
  vox_generate_opts o = {.max_new_tokens = 2, .beam_size = k, .length_penalty = 1.0f};
  int32_t **out = NULL, *olen = NULL;
  VT_OK(vox_speech_llm_generate(m, &b1, &o, &out, &olen));
  cr_assert_eq(olen[0], 2);
  /* Exhaustive over the k most likely first tokens (what a k-beam keeps after step 1). */
  float lp0[64], lp1[64];
  full_logprobs(m, &t, NULL, 0, lp0);
  int top[3] = {-1, -1, -1};
  for (int j = 0; j < k; j++)
    for (int v = 0; v < 64; v++) {
      bool used = false;
      for (int q = 0; q < j; q++) used |= top[q] == v;
      if (!used && (top[j] < 0 || lp0[v] > lp0[top[j]])) top[j] = v;
    }
  double best = -INFINITY;
  int32_t bt[2] = {0, 0};
  for (int j = 0; j < k; j++) {
    int32_t g = top[j];
    full_logprobs(m, &t, &g, 1, lp1);
    for (int v = 0; v < 64; v++)
      if (lp0[g] + lp1[v] > best) {
        best = lp0[g] + lp1[v];
        bt[0] = g;
        bt[1] = v;
      }
  }
  cr_log_info("beam %d %d, exhaustive %d %d (greedy first %d)", out[0][0], out[0][1], bt[0], bt[1], top[0]);
  cr_assert(out[0][0] == bt[0] && out[0][1] == bt[1], "beam %d %d vs exhaustive %d %d", out[0][0], out[0][1], bt[0],
            bt[1]);
  free(out[0]);
  free(out);
  free(olen);
  vox_tensor_release(f);
  free_batch(&t);
  vox_speech_llm_free(m);
}

static bool same_params(vox_speech_llm *a, vox_speech_llm *b, const char *prefix) {
  size_t lp = strlen(prefix);
  for (int i = 0; i < a->params->count; i++) {
    if (strncmp(a->params->items[i].name, prefix, lp)) continue;
    if (vt_close_ratio(a->params->items[i].tensor, vox_params_get(b->params, a->params->items[i].name), 0, 0) > 0)
      return false;
  }
  return true;
}

Test(speech_llm, load_part_from_checkpoint_all_or_nothing) {
  vox_speech_llm *a = tiny(7), *b = tiny(8);
  char path[] = "/tmp/vox_sllm_XXXXXX";
  int fd = mkstemp(path);
  cr_assert(fd >= 0);
  close(fd);
  vox_ckpt_writer *w = NULL;
  VT_OK(vox_ckpt_writer_new(path, &w));
  for (int i = 0; i < a->params->count; i++)
    VT_OK(vox_ckpt_write_tensor(w, "params", a->params->items[i].name, a->params->items[i].tensor));
  VT_OK(vox_ckpt_writer_commit(w));
  char src[300];
  snprintf(src, sizeof src, "ckpt:%s", path);
  cr_assert(!same_params(a, b, "llm."));
  VT_OK(vox_speech_llm_load_part(b, "llm", src));
  cr_assert(same_params(a, b, "llm."), "llm loaded");
  cr_assert(!same_params(a, b, "input_projector."), "only the llm prefix");
  /* A checkpoint with a mis-shaped and a missing tensor: error lists both, nothing changes. */
  VT_OK(vox_ckpt_writer_new(path, &w));
  for (int i = 0; i < a->params->count; i++) {
    const char *nm = a->params->items[i].name;
    if (!strcmp(nm, "input_projector.conv.bias")) continue;
    vox_tensor *tt = a->params->items[i].tensor;
    if (!strcmp(nm, "input_projector.conv.weight")) {
      vox_tensor *bad = vt_randn(VT_SHAPE(3, 3), 1, 1.0f, false);
      VT_OK(vox_ckpt_write_tensor(w, "params", nm, bad));
      vox_tensor_release(bad);
    } else {
      VT_OK(vox_ckpt_write_tensor(w, "params", nm, tt));
    }
  }
  VT_OK(vox_ckpt_writer_commit(w));
  cr_assert_neq(vox_speech_llm_load_part(b, "input_projector", src), VOX_OK);
  const char *msg = vox_last_error();
  cr_log_info("%s", msg);
  cr_assert(strstr(msg, "input_projector.conv.bias") && strstr(msg, "input_projector.conv.weight"), "%s", msg);
  cr_assert(!same_params(a, b, "input_projector."), "nothing loaded");
  cr_assert_eq(vox_speech_llm_load_part(b, "decoder", src), VOX_ERR_INVALID);
  remove(path);
  vox_speech_llm_free(a);
  vox_speech_llm_free(b);
}

Test(speech_llm, load_part_from_hf_safetensors) {
  vox_speech_llm *a = tiny(9), *b = tiny(10);
  char dir[] = "/tmp/vox_sllm_hf_XXXXXX";
  cr_assert_not_null(mkdtemp(dir));
  VT_OK(vox_hf_save_params(a->params, "llm.", dir, VOX_F32, 0));
  char src[300];
  snprintf(src, sizeof src, "hf:%s", dir);
  VT_OK(vox_speech_llm_load_part(b, "llm", src));
  cr_assert(same_params(a, b, "llm."));
  cr_assert(!same_params(a, b, "voice_lm."));
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  cr_assert_eq(system(cmd), 0);
  vox_speech_llm_free(a);
  vox_speech_llm_free(b);
}

Test(speech_llm, input_errors_are_named) {
  vox_speech_llm *m = tiny(11);
  batch t;
  make_batch(&t);
  const int32_t noph[] = {1, 2, 3};
  t.ids[1] = noph;
  t.n[1] = 3;
  vox_tensor *loss = NULL;
  cr_assert_neq(vox_speech_llm_s2t_loss(m, &t.b, false, NULL, &loss, NULL), VOX_OK);
  cr_assert(strstr(vox_last_error(), "sample 1 holds 0 audio placeholders"), "%s", vox_last_error());
  free_batch(&t);
  vox_speech_llm_free(m);
}

static vox_status parse_model(const char *yaml, vox_model_config *mc) {
  vox_config *c = NULL;
  vox_status st = vox_config_parse_string(yaml, "bad.yaml", &c);
  if (st == VOX_OK) st = vox_model_config_parse(vox_config_get(c, "model"), mc);
  vox_config_free(c);
  return st;
}

Test(model_config, errors_name_file_line_and_key) {
  vox_model_config mc;
  cr_assert_neq(parse_model("model:\n  llm:\n    hidden_size: 64\n    num_hiden_layers: 2\n", &mc), VOX_OK);
  cr_assert(strstr(vox_last_error(), "bad.yaml:4") && strstr(vox_last_error(), "model.llm.num_hiden_layers") &&
                strstr(vox_last_error(), "num_hidden_layers"),
            "%s", vox_last_error());
  cr_assert_neq(parse_model("model:\n  llm: {hidden_size: big}\n", &mc), VOX_OK);
  cr_assert(strstr(vox_last_error(), "bad.yaml:2") && strstr(vox_last_error(), "hidden_size"), "%s", vox_last_error());
  cr_assert_neq(parse_model("model:\n  audio_encoder: {kind: conformer}\n", &mc), VOX_OK);
  cr_assert(strstr(vox_last_error(), "model.audio_encoder.kind"), "%s", vox_last_error());
  cr_assert_neq(parse_model("model:\n  audio_encoder: {kind: whisper, output_size: 5}\n", &mc), VOX_OK);
  cr_assert(strstr(vox_last_error(), "output_size") && strstr(vox_last_error(), "sanm key"), "%s", vox_last_error());
  cr_assert_neq(parse_model("model:\n  input_projector: {kind: minmo}\n", &mc), VOX_OK);
  cr_assert(strstr(vox_last_error(), "needs both audio_encoder and llm"), "%s", vox_last_error());
  cr_assert_neq(parse_model("model:\n  llm: {vocab_size: 100, hidden_size: 64, num_attention_heads: 3}\n", &mc), VOX_OK);
  cr_assert(strstr(vox_last_error(), "num_attention_heads"), "%s", vox_last_error());
  cr_assert_neq(parse_model("model:\n  llm: {vocab_size: 100, hidden_size: 64, num_attention_heads: 4}\n", &mc), VOX_OK);
  cr_assert(strstr(vox_last_error(), "audio_token.id 151669"), "%s", vox_last_error());
  cr_assert_neq(parse_model("model:\n  voice_lm: {vocab_size: 10}\n", &mc), VOX_OK);
  cr_assert(strstr(vox_last_error(), "speech_vocab"), "%s", vox_last_error());
  cr_assert_neq(parse_model("model:\n  llm: {pretrained: /x}\n", &mc), VOX_OK);
  cr_assert(strstr(vox_last_error(), "hf:DIR"), "%s", vox_last_error());
  /* Every part is optional. */
  VT_OK(parse_model("model:\n  duplex: null\n  llm: {vocab_size: 152000, hidden_size: 64, num_attention_heads: 4}\n",
                    &mc));
}

Test(model_config, shipped_configs_parse_and_tiny_builds) {
  const char *names[] = {"tiny", "small", "qwen2.5-0.5b", "minmo-7b"};
  for (int i = 0; i < 4; i++) {
    char path[512];
    snprintf(path, sizeof path, "%s/configs/models/%s.yaml", VOX_SOURCE_DIR, names[i]);
    vox_config *c = NULL;
    VT_OK(vox_config_load(path, 0, NULL, &c));
    vox_model_config mc;
    VT_OK(vox_model_config_parse(vox_config_get(c, "model"), &mc));
    int64_t n[6], total = 0;
    vox_model_config_numel(&mc, n);
    for (int k = 0; k < 6; k++) total += n[k];
    cr_log_info("%s: %.2fM parameters", names[i], total / 1e6);
    cr_assert(mc.has_llm && mc.llm.vocab_size > mc.audio_token_id);
    if (i == 0) {
      vox_speech_llm *m = NULL;
      VT_OK(vox_speech_llm_new(vox_config_get(c, "model"), 1, &m));
      cr_assert_eq(vox_params_numel(m->params, false), total);
      vox_speech_llm_free(m);
    }
    if (i == 3) cr_assert(total > 7e9 && mc.has_duplex && mc.has_voice_lm && mc.encoder.kind == VOX_ENCODER_SANM);
    vox_config_free(c);
  }
}

Test(speech_llm, voice_and_duplex_losses_train_only_their_parts) {
  vox_speech_llm *m = tiny(12);
  VT_OK(vox_speech_llm_set_trainable(m, "*", false, NULL));
  VT_OK(vox_speech_llm_set_trainable(m, "output_projector.*", true, NULL));
  VT_OK(vox_speech_llm_set_trainable(m, "voice_lm.*", true, NULL));
  batch t;
  make_batch(&t);
  /* Speech-to-speech: the response text tokens are ids 3..6 of sample 0 and 8..10 of sample 1. */
  const int32_t p0[] = {3, 4, 5, 6}, p1[] = {2, 3, 4};
  const int32_t *pos[2] = {p0, p1};
  int32_t ntext[2] = {4, 3}, nsp[2] = {20, 9};
  int32_t sp0[20], sp1[9];
  for (int i = 0; i < 20; i++) sp0[i] = (i * 3) % 20;
  for (int i = 0; i < 9; i++) sp1[i] = (i * 5 + 1) % 20;
  const int32_t *sps[2] = {sp0, sp1};
  vox_voice_batch vb = {.prompt = t.b, .text_pos = pos, .n_text = ntext, .speech = sps, .n_speech = nsp};
  vox_tensor *loss = NULL;
  int64_t n = 0;
  long nodes = vox_autograd_live_nodes();
  VT_OK(vox_speech_llm_voice_loss(m, &vb, true, NULL, &loss, &n));
  cr_assert_eq(n, (20 + 1) + (9 + 1), "targets %lld", (long long)n); /* 20*5 > 4*15: bistream, 1 fill + eos */
  VT_OK(vox_backward(loss, NULL));
  vox_tensor_release(loss);
  for (int i = 0; i < m->params->count; i++) {
    const char *nm = m->params->items[i].name;
    bool trains = !strncmp(nm, "output_projector.", 17) || !strncmp(nm, "voice_lm.", 9);
    cr_assert_eq(m->params->items[i].tensor->grad != NULL, trains, "%s", nm);
  }
  cr_assert_eq(vox_autograd_live_nodes(), nodes);
  vox_params_zero_grad(m->params);
  /* Duplex: labels at the projector's frame rate (5 and 4 frames). */
  VT_OK(vox_speech_llm_set_trainable(m, "*", false, NULL));
  VT_OK(vox_speech_llm_set_trainable(m, "duplex.*", true, NULL));
  vox_tensor *lab = vt_from_i32(VT_SHAPE(2, 5), (int32_t[]){0, 0, 1, 0, 2, 3, 0, 1, 0, -100});
  VT_OK(vox_speech_llm_duplex_loss(m, t.feats, t.lens, lab, true, NULL, &loss, &n));
  cr_assert_eq(n, 9);
  VT_OK(vox_backward(loss, NULL));
  vox_tensor_release(loss);
  for (int i = 0; i < m->params->count; i++) {
    const char *nm = m->params->items[i].name;
    cr_assert_eq(m->params->items[i].tensor->grad != NULL, !strncmp(nm, "duplex.", 7), "%s", nm);
  }
  vox_tensor_release(lab);
  free_batch(&t);
  vox_speech_llm_free(m);
}

Test(speech_llm, sanm_front_end_builds_counts_and_trains) {
  const char *yaml =
      "model:\n"
      "  audio_encoder: {kind: sanm, input_size: 24, output_size: 16, attention_heads: 2, linear_units: 32,\n"
      "                  num_blocks: 2, tp_blocks: 1, kernel_size: 5}\n"
      "  input_projector: {kind: linear, k: 2, hidden: 24}\n"
      "  llm: {vocab_size: 64, hidden_size: 32, num_hidden_layers: 1, num_attention_heads: 4, num_key_value_heads: 2,\n"
      "        intermediate_size: 48}\n"
      "  audio_token: {id: 63}\n";
  vox_config *c = NULL;
  VT_OK(vox_config_parse_string(yaml, "sanm.yaml", &c));
  vox_speech_llm *m = NULL;
  VT_OK(vox_speech_llm_new(vox_config_get(c, "model"), 3, &m));
  int64_t counts[6];
  vox_model_config_numel(&m->cfg, counts);
  cr_assert_eq(vox_speech_llm_numel(m, "audio_encoder.", false), counts[0], "sanm: registered %lld, computed %lld",
               (long long)vox_speech_llm_numel(m, "audio_encoder.", false), (long long)counts[0]);
  cr_assert_eq(vox_speech_llm_numel(m, "input_projector.", false), counts[1]);
  cr_assert_not_null(vox_params_get(m->params, "audio_encoder.encoder.encoders0.0.self_attn.fsmn_block.weight"));
  vox_tensor *f = vt_randn(VT_SHAPE(2, 9, 24), 5, 1.0f, false), *fl = vt_from_i32(VT_SHAPE(2), (int32_t[]){9, 6});
  const int32_t a[] = {1, PH, 2, 3}, la[] = {-100, -100, 2, 3}, b[] = {PH, 4, 5}, lb[] = {-100, 4, 5};
  const int32_t *ids[2] = {a, b}, *labels[2] = {la, lb};
  int32_t n[2] = {4, 3};
  vox_s2t_batch bt = {.B = 2, .features = f, .feat_lens = fl, .ids = ids, .labels = labels, .n_ids = n};
  VT_OK(vox_speech_llm_set_trainable(m, "llm.*", false, NULL));
  vox_tensor *loss = NULL;
  int64_t nt = 0;
  VT_OK(vox_speech_llm_s2t_loss(m, &bt, true, NULL, &loss, &nt));
  cr_assert_eq(nt, 2 + 2, "labels 2, 3 and 4, 5");
  VT_OK(vox_backward(loss, NULL));
  cr_assert_not_null(vox_params_get(m->params, "audio_encoder.encoder.tp_norm.weight")->grad);
  cr_assert_not_null(vox_params_get(m->params, "input_projector.linear1.weight")->grad);
  cr_assert_null(vox_params_get(m->params, "llm.model.norm.weight")->grad);
  vox_tensor_release(loss);
  vox_tensor_release(f);
  vox_tensor_release(fl);
  vox_speech_llm_free(m);
  vox_config_free(c);
}

/* The trainer's exact resume relies on a step being a pure function of parameters, batch and seed. */
Test(speech_llm, s2t_step_is_bit_reproducible) {
  float *g[2] = {NULL, NULL};
  double l[2];
  int64_t n = 0;
  for (int run = 0; run < 2; run++) {
    vox_speech_llm *m = tiny(13);
    VT_OK(vox_speech_llm_set_trainable(m, "llm.*", false, NULL));
    batch t;
    make_batch(&t);
    vox_tensor *loss = NULL;
    vox_rng rng = vox_rng_make(5);
    VT_OK(vox_speech_llm_s2t_loss(m, &t.b, true, &rng, &loss, NULL));
    VT_OK(vox_tensor_item(loss, &l[run]));
    VT_OK(vox_backward(loss, NULL));
    vox_tensor_release(loss);
    n = 0;
    for (int i = 0; i < m->params->count; i++)
      if (m->params->items[i].tensor->grad) n += vox_tensor_numel(m->params->items[i].tensor);
    g[run] = malloc((size_t)n * sizeof(float));
    int64_t off = 0;
    for (int i = 0; i < m->params->count; i++) {
      vox_tensor *gr = m->params->items[i].tensor->grad;
      if (!gr) continue;
      VT_OK(vox_tensor_read_f32(gr, g[run] + off));
      off += vox_tensor_numel(gr);
    }
    free_batch(&t);
    vox_speech_llm_free(m);
  }
  cr_assert_eq(l[0], l[1]);
  cr_assert(n > 0 && !memcmp(g[0], g[1], (size_t)n * sizeof(float)), "gradients differ between identical steps");
  for (int64_t i = 0; i < n; i++) cr_assert(isfinite(g[0][i]), "gradient %lld is not finite", (long long)i);
  free(g[0]);
  free(g[1]);
}

/* A batch carrying its audio already encoded (what eval does to encode once for loss and decoding) gives the same
 * loss and the same generated tokens as one that encodes its features. */
Test(speech_llm, precomputed_audio_equals_encoding_the_features) {
  vox_speech_llm *m = tiny(7);
  batch t;
  make_batch(&t);
  vox_tensor *audio = NULL, *l1 = NULL, *l2 = NULL;
  int32_t *alens = NULL;
  VT_OK(vox_speech_llm_encode_audio(m, t.b.features, t.b.feat_lens, false, NULL, &audio, &alens));
  vox_s2t_batch pre = t.b;
  pre.features = NULL, pre.feat_lens = NULL, pre.audio = audio, pre.audio_lens = alens;
  int64_t n1 = 0, n2 = 0;
  double v1, v2;
  VT_OK(vox_speech_llm_s2t_loss(m, &t.b, false, NULL, &l1, &n1));
  VT_OK(vox_speech_llm_s2t_loss(m, &pre, false, NULL, &l2, &n2));
  VT_OK(vox_tensor_item(l1, &v1));
  VT_OK(vox_tensor_item(l2, &v2));
  cr_assert_eq(n1, n2);
  cr_assert_eq(v1, v2, "loss %.9g from features, %.9g from precomputed audio", v1, v2);
  t.b.labels = NULL, pre.labels = NULL;
  vox_generate_opts o = {.max_new_tokens = 4, .beam_size = 1};
  int32_t **a = NULL, **b = NULL, *la = NULL, *lb = NULL;
  VT_OK(vox_speech_llm_generate(m, &t.b, &o, &a, &la));
  VT_OK(vox_speech_llm_generate(m, &pre, &o, &b, &lb));
  for (int i = 0; i < 2; i++) {
    cr_assert_eq(la[i], lb[i]);
    for (int s = 0; s < la[i]; s++) cr_assert_eq(a[i][s], b[i][s], "sample %d step %d", i, s);
    free(a[i]), free(b[i]);
  }
  free(a), free(b), free(la), free(lb);
  vox_tensor_release(l1), vox_tensor_release(l2), vox_tensor_release(audio);
  free(alens);
  free_batch(&t);
  vox_speech_llm_free(m);
}

/* Text-only prompts (no features, no placeholder) of different lengths decode together, each row as a full forward
 * of its own prompt and continuation would: how task lm's eval.generate answers text forms. */
Test(speech_llm, text_only_prompts_decode_like_full_forwards) {
  vox_speech_llm *m = tiny(8);
  const int32_t p0[] = {3, 9, 27, 4, 11}, p1[] = {5, 8, 2};
  const int32_t *ids[] = {p0, p1};
  int32_t n_ids[] = {5, 3};
  vox_s2t_batch b = {.B = 2, .ids = ids, .n_ids = n_ids};
  int32_t **out = NULL, *olen = NULL;
  vox_generate_opts o = {.max_new_tokens = 4, .beam_size = 1};
  VT_OK(vox_speech_llm_generate(m, &b, &o, &out, &olen));
  for (int i = 0; i < 2; i++) {
    cr_assert_eq(olen[i], 4);
    for (int s = 0; s < 4; s++) {
      int32_t seq[16], n = n_ids[i] + s;
      memcpy(seq, ids[i], sizeof(int32_t) * (size_t)n_ids[i]);
      memcpy(seq + n_ids[i], out[i], sizeof(int32_t) * (size_t)s);
      const int32_t *sp = seq;
      vox_s2t_batch one = {.B = 1, .ids = &sp, .n_ids = &n};
      vox_tensor *emb = NULL, *h = NULL, *row = NULL, *lg = NULL;
      int32_t *lens = NULL;
      vox_no_grad_begin();
      VT_OK(vox_speech_llm_splice(m, &one, NULL, NULL, &emb, &lens, NULL));
      VT_OK(vox_qwen2_forward_embeds(&m->llm, emb, NULL, NULL, NULL, false, NULL, &h));
      VT_OK(vox_op_slice(h, 1, n - 1, n, 1, &row));
      VT_OK(vox_qwen2_logits(&m->llm, row, &lg));
      vox_no_grad_end();
      float logits[64];
      cr_assert_eq(vox_tensor_numel(lg), 64);
      VT_OK(vox_tensor_read_f32(lg, logits));
      int32_t best = 0;
      for (int v = 1; v < 64; v++)
        if (logits[v] > logits[best]) best = v;
      cr_assert_eq(out[i][s], best, "row %d step %d: batched %d, alone %d", i, s, out[i][s], best);
      vox_tensor *all[] = {emb, h, row, lg};
      for (int k = 0; k < 4; k++) vox_tensor_release(all[k]);
      free(lens);
    }
    free(out[i]);
  }
  free(out);
  free(olen);
  vox_speech_llm_free(m);
}
