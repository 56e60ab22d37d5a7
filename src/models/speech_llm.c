/* The speech LLM composite: construction of the configured parts in one registry, the audio front end, splicing
 * audio embeddings into ChatML streams, the S2T loss on gathered label rows (alone or with the encoder's CTC loss),
 * and the voice-LM and duplex losses. Loading lives in speech_llm_load.c, generation in speech_llm_generate.c. */
#include "models/speech_llm.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/autograd.h"
#include "core/ops.h"
#include "models/seq_util.h"
#include "models/speech_llm_internal.h"

#define IGNORE (-100)

vox_status vox_speech_llm_new(const vox_config *model_node, uint64_t seed, vox_speech_llm **out) {
  vox_model_config cfg;
  *out = NULL;
  VOX_TRY(vox_model_config_parse(model_node, &cfg));
  return vox_speech_llm_new_from_config(&cfg, seed, out);
}

vox_status vox_speech_llm_new_from_config(const vox_model_config *cfg, uint64_t seed, vox_speech_llm **out) {
  *out = NULL;
  vox_speech_llm *m = calloc(1, sizeof *m);
  if (!m) return vox_errorf(VOX_ERR_NOMEM, "speech_llm: out of memory");
  m->cfg = *cfg;
  vox_rng rng = vox_rng_make(seed);
  vox_status st;
  VOX_CHECK_GOTO(st, vox_params_new(&m->params), fail);
  if (cfg->has_encoder) VOX_CHECK_GOTO(st, vox_sllm_encoder_init(m, &rng), fail);
  if (cfg->has_input_projector)
    VOX_CHECK_GOTO(st, vox_projector_init(&m->in_proj, m->params, "input_projector.", &cfg->input_projector, &rng), fail);
  if (cfg->has_input_projector && cfg->encoder.ctc_posterior)
    VOX_CHECK_GOTO(st, vox_projector_zero_output(&m->in_proj), fail);
  if (cfg->has_llm) VOX_CHECK_GOTO(st, vox_qwen2_init(&m->llm, m->params, "llm.", &cfg->llm, &rng), fail);
  if (cfg->has_output_projector)
    VOX_CHECK_GOTO(st, vox_output_projector_init(&m->out_proj, m->params, "output_projector.", cfg->output_projector_in,
                                                 cfg->output_projector_out, &rng), fail);
  if (cfg->has_voice_lm) {
    vox_voice_lm_config vc = {.lm = cfg->voice_lm.lm, .speech_vocab = cfg->voice_lm.speech_vocab,
                              .mix_text = cfg->voice_lm.mix_text, .mix_speech = cfg->voice_lm.mix_speech};
    VOX_CHECK_GOTO(st, vox_voice_lm_init(&m->voice_lm, m->params, "voice_lm.", &vc, &rng), fail);
  }
  if (cfg->has_duplex) VOX_CHECK_GOTO(st, vox_duplex_init(&m->duplex, m->params, "duplex.", &cfg->duplex, &rng), fail);
  *out = m;
  return VOX_OK;
fail:
  vox_speech_llm_free(m);
  return vox_error_context(st, "speech_llm: ");
}

void vox_speech_llm_free(vox_speech_llm *m) {
  if (!m) return;
  if (m->cfg.has_encoder) vox_sllm_encoder_release(m);
  vox_projector_release(&m->in_proj);
  if (m->cfg.has_llm) vox_qwen2_release(&m->llm);
  if (m->cfg.has_voice_lm) vox_voice_lm_release(&m->voice_lm);
  vox_params_free(m->params);
  free(m);
}

vox_status vox_speech_llm_set_trainable(vox_speech_llm *m, const char *glob, bool trainable, int *n) {
  return vox_params_set_trainable(m->params, glob, trainable, n);
}

