/* The Qwen2 decoder: construction with HF names under a prefix and HF initialisation, the forward from embeddings
 * (causal + padding mask, optional KV caches), the lm_head, and the id-level conveniences (loss, decoding). */
#include "models/qwen2.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/autograd.h"
#include "core/ops.h"
#include "models/seq_util.h"

vox_qwen2_config vox_qwen2_config_default(void) {
  return (vox_qwen2_config){.vocab_size = 151936, .hidden_size = 4096, .num_hidden_layers = 32,
                            .num_attention_heads = 32, .num_key_value_heads = 32, .intermediate_size = 22016,
                            .max_position_embeddings = 32768, .rope_theta = 10000.0f, .rms_norm_eps = 1e-6f,
                            .initializer_range = 0.02f, .attention_bias = true};
}

static vox_status check_config(const vox_qwen2_config *c) {
  if (c->vocab_size <= 0 || c->hidden_size <= 0 || c->num_hidden_layers <= 0 || c->num_attention_heads <= 0 ||
      c->num_key_value_heads <= 0 || c->intermediate_size <= 0)
    return vox_errorf(VOX_ERR_INVALID,
                      "qwen2: vocab_size %d, hidden_size %d, num_hidden_layers %d, num_attention_heads %d, "
                      "num_key_value_heads %d, intermediate_size %d must all be positive",
                      c->vocab_size, c->hidden_size, c->num_hidden_layers, c->num_attention_heads,
                      c->num_key_value_heads, c->intermediate_size);
  if (c->hidden_size % c->num_attention_heads || c->num_attention_heads % c->num_key_value_heads)
    return vox_errorf(VOX_ERR_INVALID,
                      "qwen2: hidden_size %d must divide by num_attention_heads %d, which must divide by "
                      "num_key_value_heads %d",
                      c->hidden_size, c->num_attention_heads, c->num_key_value_heads);
  return VOX_OK;
}

vox_status vox_qwen2_init(vox_qwen2 *m, vox_params *reg, const char *prefix, const vox_qwen2_config *cfg,
                          vox_rng *rng) {
  char buf[VOX_PARAM_NAME_MAX];
  *m = (vox_qwen2){.cfg = *cfg};
  if (!prefix) prefix = "";
  if (strlen(prefix) >= sizeof m->prefix)
    return vox_errorf(VOX_ERR_INVALID, "qwen2: prefix '%s' is longer than %zu characters", prefix,
                      sizeof m->prefix - 1);
  snprintf(m->prefix, sizeof m->prefix, "%s", prefix);
  vox_qwen2_config *c = &m->cfg;
  if (c->rope_theta == 0) c->rope_theta = 10000.0f;
  if (c->rms_norm_eps == 0) c->rms_norm_eps = 1e-6f;
  if (c->initializer_range == 0) c->initializer_range = 0.02f;
  if (c->num_key_value_heads == 0) c->num_key_value_heads = c->num_attention_heads;
  VOX_TRY(check_config(c));
  int first = reg->count;
  vox_status st;
  m->layers = calloc((size_t)c->num_hidden_layers, sizeof *m->layers);
  if (!m->layers) {
    st = vox_errorf(VOX_ERR_NOMEM, "qwen2: out of memory");
    goto fail;
  }
  VOX_CHECK_GOTO(st, vox_embedding_init(&m->embed, reg, vox_params_path(buf, sizeof buf, "%smodel.embed_tokens", prefix),
                                        c->vocab_size, c->hidden_size, c->initializer_range, rng), fail);
  vox_block_config bc = {
      .attn = {.d_model = c->hidden_size, .n_heads = c->num_attention_heads, .n_kv_heads = c->num_key_value_heads,
               .q_bias = c->attention_bias, .k_bias = c->attention_bias, .v_bias = c->attention_bias, .rope = true,
               .rope_theta = c->rope_theta},
      .mlp_kind = VOX_MLP_SWIGLU, .d_ff = c->intermediate_size, .norm_kind = VOX_NORM_RMS,
      .norm_eps = c->rms_norm_eps, .dropout = c->dropout, .checkpoint = c->checkpoint};
  for (int i = 0; i < c->num_hidden_layers; i++)
    VOX_CHECK_GOTO(st, vox_block_init(&m->layers[i], reg, vox_params_path(buf, sizeof buf, "%smodel.layers.%d", prefix, i),
                                      &bc, rng), fail);
  VOX_CHECK_GOTO(st, vox_rms_norm_init(&m->norm, reg, vox_params_path(buf, sizeof buf, "%smodel.norm", prefix),
                                       c->hidden_size, c->rms_norm_eps), fail);
  if (c->tie_word_embeddings) {
    m->lm_head = m->embed.weight;
  } else {
    VOX_CHECK_GOTO(st, vox_params_create(reg, vox_params_path(buf, sizeof buf, "%slm_head.weight", prefix), VOX_CPU, 2,
                                         (int64_t[]){c->vocab_size, c->hidden_size}, &m->lm_head), fail);
  }
  /* HF _init_weights: every Linear N(0, initializer_range) with zero bias (replacing the blocks' PyTorch init). */
  for (int i = first; i < reg->count; i++) {
    vox_param *p = &reg->items[i];
    if (p->tensor->ndim == 2 && p->tensor != m->embed.weight)
      VOX_CHECK_GOTO(st, vox_init_normal(p->tensor, rng, 0.0, c->initializer_range), fail);
    else if (p->tensor->ndim == 1 && vox_params_name_matches("*.bias", p->name))
      VOX_CHECK_GOTO(st, vox_init_constant(p->tensor, 0.0), fail);
  }
  m->param_first = first;
  m->param_count = reg->count - first;
  return VOX_OK;
fail:
  vox_qwen2_release(m);
  return vox_error_context(st, "qwen2 '%s': ", prefix);
}

