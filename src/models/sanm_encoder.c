/* SAN-M encoder: construction with FunASR names, the layer forward (fused attention op in inference, an explicit
 * softmax path when attention dropout is active), FSMN memory via a depthwise conv, and per-layer checkpointing.
 * Reference: modelscope/FunASR funasr/models/sense_voice/model.py @ 0170f534b017 (see sanm_encoder.h). */
#include "models/sanm_encoder.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/autograd.h"
#include "core/ops.h"
#include "nn/dropout.h"

vox_sanm_encoder_config vox_sanm_encoder_config_small(void) {
  return (vox_sanm_encoder_config){.input_size = 560, .output_size = 512, .attention_heads = 4,
                                   .linear_units = 2048, .num_blocks = 50, .tp_blocks = 20, .kernel_size = 11,
                                   .sanm_shfit = 0, .dropout_rate = 0.1f, .attention_dropout_rate = 0.1f,
                                   .norm_eps = 1e-5f};
}

vox_sanm_encoder_config vox_sanm_encoder_config_large(void) {
  vox_sanm_encoder_config c = vox_sanm_encoder_config_small();
  c.output_size = 1024;
  c.attention_heads = 16;
  c.linear_units = 4096;
  return c;
}

/* ---- masks ---------------------------------------------------------------------------------------------------- */

/* Everything a layer needs about padding, built once per forward from the lengths (all NULL without padding):
 * kv_lens for the fused attention op, keep f32 [B, T, 1] (FunASR's mask, applied to V before and after the FSMN),
 * pad_keys f32 [B, 1, 1, T] (1 at padded keys) for the explicit attention path. */
typedef struct sanm_masks {
  vox_tensor *kv_lens, *keep, *pad_keys;
} sanm_masks;

static void masks_release(sanm_masks *m) {
  vox_tensor_release(m->kv_lens);
  vox_tensor_release(m->keep);
  vox_tensor_release(m->pad_keys);
  *m = (sanm_masks){0};
}

/* Lengths are clamped to [0, T]; *clamped (host, B entries) is filled when not NULL. */
static vox_status masks_build(vox_tensor *lengths, int64_t B, int64_t T, vox_device device, sanm_masks *m,
                              int32_t *clamped) {
  char b1[96];
  *m = (sanm_masks){0};
  if (!lengths) return VOX_OK;
  if (lengths->dtype != VOX_I32 || lengths->ndim != 1 || lengths->shape[0] != B)
    return vox_errorf(VOX_ERR_SHAPE, "sanm_encoder: lengths %s, expected i32 [%lld]",
                      vox_tensor_describe(lengths, b1, sizeof b1), (long long)B);
  vox_status st = VOX_OK;
  int32_t *len = malloc((size_t)B * sizeof *len);
  float *keep = malloc((size_t)(B * T) * sizeof *keep), *pad = malloc((size_t)(B * T) * sizeof *pad);
  if (!len || !keep || !pad) {
    st = vox_errorf(VOX_ERR_NOMEM, "sanm_encoder: out of memory for masks of [%lld, %lld]", (long long)B,
                    (long long)T);
    goto done;
  }
  VOX_CHECK_GOTO(st, vox_tensor_read_i32(lengths, len), done);
  for (int64_t b = 0; b < B; b++) {
    len[b] = len[b] < 0 ? 0 : (len[b] > T ? (int32_t)T : len[b]);
    if (clamped) clamped[b] = len[b];
    for (int64_t t = 0; t < T; t++) {
      keep[b * T + t] = t < len[b] ? 1.0f : 0.0f;
      pad[b * T + t] = 1.0f - keep[b * T + t];
    }
  }
  VOX_CHECK_GOTO(st, vox_tensor_from_host(VOX_I32, device, 1, (int64_t[]){B}, len, &m->kv_lens), done);
  VOX_CHECK_GOTO(st, vox_tensor_from_host(VOX_F32, device, 3, (int64_t[]){B, T, 1}, keep, &m->keep), done);
  VOX_CHECK_GOTO(st, vox_tensor_from_host(VOX_F32, device, 4, (int64_t[]){B, 1, 1, T}, pad, &m->pad_keys), done);
done:
  free(len);
  free(keep);
  free(pad);
  if (st != VOX_OK) masks_release(m);
  return st;
}