int64_t vox_speech_llm_numel(const vox_speech_llm *m, const char *prefix, bool trainable_only) {
  int64_t n = 0;
  size_t lp = strlen(prefix);
  for (int i = 0; i < m->params->count; i++) {
    const vox_param *p = &m->params->items[i];
    if (strncmp(p->name, prefix, lp)) continue;
    if (!trainable_only || p->tensor->requires_grad) n += vox_tensor_numel(p->tensor);
  }
  return n;
}

bool vox_sllm_prefix_trains(const vox_speech_llm *m, const char *prefix) {
  return vox_speech_llm_numel(m, prefix, true) > 0;
}

/* The encoder's output [B, T, d] (frame counts hl) through the CTC compressor (when configured) and the input
 * projector, plus the posterior embeddings with ctc_posterior: the LLM's audio embeddings and host lengths. */
static vox_status audio_from_hidden(vox_speech_llm *m, vox_tensor *hidden, vox_tensor *hl, vox_tensor *head_logits,
                                    bool training, vox_rng *rng, vox_tensor **embeds, int32_t **out_lengths) {
  vox_tensor *h = vox_tensor_retain(hidden), *l = vox_tensor_retain(hl), *pl = NULL, *post = NULL, *proj = NULL;
  vox_status st = VOX_OK;
  if (m->cfg.encoder.ctc_compress) {
    vox_tensor *hc = NULL, *hcl = NULL;
    vox_tensor **want_post = m->cfg.encoder.ctc_posterior ? &post : NULL;
    VOX_CHECK_GOTO(st, vox_sllm_ctc_compress(m, h, l, head_logits, &hc, &hcl, want_post), done);
    vox_tensor_release(h);
    vox_tensor_release(l);
    h = hc, l = hcl;
  }
  VOX_CHECK_GOTO(st, vox_projector_forward(&m->in_proj, h, l, training, rng, post ? &proj : embeds, &pl), done);
  if (post) VOX_CHECK_GOTO(st, vox_op_add(proj, post, embeds), done);
  st = vox_seq_lengths_host(pl, (*embeds)->shape[0], (*embeds)->shape[1], "speech_llm audio", out_lengths);
done:
  vox_tensor_release(h);
  vox_tensor_release(l);
  vox_tensor_release(pl);
  vox_tensor_release(post);
  vox_tensor_release(proj);
  if (st != VOX_OK) vox_tensor_drop(embeds);
  return st;
}

static vox_status need_audio_path(const vox_speech_llm *m) {
  if (!m->cfg.has_encoder || !m->cfg.has_input_projector)
    return vox_errorf(VOX_ERR_STATE, "speech_llm: encoding audio needs model.audio_encoder and model.input_projector");
  return VOX_OK;
}

/* The encoder forward, on the tape only when some encoder parameter trains. */
static vox_status encoder_hidden(vox_speech_llm *m, vox_tensor *feats, vox_tensor *lengths, bool training,
                                 vox_rng *rng, vox_tensor **h, vox_tensor **hl) {
  bool enc_tape = vox_sllm_prefix_trains(m, "audio_encoder.");
  if (!enc_tape) vox_no_grad_begin();
  vox_status st = vox_sllm_encoder_forward(m, feats, lengths, training, rng, h, hl);
  if (!enc_tape) vox_no_grad_end();
  return st;
}

vox_status vox_speech_llm_encode_audio(vox_speech_llm *m, vox_tensor *feats, vox_tensor *lengths, bool training,
                                       vox_rng *rng, vox_tensor **embeds, int32_t **out_lengths) {
  *embeds = NULL;
  *out_lengths = NULL;
  VOX_TRY(need_audio_path(m));
  vox_tensor *h = NULL, *hl = NULL;
  vox_status st = encoder_hidden(m, feats, lengths, training, rng, &h, &hl);
  if (st == VOX_OK) st = audio_from_hidden(m, h, hl, NULL, training, rng, embeds, out_lengths);
  vox_tensor_release(h);
  vox_tensor_release(hl);
  return st == VOX_OK ? st : vox_error_context(st, "speech_llm encode audio: ");
}