void vox_qwen2_release(vox_qwen2 *m) {
  if (!m) return;
  free(m->layers);
  m->layers = NULL;
}

vox_status vox_qwen2_embed(const vox_qwen2 *m, vox_tensor *ids, vox_tensor **out) {
  char b1[96];
  *out = NULL;
  if (ids->ndim != 2 || ids->dtype != VOX_I32)
    return vox_errorf(VOX_ERR_SHAPE, "qwen2 embed: ids %s, expected i32 [B, T]", vox_tensor_describe(ids, b1, sizeof b1));
  return vox_embedding_forward(&m->embed, ids, out);
}

static vox_status positions_for(int64_t start, int64_t T, vox_device device, vox_tensor **out) {
  int32_t *p = malloc((size_t)T * sizeof *p);
  if (!p) return vox_errorf(VOX_ERR_NOMEM, "qwen2: out of memory");
  for (int64_t t = 0; t < T; t++) p[t] = (int32_t)(start + t);
  vox_status st = vox_tensor_from_host(VOX_I32, device, 1, (int64_t[]){T}, p, out);
  free(p);
  return st;
}

vox_status vox_qwen2_forward_embeds(vox_qwen2 *m, vox_tensor *embeds, vox_tensor *positions, vox_tensor *kv_lens,
                                    vox_kv_cache *caches, bool training, vox_rng *rng, vox_tensor **hidden) {
  char b1[96];
  *hidden = NULL;
  if (embeds->ndim != 3 || embeds->shape[2] != m->cfg.hidden_size)
    return vox_errorf(VOX_ERR_SHAPE, "qwen2: embeddings %s, expected [B, T, %d]",
                      vox_tensor_describe(embeds, b1, sizeof b1), m->cfg.hidden_size);
  if (kv_lens && (kv_lens->dtype != VOX_I32 || kv_lens->ndim != 1 || kv_lens->shape[0] != embeds->shape[0]))
    return vox_errorf(VOX_ERR_SHAPE, "qwen2: kv_lens %s, expected i32 [%lld]",
                      vox_tensor_describe(kv_lens, b1, sizeof b1), (long long)embeds->shape[0]);
  vox_tensor *pos = NULL, *h = NULL;
  vox_status st = VOX_OK;
  if (positions) {
    pos = vox_tensor_retain(positions);
  } else {
    VOX_CHECK_GOTO(st, positions_for(caches ? caches[0].len : 0, embeds->shape[1], embeds->device, &pos), done);
  }
  vox_attention_mask mask = {.causal = true, .kv_lens = kv_lens};
  h = vox_tensor_retain(embeds);
  for (int i = 0; i < m->cfg.num_hidden_layers; i++) {
    vox_tensor *next = NULL;
    st = vox_block_forward(&m->layers[i], h, pos, &mask, caches ? &caches[i] : NULL, training, rng, &next);
    vox_tensor_release(h);
    h = next;
    if (st != VOX_OK) goto done;
  }
  st = vox_rms_norm_forward(&m->norm, h, hidden);
done:
  vox_tensor_release(pos);
  vox_tensor_release(h);
  return st == VOX_OK ? st : vox_error_context(st, "qwen2 '%s': ", m->prefix);
}

vox_status vox_qwen2_logits(const vox_qwen2 *m, vox_tensor *hidden, vox_tensor **logits) {
  return vox_op_linear(hidden, m->lm_head, NULL, logits);
}

static vox_status run_ids(vox_qwen2 *m, vox_tensor *ids, vox_kv_cache *caches, bool training, vox_rng *rng,
                          vox_tensor **logits) {
  vox_tensor *e = NULL, *h = NULL;
  *logits = NULL;
  vox_status st;
  VOX_CHECK_GOTO(st, vox_qwen2_embed(m, ids, &e), done);
  VOX_CHECK_GOTO(st, vox_qwen2_forward_embeds(m, e, NULL, NULL, caches, training, rng, &h), done);
  st = vox_qwen2_logits(m, h, logits);
done:
  vox_tensor_release(e);
  vox_tensor_release(h);
  return st;
}

