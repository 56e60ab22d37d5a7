/* nn multi-head attention: projections to [B, H, T, D] head views, RoPE, the fused attention op (which handles
 * GQA and the masks), and the merge of heads back to [B, T, H*D] for the output projection. */
#include "nn/attention.h"

#include "core/autograd.h"

static int head_dim(const vox_mha_config *c) { return c->head_dim ? c->head_dim : c->d_model / c->n_heads; }
static int kv_heads(const vox_mha_config *c) { return c->n_kv_heads ? c->n_kv_heads : c->n_heads; }

vox_status vox_mha_init(vox_mha *m, vox_params *reg, const char *name, const vox_mha_config *cfg, vox_rng *rng) {
  char buf[VOX_PARAM_NAME_MAX];
  m->cfg = *cfg;
  vox_mha_config *c = &m->cfg;
  if (c->d_model <= 0 || c->n_heads <= 0)
    return vox_errorf(VOX_ERR_INVALID, "attention '%s': d_model %d and n_heads %d must be positive", name, c->d_model,
                      c->n_heads);
  if (!c->head_dim && c->d_model % c->n_heads)
    return vox_errorf(VOX_ERR_INVALID, "attention '%s': d_model %d is not divisible by n_heads %d", name, c->d_model,
                      c->n_heads);
  c->head_dim = head_dim(c);
  c->n_kv_heads = kv_heads(c);
  if (c->n_kv_heads <= 0 || c->n_heads % c->n_kv_heads)
    return vox_errorf(VOX_ERR_INVALID, "attention '%s': n_heads %d is not a multiple of n_kv_heads %d", name,
                      c->n_heads, c->n_kv_heads);
  if (c->rope_theta == 0) c->rope_theta = 10000.0f;
  if (c->rope && (c->rotary_dim < 0 || c->rotary_dim > c->head_dim || c->rotary_dim % 2 || c->head_dim % 2))
    return vox_errorf(VOX_ERR_INVALID, "attention '%s': rotary_dim %d must be even and <= head_dim %d", name,
                      c->rotary_dim, c->head_dim);
  int q_out = c->n_heads * c->head_dim, kv_out = c->n_kv_heads * c->head_dim;
  VOX_TRY(vox_linear_init(&m->q_proj, reg, vox_params_path(buf, sizeof buf, "%s.q_proj", name), c->d_model, q_out,
                          c->q_bias, rng));
  VOX_TRY(vox_linear_init(&m->k_proj, reg, vox_params_path(buf, sizeof buf, "%s.k_proj", name), c->d_model, kv_out,
                          c->k_bias, rng));
  VOX_TRY(vox_linear_init(&m->v_proj, reg, vox_params_path(buf, sizeof buf, "%s.v_proj", name), c->d_model, kv_out,
                          c->v_bias, rng));
  return vox_linear_init(&m->o_proj, reg,
                         vox_params_path(buf, sizeof buf, "%s.%s", name, c->o_name ? c->o_name : "o_proj"), q_out,
                         c->d_model, c->o_bias, rng);
}

/* linear(x) [B, T, H*D] -> [B, H, T, D] (a transposed view; the attention/rope ops take strided input). */
static vox_status project_heads(const vox_linear *l, vox_tensor *x, int heads, int d, vox_tensor **out) {
  vox_tensor *y = NULL, *r = NULL;
  *out = NULL;
  vox_status st;
  VOX_CHECK_GOTO(st, vox_linear_forward(l, x, &y), done);
  VOX_CHECK_GOTO(st, vox_op_reshape(y, 4, (int64_t[]){x->shape[0], x->shape[1], heads, d}, &r), done);
  st = vox_op_transpose(r, 1, 2, out);
done:
  vox_tensor_release(y);
  vox_tensor_release(r);
  return st;
}

/* Appends k/v [B, Hkv, T, D] at cache->len and returns views of everything cached so far. */
static vox_status cache_append(vox_kv_cache *c, vox_tensor *k, vox_tensor *v, vox_tensor **k_all, vox_tensor **v_all) {
  char b1[96], b2[96];
  int64_t t = k->shape[2];
  *k_all = *v_all = NULL;
  if (k->shape[0] != c->k->shape[0] || k->shape[1] != c->k->shape[1] || k->shape[3] != c->k->shape[3])
    return vox_errorf(VOX_ERR_SHAPE, "kv cache: keys %s do not fit the cache %s", vox_tensor_describe(k, b1, sizeof b1),
                      vox_tensor_describe(c->k, b2, sizeof b2));
  if (c->len + t > c->capacity)
    return vox_errorf(VOX_ERR_INDEX, "kv cache: %lld cached + %lld new positions exceed the capacity %lld",
                      (long long)c->len, (long long)t, (long long)c->capacity);
  vox_tensor *dk = NULL, *dv = NULL;
  vox_status st;
  VOX_CHECK_GOTO(st, vox_tensor_view_slice(c->k, 2, c->len, c->len + t, 1, &dk), fail);
  VOX_CHECK_GOTO(st, vox_tensor_view_slice(c->v, 2, c->len, c->len + t, 1, &dv), fail);
  VOX_CHECK_GOTO(st, vox_tensor_copy_(dk, k), fail);
  VOX_CHECK_GOTO(st, vox_tensor_copy_(dv, v), fail);
  c->len += t;
  VOX_CHECK_GOTO(st, vox_tensor_view_slice(c->k, 2, 0, c->len, 1, k_all), fail);
  VOX_CHECK_GOTO(st, vox_tensor_view_slice(c->v, 2, 0, c->len, 1, v_all), fail);
fail:
  vox_tensor_release(dk);
  vox_tensor_release(dv);
  if (st != VOX_OK) {
    vox_tensor_drop(k_all);
    vox_tensor_drop(v_all);
  }
  return st;
}