vox_status vox_speech_llm_splice(vox_speech_llm *m, const vox_s2t_batch *b, vox_tensor *audio, const int32_t *a_lens,
                                 vox_tensor **embeds, int32_t **lens_out, int32_t **labels_out) {
  *embeds = NULL;
  *lens_out = NULL;
  if (labels_out) *labels_out = NULL;
  if (!m->cfg.has_llm) return vox_errorf(VOX_ERR_STATE, "speech_llm: no model.llm");
  int B = b->B, H = m->cfg.llm.hidden_size;
  if (B <= 0) return vox_errorf(VOX_ERR_INVALID, "speech_llm: empty batch");
  int32_t ph = m->cfg.audio_token_id, V = m->cfg.llm.vocab_size;
  int64_t Ta = audio ? audio->shape[1] : 0;
  int32_t *lens = calloc((size_t)B, sizeof *lens), *place = calloc((size_t)B, sizeof *place);
  int32_t *rows = NULL, *tok = NULL, *lab = NULL;
  vox_tensor *ids_t = NULL, *temb = NULL, *tflat = NULL, *aflat = NULL, *src = NULL;
  vox_status st = VOX_OK;
  if (!lens || !place) {
    st = vox_errorf(VOX_ERR_NOMEM, "speech_llm: out of memory");
    goto done;
  }
  int64_t L = 0, n_tok = 0;
  for (int i = 0; i < B; i++) {
    int found = 0;
    place[i] = -1;
    for (int t = 0; t < b->n_ids[i]; t++) {
      int32_t id = b->ids[i][t];
      if (id == ph && audio) {
        found++;
        place[i] = t;
      } else if (id < 0 || id >= V) {
        st = vox_errorf(VOX_ERR_INDEX, "speech_llm: sample %d: token id %d at %d is outside [0, %d)", i, id, t, V);
        goto done;
      }
    }
    if (audio && found != 1) {
      st = vox_errorf(VOX_ERR_INVALID, "speech_llm: sample %d holds %d audio placeholders (id %d); exactly one needed",
                      i, found, ph);
      goto done;
    }
    int64_t al = audio ? a_lens[i] : 0;
    if (audio && al < 1) {
      st = vox_errorf(VOX_ERR_INVALID, "speech_llm: sample %d has no audio frames after the projector", i);
      goto done;
    }
    lens[i] = (int32_t)(b->n_ids[i] - (audio ? 1 : 0) + al);
    n_tok += b->n_ids[i] - (audio ? 1 : 0);
    if (lens[i] > L) L = lens[i];
  }
  if (L == 0) {
    st = vox_errorf(VOX_ERR_INVALID, "speech_llm: empty batch");
    goto done;
  }
  rows = calloc((size_t)(B * L), sizeof *rows);
  tok = calloc((size_t)(n_tok ? n_tok : 1), sizeof *tok);
  if (labels_out) lab = malloc((size_t)(B * L) * sizeof *lab);
  if (!rows || !tok || (labels_out && !lab)) {
    st = vox_errorf(VOX_ERR_NOMEM, "speech_llm: out of memory");
    goto done;
  }
  int64_t base = audio ? (int64_t)B * Ta : 0, k = 0;
  for (int i = 0; i < B; i++) {
    int64_t t = 0;
    for (int j = 0; j < b->n_ids[i]; j++) {
      if (audio && j == place[i]) {
        for (int64_t a = 0; a < a_lens[i]; a++) {
          if (lab) lab[i * L + t] = IGNORE;
          rows[i * L + t++] = (int32_t)(i * Ta + a);
        }
        continue;
      }
      if (lab) lab[i * L + t] = b->labels ? b->labels[i][j] : IGNORE;
      tok[k] = b->ids[i][j];
      rows[i * L + t++] = (int32_t)(base + k++);
    }
    for (; t < L; t++) {
      if (lab) lab[i * L + t] = IGNORE;
      rows[i * L + t] = 0; /* padding: any row; masked by kv_lens and never a target */
    }
  }
  vox_device dev = m->llm.embed.weight->device;
  VOX_CHECK_GOTO(st, vox_seq_i32(tok, 2, (int64_t[]){1, n_tok}, dev, &ids_t), done);
  VOX_CHECK_GOTO(st, vox_qwen2_embed(&m->llm, ids_t, &temb), done);
  VOX_CHECK_GOTO(st, vox_op_reshape(temb, 2, (int64_t[]){n_tok, H}, &tflat), done);
  if (audio) {
    char b1[96];
    if (audio->ndim != 3 || audio->shape[0] != B || audio->shape[2] != H) {
      st = vox_errorf(VOX_ERR_SHAPE, "speech_llm: audio embeddings %s, expected [%d, T, %d]",
                      vox_tensor_describe(audio, b1, sizeof b1), B, H);
      goto done;
    }
    VOX_CHECK_GOTO(st, vox_op_reshape(audio, 2, (int64_t[]){(int64_t)B * Ta, H}, &aflat), done);
    VOX_CHECK_GOTO(st, vox_op_concat(2, (vox_tensor *[]){aflat, tflat}, 0, &src), done);
  } else {
    src = vox_tensor_retain(tflat);
  }
  VOX_CHECK_GOTO(st, vox_seq_gather_rows(src, rows, 2, (int64_t[]){B, L}, embeds), done);
done:
  free(place);
  free(rows);
  free(tok);
  vox_tensor_release(ids_t);
  vox_tensor_release(temb);
  vox_tensor_release(tflat);
  vox_tensor_release(aflat);
  vox_tensor_release(src);
  if (st != VOX_OK) {
    free(lens);
    free(lab);
    return st;
  }
  *lens_out = lens;
  if (labels_out) *labels_out = lab;
  return VOX_OK;
}