/* ---- layer ---------------------------------------------------------------------------------------------------- */

vox_status vox_sanm_layer_init(vox_sanm_layer *l, vox_params *reg, const char *name, int in_size, int size,
                               const vox_sanm_encoder_config *cfg, vox_rng *rng) {
  char buf[VOX_PARAM_NAME_MAX];
  *l = (vox_sanm_layer){.in_size = in_size, .size = size, .heads = cfg->attention_heads,
                        .kernel_size = cfg->kernel_size, .dropout = cfg->dropout_rate,
                        .attention_dropout = cfg->attention_dropout_rate, .checkpoint = cfg->checkpoint};
  if (in_size <= 0 || size <= 0 || cfg->attention_heads <= 0 || size % cfg->attention_heads || cfg->kernel_size <= 0 ||
      cfg->linear_units <= 0 || cfg->sanm_shfit < 0)
    return vox_errorf(VOX_ERR_INVALID,
                      "sanm_layer %s: in %d, size %d, heads %d (must divide size), kernel %d, units %d, shift %d: "
                      "all must be positive (shift >= 0)",
                      name, in_size, size, cfg->attention_heads, cfg->kernel_size, cfg->linear_units, cfg->sanm_shfit);
  /* MultiHeadedAttentionSANM.__init__: left (K-1)/2 (+ shift), right K-1-left (ConstantPad1d crops if < 0). */
  l->left_pad = (cfg->kernel_size - 1) / 2 + cfg->sanm_shfit;
  l->right_pad = cfg->kernel_size - 1 - l->left_pad;
  float eps = cfg->norm_eps > 0 ? cfg->norm_eps : 1e-5f;
  VOX_TRY(vox_linear_init(&l->linear_out, reg, vox_params_path(buf, sizeof buf, "%s.self_attn.linear_out", name), size,
                          size, true, rng));
  VOX_TRY(vox_linear_init(&l->linear_q_k_v, reg, vox_params_path(buf, sizeof buf, "%s.self_attn.linear_q_k_v", name),
                          in_size, 3 * size, true, rng));
  vox_conv1d_config cc = {.in_channels = size, .out_channels = size, .kernel_size = cfg->kernel_size, .groups = size,
                          .bias = false};
  VOX_TRY(vox_conv1d_init(&l->fsmn_block, reg, vox_params_path(buf, sizeof buf, "%s.self_attn.fsmn_block", name), &cc,
                          rng));
  VOX_TRY(vox_linear_init(&l->w_1, reg, vox_params_path(buf, sizeof buf, "%s.feed_forward.w_1", name), size,
                          cfg->linear_units, true, rng));
  VOX_TRY(vox_linear_init(&l->w_2, reg, vox_params_path(buf, sizeof buf, "%s.feed_forward.w_2", name),
                          cfg->linear_units, size, true, rng));
  VOX_TRY(vox_layer_norm_init(&l->norm1, reg, vox_params_path(buf, sizeof buf, "%s.norm1", name), in_size, eps, true));
  VOX_TRY(vox_layer_norm_init(&l->norm2, reg, vox_params_path(buf, sizeof buf, "%s.norm2", name), size, eps, true));
  return VOX_OK;
}

