/* The tiny decoder LM: construction with HF names and initialisation (N(0, init_std) for matrices, ones for
 * norms, zeros for biases), a training forward with fused cross-entropy, and a KV-cache decoding forward. */
#include "models/tiny_lm.h"

#include <stdlib.h>

#include "core/autograd.h"
#include "core/ops.h"

vox_status vox_tiny_lm_new(const vox_tiny_lm_config *cfg, uint64_t seed, vox_tiny_lm **out) {
  char buf[VOX_PARAM_NAME_MAX];
  *out = NULL;
  vox_tiny_lm *m = calloc(1, sizeof *m);
  if (!m) return vox_errorf(VOX_ERR_NOMEM, "tiny_lm: out of memory");
  m->cfg = *cfg;
  vox_tiny_lm_config *c = &m->cfg;
  if (c->rope_theta == 0) c->rope_theta = 10000.0f;
  if (c->norm_eps == 0) c->norm_eps = 1e-6f;
  if (c->init_std == 0) c->init_std = 0.02f;
  if (c->n_kv_heads == 0) c->n_kv_heads = c->n_heads;
  vox_status st = VOX_OK;
  vox_rng rng = vox_rng_make(seed);
  if (c->vocab_size <= 0 || c->n_layers <= 0 || c->d_ff <= 0) {
    st = vox_errorf(VOX_ERR_INVALID, "tiny_lm: vocab %d, layers %d, d_ff %d must be positive", c->vocab_size,
                    c->n_layers, c->d_ff);
    goto fail;
  }
  m->layers = calloc((size_t)c->n_layers, sizeof *m->layers);
  if (!m->layers) {
    st = vox_errorf(VOX_ERR_NOMEM, "tiny_lm: out of memory");
    goto fail;
  }
  VOX_CHECK_GOTO(st, vox_params_new(&m->params), fail);
  VOX_CHECK_GOTO(st, vox_embedding_init(&m->embed, m->params, "model.embed_tokens", c->vocab_size, c->d_model,
                                        c->init_std, &rng), fail);
  vox_block_config bc = {
      .attn = {.d_model = c->d_model, .n_heads = c->n_heads, .n_kv_heads = c->n_kv_heads, .q_bias = c->qkv_bias,
               .k_bias = c->qkv_bias, .v_bias = c->qkv_bias, .rope = true, .rope_theta = c->rope_theta},
      .mlp_kind = VOX_MLP_SWIGLU, .d_ff = c->d_ff, .norm_kind = VOX_NORM_RMS, .norm_eps = c->norm_eps,
      .dropout = c->dropout, .checkpoint = c->checkpoint};
  for (int i = 0; i < c->n_layers; i++)
    VOX_CHECK_GOTO(st, vox_block_init(&m->layers[i], m->params, vox_params_path(buf, sizeof buf, "model.layers.%d", i),
                                      &bc, &rng), fail);
  VOX_CHECK_GOTO(st, vox_rms_norm_init(&m->norm, m->params, "model.norm", c->d_model, c->norm_eps), fail);
  if (c->tie_embeddings) {
    m->lm_head = m->embed.weight;
  } else {
    VOX_CHECK_GOTO(st, vox_params_create(m->params, "lm_head.weight", VOX_CPU, 2,
                                         (int64_t[]){c->vocab_size, c->d_model}, &m->lm_head), fail);
  }
  /* HF _init_weights: every Linear N(0, init_std) with zero bias (the block's PyTorch-default init is replaced). */
  for (int i = 0; i < m->params->count; i++) {
    vox_param *p = &m->params->items[i];
    if (p->tensor->ndim == 2 && p->tensor != m->embed.weight)
      VOX_CHECK_GOTO(st, vox_init_normal(p->tensor, &rng, 0.0, c->init_std), fail);
    else if (p->tensor->ndim == 1 && vox_params_name_matches("*.bias", p->name))
      VOX_CHECK_GOTO(st, vox_init_constant(p->tensor, 0.0), fail);
  }
  *out = m;
  return VOX_OK;
fail:
  vox_tiny_lm_free(m);
  return vox_error_context(st, "tiny_lm: ");
}

void vox_tiny_lm_free(vox_tiny_lm *m) {
  if (!m) return;
  vox_params_free(m->params);
  free(m->layers);
  free(m);
}