vox_status vox_sllm_batch_audio(vox_speech_llm *m, const vox_s2t_batch *b, bool training, vox_rng *rng,
                                vox_tensor **audio, int32_t **lens) {
  *audio = NULL;
  *lens = NULL;
  if (!b->audio) return b->features ? vox_speech_llm_encode_audio(m, b->features, b->feat_lens, training, rng, audio, lens)
                                    : VOX_OK;
  *lens = malloc(sizeof(int32_t) * (size_t)(b->B > 0 ? b->B : 1));
  if (!*lens) return vox_errorf(VOX_ERR_NOMEM, "speech_llm: out of memory");
  memcpy(*lens, b->audio_lens, sizeof(int32_t) * (size_t)b->B);
  *audio = vox_tensor_retain(b->audio);
  return VOX_OK;
}

/* Audio (precomputed or from the batch's features) + splice + LLM hidden states [B, L, H]. */
vox_status vox_sllm_llm_hidden(vox_speech_llm *m, const vox_s2t_batch *b, bool training, vox_rng *rng,
                               vox_tensor **hidden, int32_t **lens, int32_t **labels) {
  vox_tensor *audio = NULL, *emb = NULL, *kv = NULL;
  int32_t *alens = NULL;
  vox_status st;
  *hidden = NULL;
  *lens = NULL;
  if (labels) *labels = NULL;
  VOX_CHECK_GOTO(st, vox_sllm_batch_audio(m, b, training, rng, &audio, &alens), done);
  VOX_CHECK_GOTO(st, vox_speech_llm_splice(m, b, audio, alens, &emb, lens, labels), done);
  VOX_CHECK_GOTO(st, vox_seq_i32(*lens, 1, (int64_t[]){b->B}, emb->device, &kv), done);
  st = vox_qwen2_forward_embeds(&m->llm, emb, NULL, kv, NULL, training, rng, hidden);
done:
  vox_tensor_release(audio);
  vox_tensor_release(emb);
  vox_tensor_release(kv);
  free(alens);
  if (st != VOX_OK) {
    free(*lens);
    *lens = NULL;
    if (labels) {
      free(*labels);
      *labels = NULL;
    }
  }
  return st;
}