/* forward_fsmn: v [B, T, d] -> drop(conv_dw(pad(v*keep)) + v*keep) * keep. */
static vox_status fsmn_forward(const vox_sanm_layer *l, vox_tensor *v, const sanm_masks *mk, bool training,
                               vox_rng *rng, vox_tensor **out) {
  vox_tensor *vm = NULL, *vt = NULL, *zl = NULL, *zr = NULL, *cat = NULL, *in = NULL, *c = NULL, *ct = NULL,
             *s = NULL, *sd = NULL;
  vox_status st;
  *out = NULL;
  int64_t B = v->shape[0], d = v->shape[2];
  if (mk->keep) VOX_CHECK_GOTO(st, vox_op_mul(v, mk->keep, &vm), done);
  else vm = vox_tensor_retain(v);
  VOX_CHECK_GOTO(st, vox_op_transpose(vm, 1, 2, &vt), done);
  int conv_pad = 0;
  if (l->left_pad == l->right_pad) {
    conv_pad = l->left_pad; /* the centred case (sanm_shfit 0, odd K): the conv pads both sides itself */
    in = vox_tensor_retain(vt);
  } else {
    vox_tensor *parts[3];
    int n = 0;
    if (l->left_pad > 0) {
      VOX_CHECK_GOTO(st, vox_tensor_zeros(v->dtype, v->device, 3, (int64_t[]){B, d, l->left_pad}, &zl), done);
      parts[n++] = zl;
    }
    parts[n++] = vt;
    if (l->right_pad > 0) {
      VOX_CHECK_GOTO(st, vox_tensor_zeros(v->dtype, v->device, 3, (int64_t[]){B, d, l->right_pad}, &zr), done);
      parts[n++] = zr;
    }
    VOX_CHECK_GOTO(st, vox_op_concat(n, parts, 2, &cat), done);
    if (l->right_pad < 0) VOX_CHECK_GOTO(st, vox_op_slice(cat, 2, 0, cat->shape[2] + l->right_pad, 1, &in), done);
    else in = vox_tensor_retain(cat);
  }
  VOX_CHECK_GOTO(st, vox_op_conv1d(in, l->fsmn_block.weight, NULL, 1, conv_pad, 1, (int)d, &c), done);
  VOX_CHECK_GOTO(st, vox_op_transpose(c, 1, 2, &ct), done);
  VOX_CHECK_GOTO(st, vox_op_add(ct, vm, &s), done);
  VOX_CHECK_GOTO(st, vox_dropout_forward(&(vox_dropout){l->attention_dropout}, s, training, rng, &sd), done);
  if (mk->keep) st = vox_op_mul(sd, mk->keep, out);
  else *out = vox_tensor_retain(sd);
done:
  vox_tensor_release(vm);
  vox_tensor_release(vt);
  vox_tensor_release(zl);
  vox_tensor_release(zr);
  vox_tensor_release(cat);
  vox_tensor_release(in);
  vox_tensor_release(c);
  vox_tensor_release(ct);
  vox_tensor_release(s);
  vox_tensor_release(sd);
  return st;
}

/* forward_attention with dropout on the probabilities (FunASR's self.dropout(self.attn)); the fused op has no
 * dropout, so this path spells softmax out. Padded keys get -inf before and 0 after the softmax, as FunASR. */
static vox_status attention_explicit(const vox_sanm_layer *l, vox_tensor *q, vox_tensor *k, vox_tensor *v,
                                     const sanm_masks *mk, vox_rng *rng, vox_tensor **out) {
  vox_tensor *qs = NULL, *ss = NULL, *sm = NULL, *p = NULL, *pm = NULL, *pd = NULL;
  vox_status st;
  *out = NULL;
  /* q * d_k^-0.5 first, as FunASR: one [B, H, T, dk] tensor instead of another [B, H, T, T] */
  VOX_CHECK_GOTO(st, vox_op_affine(q, 1.0 / sqrt((double)q->shape[3]), 0.0, &qs), done);
  VOX_CHECK_GOTO(st, vox_op_matmul(qs, k, false, true, &ss), done);
  if (mk->pad_keys) {
    VOX_CHECK_GOTO(st, vox_op_masked_fill(ss, mk->pad_keys, -INFINITY, &sm), done);
    VOX_CHECK_GOTO(st, vox_op_softmax(sm, -1, &p), done);
    VOX_CHECK_GOTO(st, vox_op_masked_fill(p, mk->pad_keys, 0.0, &pm), done);
  } else {
    VOX_CHECK_GOTO(st, vox_op_softmax(ss, -1, &pm), done);
  }
  VOX_CHECK_GOTO(st, vox_dropout_forward(&(vox_dropout){l->attention_dropout}, pm, true, rng, &pd), done);
  st = vox_op_matmul(pd, v, false, false, out);
done:
  vox_tensor_release(qs);
  vox_tensor_release(ss);
  vox_tensor_release(sm);
  vox_tensor_release(p);
  vox_tensor_release(pm);
  vox_tensor_release(pd);
  return st;
}