/* The loss alone needs the head only where a target is: gathering those rows first skips the vocabulary-wide
 * logits of padding and prompt positions (most of a ChatML sample's) and gives the same mean. */
static vox_status loss_on_target_rows(vox_qwen2 *m, vox_tensor *ids, vox_tensor *targets, bool training,
                                      vox_rng *rng, vox_tensor **loss) {
  int64_t N = vox_tensor_numel(targets), n = 0;
  int32_t *tg = malloc((size_t)(N ? N : 1) * sizeof *tg), *rows = malloc((size_t)(N ? N : 1) * sizeof *rows);
  vox_tensor *e = NULL, *h = NULL, *hsel = NULL, *lg = NULL, *tsel = NULL;
  vox_status st = tg && rows ? VOX_OK : vox_errorf(VOX_ERR_NOMEM, "qwen2 loss: out of memory");
  if (st == VOX_OK && (targets->ndim != 2 || ids->ndim != 2 || targets->shape[0] != ids->shape[0] ||
                       targets->shape[1] != ids->shape[1]))
    st = vox_errorf(VOX_ERR_SHAPE, "qwen2 loss: targets must have the shape of ids [B, T]");
  if (st == VOX_OK) st = vox_tensor_read_i32(targets, tg);
  for (int64_t i = 0; st == VOX_OK && i < N; i++)
    if (tg[i] != -100) rows[n] = (int32_t)i, tg[n++] = tg[i];
  if (st == VOX_OK && n == 0) st = vox_errorf(VOX_ERR_INVALID, "qwen2 loss: every target is -100 (nothing to learn)");
  if (st == VOX_OK) st = vox_qwen2_embed(m, ids, &e);
  if (st == VOX_OK) st = vox_qwen2_forward_embeds(m, e, NULL, NULL, NULL, training, rng, &h);
  if (st == VOX_OK) st = vox_seq_gather_rows(h, rows, 1, (int64_t[]){n}, &hsel);
  if (st == VOX_OK) st = vox_qwen2_logits(m, hsel, &lg);
  if (st == VOX_OK) st = vox_seq_i32(tg, 1, (int64_t[]){n}, lg->device, &tsel);
  if (st == VOX_OK) st = vox_op_cross_entropy(lg, tsel, -100, 0.0f, loss);
  vox_tensor_release(e);
  vox_tensor_release(h);
  vox_tensor_release(hsel);
  vox_tensor_release(lg);
  vox_tensor_release(tsel);
  free(tg);
  free(rows);
  return st;
}

vox_status vox_qwen2_forward(vox_qwen2 *m, vox_tensor *ids, vox_tensor *targets, bool training, vox_rng *rng,
                             vox_tensor **logits, vox_tensor **loss) {
  vox_tensor *lg = NULL;
  if (logits) *logits = NULL;
  if (loss) *loss = NULL;
  if (targets && loss && !logits) {
    vox_status st = loss_on_target_rows(m, ids, targets, training, rng, loss);
    return st == VOX_OK ? st : vox_error_context(st, "qwen2 '%s': ", m->prefix);
  }
  VOX_TRY(run_ids(m, ids, NULL, training, rng, &lg));
  vox_status st = VOX_OK;
  if (targets && loss) st = vox_op_cross_entropy(lg, targets, -100, 0.0f, loss);
  if (st == VOX_OK && logits) *logits = lg;
  else vox_tensor_release(lg);
  return st;
}

vox_status vox_qwen2_decode(vox_qwen2 *m, vox_tensor *ids, vox_kv_cache *caches, vox_tensor **logits) {
  if (!caches) return vox_errorf(VOX_ERR_INVALID, "qwen2 decode: needs the caches (vox_qwen2_caches_new)");
  vox_no_grad_begin(); /* decoding is inference: no tape, and the cache holds plain tensors */
  vox_status st = run_ids(m, ids, caches, false, NULL, logits);
  vox_no_grad_end();
  return st;
}

vox_status vox_qwen2_caches_new(const vox_qwen2 *m, int batch, int64_t capacity, vox_kv_cache **caches) {
  *caches = calloc((size_t)m->cfg.num_hidden_layers, sizeof **caches);
  if (!*caches) return vox_errorf(VOX_ERR_NOMEM, "qwen2: out of memory");
  for (int i = 0; i < m->cfg.num_hidden_layers; i++) {
    vox_status st = vox_kv_cache_init(&(*caches)[i], &m->layers[i].attn, batch, capacity, m->embed.weight->device);
    if (st != VOX_OK) {
      vox_qwen2_caches_free(m, *caches);
      *caches = NULL;
      return st;
    }
  }
  return VOX_OK;
}

void vox_qwen2_caches_free(const vox_qwen2 *m, vox_kv_cache *caches) {
  if (!caches) return;
  for (int i = 0; i < m->cfg.num_hidden_layers; i++) vox_kv_cache_free(&caches[i]);
  free(caches);
}