static vox_status positions_for(int64_t start, int64_t T, vox_tensor **out) {
  int32_t *p = malloc((size_t)T * sizeof *p);
  if (!p) return vox_errorf(VOX_ERR_NOMEM, "tiny_lm: out of memory");
  for (int64_t t = 0; t < T; t++) p[t] = (int32_t)(start + t);
  vox_status st = vox_tensor_from_host(VOX_I32, VOX_CPU, 1, (int64_t[]){T}, p, out);
  free(p);
  return st;
}

/* embed -> blocks -> norm -> lm_head. caches NULL for training/full forwards. */
static vox_status run(vox_tiny_lm *m, vox_tensor *ids, vox_kv_cache *caches, bool training, vox_rng *rng,
                      vox_tensor **logits) {
  char b1[96];
  *logits = NULL;
  if (ids->ndim != 2 || ids->dtype != VOX_I32)
    return vox_errorf(VOX_ERR_SHAPE, "tiny_lm: ids %s, expected i32 [B, T]", vox_tensor_describe(ids, b1, sizeof b1));
  int64_t start = caches ? caches[0].len : 0;
  vox_tensor *pos = NULL, *h = NULL, *n = NULL;
  vox_status st;
  VOX_CHECK_GOTO(st, positions_for(start, ids->shape[1], &pos), done);
  VOX_CHECK_GOTO(st, vox_embedding_forward(&m->embed, ids, &h), done);
  vox_attention_mask mask = {.causal = true};
  for (int i = 0; i < m->cfg.n_layers; i++) {
    vox_tensor *next = NULL;
    st = vox_block_forward(&m->layers[i], h, pos, &mask, caches ? &caches[i] : NULL, training, rng, &next);
    vox_tensor_release(h);
    h = next;
    if (st != VOX_OK) goto done;
  }
  VOX_CHECK_GOTO(st, vox_rms_norm_forward(&m->norm, h, &n), done);
  st = vox_op_linear(n, m->lm_head, NULL, logits);
done:
  vox_tensor_release(pos);
  vox_tensor_release(h);
  vox_tensor_release(n);
  return st;
}

vox_status vox_tiny_lm_forward(vox_tiny_lm *m, vox_tensor *ids, vox_tensor *targets, bool training, vox_rng *rng,
                               vox_tensor **logits, vox_tensor **loss) {
  vox_tensor *lg = NULL;
  if (logits) *logits = NULL;
  if (loss) *loss = NULL;
  VOX_TRY(run(m, ids, NULL, training, rng, &lg));
  vox_status st = VOX_OK;
  if (targets && loss) st = vox_op_cross_entropy(lg, targets, -100, 0.0f, loss);
  if (st == VOX_OK && logits) *logits = lg;
  else vox_tensor_release(lg);
  return st;
}

vox_status vox_tiny_lm_decode(vox_tiny_lm *m, vox_tensor *ids, vox_kv_cache *caches, vox_tensor **logits) {
  vox_no_grad_begin(); /* decoding is inference: no tape, and the cache holds plain tensors */
  vox_status st = run(m, ids, caches, false, NULL, logits);
  vox_no_grad_end();
  return st;
}

vox_status vox_tiny_lm_caches_new(const vox_tiny_lm *m, int batch, int64_t capacity, vox_kv_cache **caches) {
  *caches = calloc((size_t)m->cfg.n_layers, sizeof **caches);
  if (!*caches) return vox_errorf(VOX_ERR_NOMEM, "tiny_lm: out of memory");
  for (int i = 0; i < m->cfg.n_layers; i++) {
    vox_status st = vox_kv_cache_init(&(*caches)[i], &m->layers[i].attn, batch, capacity, VOX_CPU);
    if (st != VOX_OK) {
      vox_tiny_lm_caches_free(m, *caches);
      *caches = NULL;
      return st;
    }
  }
  return VOX_OK;
}

void vox_tiny_lm_caches_free(const vox_tiny_lm *m, vox_kv_cache *caches) {
  if (!caches) return;
  for (int i = 0; i < m->cfg.n_layers; i++) vox_kv_cache_free(&caches[i]);
  free(caches);
}