/* [B, T, H*dk] view -> [B, H, T, dk] view. */
static vox_status to_heads(vox_tensor *x, int heads, vox_tensor **out) {
  vox_tensor *r = NULL;
  VOX_TRY(vox_op_reshape(x, 4, (int64_t[]){x->shape[0], x->shape[1], heads, x->shape[2] / heads}, &r));
  vox_status st = vox_op_transpose(r, 1, 2, out);
  vox_tensor_release(r);
  return st;
}

/* MultiHeadedAttentionSANM.forward: h [B, T, in] -> attention + FSMN memory [B, T, size]. */
static vox_status self_attn_forward(const vox_sanm_layer *l, vox_tensor *h, const sanm_masks *mk, bool training,
                                    vox_rng *rng, vox_tensor **out) {
  vox_tensor *qkv = NULL, *parts[3] = {NULL, NULL, NULL}, *qh = NULL, *kh = NULL, *vh = NULL, *mem = NULL, *o = NULL,
             *ot = NULL, *om = NULL, *a = NULL;
  vox_status st;
  *out = NULL;
  int64_t B = h->shape[0], T = h->shape[1], d = l->size;
  VOX_CHECK_GOTO(st, vox_linear_forward(&l->linear_q_k_v, h, &qkv), done);
  VOX_CHECK_GOTO(st, vox_op_split(qkv, -1, 3, (int64_t[]){d, d, d}, parts), done);
  VOX_CHECK_GOTO(st, to_heads(parts[0], l->heads, &qh), done);
  VOX_CHECK_GOTO(st, to_heads(parts[1], l->heads, &kh), done);
  VOX_CHECK_GOTO(st, to_heads(parts[2], l->heads, &vh), done);
  VOX_CHECK_GOTO(st, fsmn_forward(l, parts[2], mk, training, rng, &mem), done);
  if (training && l->attention_dropout > 0.0f) {
    VOX_CHECK_GOTO(st, attention_explicit(l, qh, kh, vh, mk, rng, &o), done);
  } else {
    vox_attention_mask am = {.kv_lens = mk->kv_lens};
    VOX_CHECK_GOTO(st, vox_op_attention(qh, kh, vh, &am, 0.0f, &o), done);
  }
  VOX_CHECK_GOTO(st, vox_op_transpose(o, 1, 2, &ot), done);
  VOX_CHECK_GOTO(st, vox_op_reshape(ot, 3, (int64_t[]){B, T, d}, &om), done);
  VOX_CHECK_GOTO(st, vox_linear_forward(&l->linear_out, om, &a), done);
  st = vox_op_add(a, mem, out);
done:
  vox_tensor_release(qkv);
  for (int i = 0; i < 3; i++) vox_tensor_release(parts[i]);
  vox_tensor_release(qh);
  vox_tensor_release(kh);
  vox_tensor_release(vh);
  vox_tensor_release(mem);
  vox_tensor_release(o);
  vox_tensor_release(ot);
  vox_tensor_release(om);
  vox_tensor_release(a);
  return st;
}