vox_status vox_speech_llm_s2t_loss(vox_speech_llm *m, const vox_s2t_batch *b, bool training, vox_rng *rng,
                                   vox_tensor **loss, int64_t *n_target_tokens) {
  *loss = NULL;
  if (n_target_tokens) *n_target_tokens = 0;
  if (!b->labels) return vox_errorf(VOX_ERR_INVALID, "speech_llm s2t loss: the batch has no labels");
  vox_tensor *hidden = NULL, *hsel = NULL, *logits = NULL, *targets = NULL;
  int32_t *lens = NULL, *lab = NULL, *rows = NULL, *tg = NULL;
  vox_status st;
  VOX_CHECK_GOTO(st, vox_sllm_llm_hidden(m, b, training, rng, &hidden, &lens, &lab), done);
  int64_t B = b->B, L = hidden->shape[1], n = 0;
  /* HF shift: the logits at t predict the label at t + 1. */
  for (int64_t i = 0; i < B; i++)
    for (int64_t t = 0; t + 1 < lens[i]; t++) n += lab[i * L + t + 1] != IGNORE;
  if (n == 0) {
    st = vox_errorf(VOX_ERR_INVALID, "speech_llm s2t loss: no label positions in the batch");
    goto done;
  }
  rows = malloc((size_t)n * sizeof *rows);
  tg = malloc((size_t)n * sizeof *tg);
  if (!rows || !tg) {
    st = vox_errorf(VOX_ERR_NOMEM, "speech_llm: out of memory");
    goto done;
  }
  int64_t k = 0;
  for (int64_t i = 0; i < B; i++)
    for (int64_t t = 0; t + 1 < lens[i]; t++)
      if (lab[i * L + t + 1] != IGNORE) {
        rows[k] = (int32_t)(i * L + t);
        tg[k++] = lab[i * L + t + 1];
      }
  for (int64_t i = 0; i < n; i++)
    if (tg[i] < 0 || tg[i] >= m->cfg.llm.vocab_size) {
      st = vox_errorf(VOX_ERR_INDEX, "speech_llm s2t loss: label %d is outside [0, %d) (and not -100)", tg[i],
                      m->cfg.llm.vocab_size);
      goto done;
    }
  VOX_CHECK_GOTO(st, vox_seq_gather_rows(hidden, rows, 1, (int64_t[]){n}, &hsel), done);
  VOX_CHECK_GOTO(st, vox_qwen2_logits(&m->llm, hsel, &logits), done);
  VOX_CHECK_GOTO(st, vox_seq_i32(tg, 1, (int64_t[]){n}, logits->device, &targets), done);
  VOX_CHECK_GOTO(st, vox_op_cross_entropy(logits, targets, IGNORE, 0.0f, loss), done);
  if (n_target_tokens) *n_target_tokens = n;
done:
  vox_tensor_release(hidden);
  vox_tensor_release(hsel);
  vox_tensor_release(logits);
  vox_tensor_release(targets);
  free(lens);
  free(lab);
  free(rows);
  free(tg);
  if (st != VOX_OK) return vox_error_context(st, "speech_llm s2t loss: ");
  return VOX_OK;
}