vox_status vox_mha_forward(const vox_mha *m, vox_tensor *x, vox_tensor *positions, const vox_attention_mask *mask,
                           vox_kv_cache *cache, vox_tensor **out) {
  const vox_mha_config *c = &m->cfg;
  char b1[96];
  *out = NULL;
  if (x->ndim != 3 || x->shape[2] != c->d_model)
    return vox_errorf(VOX_ERR_SHAPE, "attention: input %s, expected [B, T, %d]", vox_tensor_describe(x, b1, sizeof b1),
                      c->d_model);
  if (c->rope && !positions) return vox_errorf(VOX_ERR_INVALID, "attention: RoPE needs positions");
  if (cache && vox_grad_enabled() && x->requires_grad)
    return vox_errorf(VOX_ERR_STATE, "attention: the KV cache is for decoding; run it inside no_grad");
  int64_t B = x->shape[0], T = x->shape[1];
  int D = c->head_dim, Hq = c->n_heads, Hkv = c->n_kv_heads;
  vox_tensor *q = NULL, *k = NULL, *v = NULL, *qr = NULL, *kr = NULL, *ka = NULL, *va = NULL, *o = NULL,
             *ot = NULL, *om = NULL;
  vox_status st;
  VOX_CHECK_GOTO(st, project_heads(&m->q_proj, x, Hq, D, &q), done);
  VOX_CHECK_GOTO(st, project_heads(&m->k_proj, x, Hkv, D, &k), done);
  VOX_CHECK_GOTO(st, project_heads(&m->v_proj, x, Hkv, D, &v), done);
  if (c->rope) {
    VOX_CHECK_GOTO(st, vox_op_rope(q, positions, c->rope_theta, c->rotary_dim, &qr), done);
    VOX_CHECK_GOTO(st, vox_op_rope(k, positions, c->rope_theta, c->rotary_dim, &kr), done);
  } else {
    qr = vox_tensor_retain(q);
    kr = vox_tensor_retain(k);
  }
  vox_attention_mask mk = mask ? *mask : (vox_attention_mask){0};
  if (cache) {
    mk.causal_offset += cache->len;
    VOX_CHECK_GOTO(st, cache_append(cache, kr, v, &ka, &va), done);
  } else {
    ka = vox_tensor_retain(kr);
    va = vox_tensor_retain(v);
  }
  VOX_CHECK_GOTO(st, vox_op_attention(qr, ka, va, &mk, 0.0f, &o), done);
  VOX_CHECK_GOTO(st, vox_op_transpose(o, 1, 2, &ot), done);
  VOX_CHECK_GOTO(st, vox_op_reshape(ot, 3, (int64_t[]){B, T, (int64_t)Hq * D}, &om), done);
  st = vox_linear_forward(&m->o_proj, om, out);
done:
  vox_tensor_release(q);
  vox_tensor_release(k);
  vox_tensor_release(v);
  vox_tensor_release(qr);
  vox_tensor_release(kr);
  vox_tensor_release(ka);
  vox_tensor_release(va);
  vox_tensor_release(o);
  vox_tensor_release(ot);
  vox_tensor_release(om);
  return st;
}

vox_status vox_kv_cache_init(vox_kv_cache *c, const vox_mha *m, int batch, int64_t capacity, vox_device device) {
  *c = (vox_kv_cache){.capacity = capacity};
  int64_t shape[4] = {batch, m->cfg.n_kv_heads, capacity, m->cfg.head_dim};
  VOX_TRY(vox_tensor_zeros(VOX_F32, device, 4, shape, &c->k));
  vox_status st = vox_tensor_zeros(VOX_F32, device, 4, shape, &c->v);
  if (st != VOX_OK) vox_tensor_drop(&c->k);
  return st;
}

void vox_kv_cache_reset(vox_kv_cache *c) { c->len = 0; }

void vox_kv_cache_free(vox_kv_cache *c) {
  vox_tensor_drop(&c->k);
  vox_tensor_drop(&c->v);
  c->len = 0;
}