/* EncoderLayerSANM.forward (normalize_before, no concat_after, no stochastic depth). */
static vox_status layer_plain(const vox_sanm_layer *l, vox_tensor *x, const sanm_masks *mk, bool training,
                              vox_rng *rng, vox_tensor **out) {
  vox_tensor *h = NULL, *a = NULL, *ad = NULL, *r = NULL, *h2 = NULL, *f1 = NULL, *f1r = NULL, *f1d = NULL,
             *f2 = NULL, *f2d = NULL;
  vox_dropout drop = {l->dropout};
  vox_status st;
  *out = NULL;
  VOX_CHECK_GOTO(st, vox_layer_norm_forward(&l->norm1, x, &h), done);
  VOX_CHECK_GOTO(st, self_attn_forward(l, h, mk, training, rng, &a), done);
  VOX_CHECK_GOTO(st, vox_dropout_forward(&drop, a, training, rng, &ad), done);
  if (l->in_size == l->size) VOX_CHECK_GOTO(st, vox_op_add(x, ad, &r), done);
  else r = vox_tensor_retain(ad); /* encoders0 changes width: FunASR drops the residual there */
  VOX_CHECK_GOTO(st, vox_layer_norm_forward(&l->norm2, r, &h2), done);
  VOX_CHECK_GOTO(st, vox_linear_forward(&l->w_1, h2, &f1), done);
  VOX_CHECK_GOTO(st, vox_op_relu(f1, &f1r), done);
  VOX_CHECK_GOTO(st, vox_dropout_forward(&drop, f1r, training, rng, &f1d), done);
  VOX_CHECK_GOTO(st, vox_linear_forward(&l->w_2, f1d, &f2), done);
  VOX_CHECK_GOTO(st, vox_dropout_forward(&drop, f2, training, rng, &f2d), done);
  st = vox_op_add(r, f2d, out);
done:
  vox_tensor_release(h);
  vox_tensor_release(a);
  vox_tensor_release(ad);
  vox_tensor_release(r);
  vox_tensor_release(h2);
  vox_tensor_release(f1);
  vox_tensor_release(f1r);
  vox_tensor_release(f1d);
  vox_tensor_release(f2);
  vox_tensor_release(f2d);
  return st;
}

/* inputs: x, then kv_lens, keep, pad_keys when the forward has padding. */
static vox_status layer_checkpointed(void *ctx, vox_tensor *const *inputs, vox_tensor **out) {
  vox_sanm_layer *l = ctx;
  sanm_masks mk = {0};
  if (l->ck.has_lengths) mk = (sanm_masks){inputs[1], inputs[2], inputs[3]};
  vox_rng rng = l->ck.rng; /* the same dropout draws in the first run and in the recompute */
  vox_status st = layer_plain(l, inputs[0], &mk, l->ck.training, &rng, out);
  l->ck.rng_after = rng;
  return st;
}

static vox_status layer_run(vox_sanm_layer *l, vox_tensor *x, const sanm_masks *mk, bool training, vox_rng *rng,
                            vox_tensor **out) {
  char b1[96];
  if (x->ndim != 3 || x->shape[2] != l->in_size)
    return vox_errorf(VOX_ERR_SHAPE, "sanm_layer: x %s, expected [B, T, %d]", vox_tensor_describe(x, b1, sizeof b1),
                      l->in_size);
  if (!l->checkpoint || !vox_grad_enabled()) return layer_plain(l, x, mk, training, rng, out);
  l->ck.training = training;
  l->ck.has_lengths = mk->kv_lens != NULL;
  l->ck.rng = rng ? *rng : vox_rng_make(0);
  vox_tensor *inputs[4] = {x, mk->kv_lens, mk->keep, mk->pad_keys};
  VOX_TRY(vox_checkpoint(layer_checkpointed, l, mk->kv_lens ? 4 : 1, inputs, out));
  if (rng) *rng = l->ck.rng_after; /* the caller's stream moves on past the layer's draws */
  return VOX_OK;
}

vox_status vox_sanm_layer_forward(vox_sanm_layer *l, vox_tensor *x, vox_tensor *lengths, bool training, vox_rng *rng,
                                  vox_tensor **out) {
  *out = NULL;
  if (x->ndim != 3) {
    char b1[96];
    return vox_errorf(VOX_ERR_SHAPE, "sanm_layer: x %s, expected [B, T, %d]", vox_tensor_describe(x, b1, sizeof b1),
                      l->in_size);
  }
  sanm_masks mk;
  VOX_TRY(masks_build(lengths, x->shape[0], x->shape[1], x->device, &mk, NULL));
  vox_status st = layer_run(l, x, &mk, training, rng, out);
  masks_release(&mk);
  return st;
}