vox_status vox_speech_llm_s2t_ctc_loss(vox_speech_llm *m, const vox_s2t_batch *b, const char *const *transcripts,
                                       float ctc_weight, bool training, vox_rng *rng, vox_tensor **loss,
                                       int64_t *n_target_tokens, double *ctc_value) {
  *loss = NULL;
  if (ctc_value) *ctc_value = NAN;
  if (!(ctc_weight > 0.0f)) return vox_speech_llm_s2t_loss(m, b, training, rng, loss, n_target_tokens);
  VOX_TRY(need_audio_path(m));
  if (!b->features || b->audio)
    return vox_errorf(VOX_ERR_INVALID,
                      "speech_llm s2t + ctc loss: the batch needs features (and no precomputed audio)");
  bool any = false;
  for (int i = 0; i < b->B; i++) any = any || transcripts[i];
  if (!any) return vox_speech_llm_s2t_loss(m, b, training, rng, loss, n_target_tokens);
  vox_tensor *h = NULL, *hl = NULL, *logits = NULL, *ctc = NULL, *lm = NULL, *scaled = NULL, *audio = NULL;
  int32_t *alens = NULL;
  vox_status st;
  /* One encoder forward feeds both losses. */
  VOX_CHECK_GOTO(st, encoder_hidden(m, b->features, b->feat_lens, training, rng, &h, &hl), done);
  VOX_CHECK_GOTO(st, vox_linear_forward(&m->ctc, h, &logits), done);
  VOX_CHECK_GOTO(st, vox_speech_llm_ctc_loss_from_logits(m, logits, hl, transcripts, &ctc, NULL), done);
  /* the compressor segments (and reads posteriors) from the same head logits the CTC loss used */
  VOX_CHECK_GOTO(st, audio_from_hidden(m, h, hl, logits, training, rng, &audio, &alens), done);
  vox_s2t_batch with_audio = *b;
  with_audio.audio = audio;
  with_audio.audio_lens = alens;
  VOX_CHECK_GOTO(st, vox_speech_llm_s2t_loss(m, &with_audio, training, rng, &lm, n_target_tokens), done);
  VOX_CHECK_GOTO(st, vox_op_affine(ctc, ctc_weight, 0.0, &scaled), done);
  VOX_CHECK_GOTO(st, vox_op_add(lm, scaled, loss), done);
  if (ctc_value) {
    double v = 0;
    if (vox_tensor_item(ctc, &v) == VOX_OK) *ctc_value = v;
  }
done:
  vox_tensor_release(h);
  vox_tensor_release(hl);
  vox_tensor_release(logits);
  vox_tensor_release(ctc);
  vox_tensor_release(lm);
  vox_tensor_release(scaled);
  vox_tensor_release(audio);
  free(alens);
  return st == VOX_OK ? st : vox_error_context(st, "speech_llm s2t + ctc loss: ");
}

vox_status vox_speech_llm_voice_loss(vox_speech_llm *m, const vox_voice_batch *b, bool training, vox_rng *rng,
                                     vox_tensor **loss, int64_t *n_targets) {
  *loss = NULL;
  if (!m->cfg.has_output_projector || !m->cfg.has_voice_lm)
    return vox_errorf(VOX_ERR_STATE, "speech_llm voice loss: needs model.output_projector and model.voice_lm");
  int B = b->prompt.B;
  if (B <= 0) return vox_errorf(VOX_ERR_INVALID, "speech_llm voice loss: empty batch");
  vox_tensor *hidden = NULL, *hsel = NULL, *sem = NULL;
  int32_t *lens = NULL, *rows = NULL, *speech = NULL;
  vox_status st;
  /* The LLM (and front end) only feed the projector: without trainable parameters there, no tape. */
  bool tape = vox_sllm_prefix_trains(m, "llm.") || vox_sllm_prefix_trains(m, "input_projector.") ||
              vox_sllm_prefix_trains(m, "audio_encoder.");
  if (!tape) vox_no_grad_begin();
  st = vox_sllm_llm_hidden(m, &b->prompt, training && tape, rng, &hidden, &lens, NULL);
  if (!tape) vox_no_grad_end();
  if (st != VOX_OK) goto done;
  int64_t L = hidden->shape[1], N = 1, S = 1;
  for (int i = 0; i < B; i++) {
    if (b->n_text[i] > N) N = b->n_text[i];
    if (b->n_speech[i] > S) S = b->n_speech[i];
  }
  rows = calloc((size_t)(B * N), sizeof *rows);
  speech = calloc((size_t)(B * S), sizeof *speech);
  if (!rows || !speech) {
    st = vox_errorf(VOX_ERR_NOMEM, "speech_llm: out of memory");
    goto done;
  }
  /* Text positions are indices into the ids; the audio splice shifts those after the placeholder. */
  for (int i = 0; i < B; i++) {
    int64_t shift = 0;
    int32_t place = -1;
    if (b->prompt.features) {
      for (int t = 0; t < b->prompt.n_ids[i]; t++)
        if (b->prompt.ids[i][t] == m->cfg.audio_token_id) place = t;
      shift = lens[i] - (b->prompt.n_ids[i]);
    }
    for (int j = 0; j < b->n_text[i]; j++) {
      int32_t p = b->text_pos[i][j];
      if (p < 0 || p >= b->prompt.n_ids[i] || p == place) {
        st = vox_errorf(VOX_ERR_INDEX, "speech_llm voice loss: sample %d: text position %d is outside the ids or the "
                        "audio placeholder", i, p);
        goto done;
      }
      rows[i * N + j] = (int32_t)(i * L + p + (place >= 0 && p > place ? shift : 0));
    }
    memcpy(speech + (int64_t)i * S, b->speech[i], (size_t)b->n_speech[i] * sizeof *speech);
  }
  VOX_CHECK_GOTO(st, vox_seq_gather_rows(hidden, rows, 2, (int64_t[]){B, N}, &hsel), done);
  VOX_CHECK_GOTO(st, vox_output_projector_forward(&m->out_proj, hsel, &sem), done);
  vox_voice_lm_batch vb = {.B = B, .semantic = sem, .n_semantic = b->n_text, .speech = speech, .speech_stride = S,
                           .n_speech = b->n_speech};
  st = vox_voice_lm_loss(&m->voice_lm, &vb, training, rng, loss, n_targets);
done:
  vox_tensor_release(hidden);
  vox_tensor_release(hsel);
  vox_tensor_release(sem);
  free(lens);
  free(rows);
  free(speech);
  if (st != VOX_OK) return vox_error_context(st, "speech_llm voice loss: ");
  return VOX_OK;
}