/* ---- encoder -------------------------------------------------------------------------------------------------- */

vox_status vox_sanm_encoder_init(vox_sanm_encoder *m, vox_params *reg, const char *prefix,
                                 const vox_sanm_encoder_config *cfg, vox_rng *rng) {
  char buf[VOX_PARAM_NAME_MAX];
  *m = (vox_sanm_encoder){.cfg = *cfg};
  vox_sanm_encoder_config *c = &m->cfg;
  if (!prefix) prefix = "";
  if (strlen(prefix) >= sizeof m->prefix)
    return vox_errorf(VOX_ERR_INVALID, "sanm_encoder: prefix \"%s\" is longer than %zu bytes", prefix,
                      sizeof m->prefix - 1);
  strcpy(m->prefix, prefix);
  if (c->norm_eps <= 0) c->norm_eps = 1e-5f;
  if (c->num_blocks < 1 || c->tp_blocks < 0 || c->input_size <= 0 || c->input_size % 2)
    return vox_errorf(VOX_ERR_INVALID,
                      "sanm_encoder: num_blocks %d must be >= 1 (encoders0 is one of them), tp_blocks %d >= 0, "
                      "input_size %d positive and even (sinusoid halves)",
                      c->num_blocks, c->tp_blocks, c->input_size);
  m->n_layers = c->num_blocks + c->tp_blocks;
  m->layers = calloc((size_t)m->n_layers, sizeof *m->layers);
  if (!m->layers) return vox_errorf(VOX_ERR_NOMEM, "sanm_encoder: out of memory for %d layers", m->n_layers);
  vox_status st;
  /* Registration order follows FunASR's state_dict: encoders0, encoders, tp_encoders, after_norm, tp_norm. */
  for (int i = 0; i < m->n_layers; i++) {
    if (i == 0) vox_params_path(buf, sizeof buf, "%sencoder.encoders0.0", m->prefix);
    else if (i < c->num_blocks) vox_params_path(buf, sizeof buf, "%sencoder.encoders.%d", m->prefix, i - 1);
    else vox_params_path(buf, sizeof buf, "%sencoder.tp_encoders.%d", m->prefix, i - c->num_blocks);
    VOX_CHECK_GOTO(st, vox_sanm_layer_init(&m->layers[i], reg, buf, i == 0 ? c->input_size : c->output_size,
                                           c->output_size, c, rng), fail);
  }
  VOX_CHECK_GOTO(st, vox_layer_norm_init(&m->after_norm, reg, vox_params_path(buf, sizeof buf, "%sencoder.after_norm", m->prefix),
                                         c->output_size, c->norm_eps, true), fail);
  VOX_CHECK_GOTO(st, vox_layer_norm_init(&m->tp_norm, reg, vox_params_path(buf, sizeof buf, "%sencoder.tp_norm", m->prefix),
                                         c->output_size, c->norm_eps, true), fail);
  return VOX_OK;
fail:
  vox_sanm_encoder_release(m);
  return vox_error_context(st, "sanm_encoder: ");
}

void vox_sanm_encoder_set_checkpoint(vox_sanm_encoder *m, bool on) {
  m->cfg.checkpoint = on;
  for (int i = 0; i < m->n_layers; i++) m->layers[i].checkpoint = on;
}

void vox_sanm_encoder_release(vox_sanm_encoder *m) {
  if (!m) return;
  free(m->layers);
  m->layers = NULL;
  m->n_layers = 0;
}

/* SinusoidalPositionEncoder.encode for positions 1..T and depth D, in f32 as FunASR computes it:
 * inv[i] = exp(-i * log(10000) / (D/2 - 1)), enc[t] = [sin(t * inv), cos(t * inv)]. */
static vox_status position_encoding(int64_t T, int depth, vox_device device, vox_tensor **out) {
  int half = depth / 2;
  float *e = malloc((size_t)(T * depth) * sizeof *e), *inv = malloc((size_t)half * sizeof *inv);
  if (!e || !inv) {
    free(e);
    free(inv);
    return vox_errorf(VOX_ERR_NOMEM, "sanm_encoder: out of memory for the position encoding [%lld, %d]",
                      (long long)T, depth);
  }
  float inc = logf(10000.0f) / (float)((double)depth / 2.0 - 1.0);
  for (int i = 0; i < half; i++) inv[i] = expf((float)i * -inc);
  for (int64_t t = 0; t < T; t++) {
    float pos = (float)(t + 1);
    for (int i = 0; i < half; i++) {
      float a = pos * inv[i];
      e[t * depth + i] = sinf(a);
      e[t * depth + half + i] = cosf(a);
    }
  }
  vox_status st = vox_tensor_from_host(VOX_F32, device, 2, (int64_t[]){T, depth}, e, out);
  free(e);
  free(inv);
  return st;
}

vox_status vox_sanm_encoder_forward(vox_sanm_encoder *m, vox_tensor *feats, vox_tensor *lengths, bool training,
                                    vox_rng *rng, vox_tensor **hidden, vox_tensor **out_lengths) {
  char b1[96];
  *hidden = NULL;
  if (out_lengths) *out_lengths = NULL;
  const vox_sanm_encoder_config *c = &m->cfg;
  if (feats->ndim != 3 || feats->shape[2] != c->input_size)
    return vox_errorf(VOX_ERR_SHAPE, "sanm_encoder: feats %s, expected [B, T, %d] (LFR fbank)",
                      vox_tensor_describe(feats, b1, sizeof b1), c->input_size);
  int64_t B = feats->shape[0], T = feats->shape[1];
  sanm_masks mk = {0};
  vox_tensor *pe = NULL, *xs = NULL, *x = NULL, *n = NULL;
  int32_t *lens = malloc((size_t)B * sizeof *lens);
  if (!lens) return vox_errorf(VOX_ERR_NOMEM, "sanm_encoder: out of memory");
  for (int64_t b = 0; b < B; b++) lens[b] = (int32_t)T;
  vox_status st;
  VOX_CHECK_GOTO(st, masks_build(lengths, B, T, feats->device, &mk, lens), done);
  VOX_CHECK_GOTO(st, position_encoding(T, c->input_size, feats->device, &pe), done);
  VOX_CHECK_GOTO(st, vox_op_affine(feats, sqrt((double)c->output_size), 0.0, &xs), done);
  VOX_CHECK_GOTO(st, vox_op_add(xs, pe, &x), done);
  for (int i = 0; i < m->n_layers; i++) {
    vox_tensor *next = NULL;
    st = layer_run(&m->layers[i], x, &mk, training, rng, &next);
    vox_tensor_release(x);
    x = next;
    if (st != VOX_OK) goto done;
    if (i == c->num_blocks - 1) { /* after encoders0 + encoders */
      VOX_CHECK_GOTO(st, vox_layer_norm_forward(&m->after_norm, x, &n), done);
      vox_tensor_release(x);
      x = n;
      n = NULL;
    }
  }
  VOX_CHECK_GOTO(st, vox_layer_norm_forward(&m->tp_norm, x, hidden), done);
  if (out_lengths) {
    st = vox_tensor_from_host(VOX_I32, feats->device, 1, (int64_t[]){B}, lens, out_lengths);
    if (st != VOX_OK) vox_tensor_drop(hidden);
  }
done:
  free(lens);
  masks_release(&mk);
  vox_tensor_release(pe);
  vox_tensor_release(xs);
  vox_tensor_release(x);
  vox_tensor_release(n);
  if (st != VOX_OK) st = vox_error_context(st, "sanm_encoder: ");
  return st;
}