vox_status vox_speech_llm_duplex_loss(vox_speech_llm *m, vox_tensor *features, vox_tensor *feat_lens,
                                      vox_tensor *labels, bool training, vox_rng *rng, vox_tensor **loss,
                                      int64_t *n_frames) {
  *loss = NULL;
  if (!m->cfg.has_duplex || !m->cfg.has_llm)
    return vox_errorf(VOX_ERR_STATE, "speech_llm duplex loss: needs model.llm and model.duplex");
  vox_tensor *audio = NULL, *kv = NULL, *hidden = NULL;
  int32_t *alens = NULL;
  vox_status st;
  bool tape = vox_sllm_prefix_trains(m, "llm.") || vox_sllm_prefix_trains(m, "input_projector.") ||
              vox_sllm_prefix_trains(m, "audio_encoder.");
  if (!tape) vox_no_grad_begin();
  st = vox_speech_llm_encode_audio(m, features, feat_lens, training && tape, rng, &audio, &alens);
  if (st == VOX_OK) st = vox_seq_i32(alens, 1, (int64_t[]){audio->shape[0]}, audio->device, &kv);
  if (st == VOX_OK) st = vox_qwen2_forward_embeds(&m->llm, audio, NULL, kv, NULL, training && tape, rng, &hidden);
  if (!tape) vox_no_grad_end();
  if (st == VOX_OK) {
    char b1[96], b2[96];
    if (labels->ndim != 2 || labels->shape[0] != hidden->shape[0] || labels->shape[1] != hidden->shape[1])
      st = vox_errorf(VOX_ERR_SHAPE, "speech_llm duplex loss: labels %s do not match the projected frames %s",
                      vox_tensor_describe(labels, b1, sizeof b1), vox_tensor_describe(hidden, b2, sizeof b2));
    else
      st = vox_duplex_loss(&m->duplex, hidden, kv, labels, training, rng, loss, n_frames, NULL);
  }
  vox_tensor_release(audio);
  vox_tensor_release(kv);
  vox_tensor_release(hidden);
  free(alens);
  return st;
}
