/* The Whisper encoder: HF names under a prefix, HF initialisation with sinusoidal positions, and the forward
 * (conv stem with padded frames zeroed, positions, pre-LN blocks with padding/chunk masks, final LayerNorm). */
#include "models/whisper_encoder.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/autograd.h"
#include "core/ops.h"

vox_whisper_config vox_whisper_config_default(void) {
  return (vox_whisper_config){.num_mel_bins = 80, .d_model = 384, .encoder_layers = 4, .encoder_attention_heads = 6,
                              .encoder_ffn_dim = 1536, .max_source_positions = 1500, .layer_norm_eps = 1e-5f,
                              .init_std = 0.02f};
}

int64_t vox_whisper_output_frames(int64_t frames) { return frames <= 0 ? 0 : (frames - 1) / 2 + 1; }

/* OpenAI/HF sinusoids(length, channels): [sin(t * inv) | cos(t * inv)], inv_i = exp(-i * ln(10000) / (C/2 - 1)). */
static vox_status fill_sinusoids(vox_tensor *w) {
  int64_t L = w->shape[0], C = w->shape[1], half = C / 2;
  float *buf = malloc((size_t)(L * C) * sizeof *buf);
  if (!buf) return vox_errorf(VOX_ERR_NOMEM, "whisper encoder: out of memory");
  double inc = log(10000.0) / (double)(half > 1 ? half - 1 : 1);
  for (int64_t t = 0; t < L; t++)
    for (int64_t i = 0; i < half; i++) {
      /* torch computes inv_timescales and the product in f32; mirror that so positions match bit for bit */
      float inv = expf((float)(-inc) * (float)i);
      float a = (float)t * inv;
      buf[t * C + i] = sinf(a);
      buf[t * C + half + i] = cosf(a);
    }
  vox_tensor *src = NULL;
  vox_status st = vox_tensor_from_host(VOX_F32, VOX_CPU, 2, (int64_t[]){L, C}, buf, &src);
  free(buf);
  if (st == VOX_OK) st = vox_tensor_copy_(w, src);
  vox_tensor_release(src);
  return st;
}

vox_status vox_whisper_encoder_init(vox_whisper_encoder *m, vox_params *reg, const char *prefix,
                                    const vox_whisper_config *cfg, vox_rng *rng) {
  char buf[VOX_PARAM_NAME_MAX];
  *m = (vox_whisper_encoder){.cfg = *cfg};
  if (!prefix) prefix = "";
  if (strlen(prefix) >= sizeof m->prefix)
    return vox_errorf(VOX_ERR_INVALID, "whisper encoder: prefix '%s' is longer than %zu characters", prefix,
                      sizeof m->prefix - 1);
  snprintf(m->prefix, sizeof m->prefix, "%s", prefix);
  vox_whisper_config *c = &m->cfg;
  if (c->layer_norm_eps == 0) c->layer_norm_eps = 1e-5f;
  if (c->init_std == 0) c->init_std = 0.02f;
  if (c->num_mel_bins <= 0 || c->d_model <= 0 || c->encoder_layers <= 0 || c->encoder_attention_heads <= 0 ||
      c->encoder_ffn_dim <= 0 || c->max_source_positions <= 0 || c->d_model % 2)
    return vox_errorf(VOX_ERR_INVALID,
                      "whisper encoder: num_mel_bins %d, d_model %d (even), encoder_layers %d, "
                      "encoder_attention_heads %d, encoder_ffn_dim %d, max_source_positions %d must be positive",
                      c->num_mel_bins, c->d_model, c->encoder_layers, c->encoder_attention_heads,
                      c->encoder_ffn_dim, c->max_source_positions);
  int first = reg->count;
  vox_status st;
  m->layers = calloc((size_t)c->encoder_layers, sizeof *m->layers);
  if (!m->layers) {
    st = vox_errorf(VOX_ERR_NOMEM, "whisper encoder: out of memory");
    goto fail;
  }
  VOX_CHECK_GOTO(st, vox_conv1d_init(&m->conv1, reg, vox_params_path(buf, sizeof buf, "%sencoder.conv1", prefix),
                                     &(vox_conv1d_config){.in_channels = c->num_mel_bins, .out_channels = c->d_model,
                                                          .kernel_size = 3, .padding = 1, .bias = true},
                                     rng), fail);
  VOX_CHECK_GOTO(st, vox_conv1d_init(&m->conv2, reg, vox_params_path(buf, sizeof buf, "%sencoder.conv2", prefix),
                                     &(vox_conv1d_config){.in_channels = c->d_model, .out_channels = c->d_model,
                                                          .kernel_size = 3, .stride = 2, .padding = 1, .bias = true},
                                     rng), fail);
  VOX_CHECK_GOTO(st, vox_params_create(reg, vox_params_path(buf, sizeof buf, "%sencoder.embed_positions.weight", prefix),
                                       VOX_CPU, 2, (int64_t[]){c->max_source_positions, c->d_model},
                                       &m->embed_positions), fail);
  m->embed_positions->requires_grad = false; /* HF: embed_positions.requires_grad_(False) */
  vox_block_config bc = {
      .attn = {.d_model = c->d_model, .n_heads = c->encoder_attention_heads, .q_bias = true, .k_bias = false,
               .v_bias = true, .o_bias = true, .o_name = "out_proj"},
      .mlp_kind = VOX_MLP_GELU, .d_ff = c->encoder_ffn_dim, .mlp_bias = true, .norm_kind = VOX_NORM_LAYER,
      .norm_eps = c->layer_norm_eps, .dropout = c->dropout, .checkpoint = c->checkpoint,
      .attn_norm_name = "self_attn_layer_norm", .attn_name = "self_attn", .mlp_norm_name = "final_layer_norm",
      .mlp_name = ""};
  for (int i = 0; i < c->encoder_layers; i++)
    VOX_CHECK_GOTO(st, vox_block_init(&m->layers[i], reg,
                                      vox_params_path(buf, sizeof buf, "%sencoder.layers.%d", prefix, i), &bc, rng),
                   fail);
  VOX_CHECK_GOTO(st, vox_layer_norm_init(&m->layer_norm, reg, vox_params_path(buf, sizeof buf, "%sencoder.layer_norm", prefix),
                                         c->d_model, c->layer_norm_eps, true), fail);
  /* HF WhisperPreTrainedModel._init_weights: Linear/Conv1d N(0, init_std), zero biases; LayerNorms stay 1/0. */
  for (int i = first; i < reg->count; i++) {
    vox_param *p = &reg->items[i];
    if (p->tensor == m->embed_positions) continue;
    bool is_norm = vox_params_name_matches("*layer_norm.*", p->name);
    if (is_norm) continue;
    if (p->tensor->ndim >= 2) VOX_CHECK_GOTO(st, vox_init_normal(p->tensor, rng, 0.0, c->init_std), fail);
    else VOX_CHECK_GOTO(st, vox_init_constant(p->tensor, 0.0), fail);
  }
  VOX_CHECK_GOTO(st, fill_sinusoids(m->embed_positions), fail);
  m->param_first = first;
  m->param_count = reg->count - first;
  return VOX_OK;
fail:
  vox_whisper_encoder_release(m);
  return vox_error_context(st, "whisper encoder '%s': ", prefix);
}

void vox_whisper_encoder_release(vox_whisper_encoder *m) {
  if (!m) return;
  free(m->layers);
  m->layers = NULL;
}

/* A [B, 1, T] f32 mask with ones at t < len[b], on the device of like. */
static vox_status frame_mask(const int32_t *lens, int64_t B, int64_t T, vox_device device, vox_tensor **out) {
  float *buf = malloc((size_t)(B * T) * sizeof *buf);
  if (!buf) return vox_errorf(VOX_ERR_NOMEM, "whisper encoder: out of memory");
  for (int64_t b = 0; b < B; b++)
    for (int64_t t = 0; t < T; t++) buf[b * T + t] = t < lens[b] ? 1.0f : 0.0f;
  vox_status st = vox_tensor_from_host(VOX_F32, device, 3, (int64_t[]){B, 1, T}, buf, out);
  free(buf);
  return st;
}

/* x * mask when a mask is given; else x retained. */
static vox_status apply_mask(vox_tensor *x, vox_tensor *mask, vox_tensor **out) {
  if (!mask) {
    *out = vox_tensor_retain(x);
    return VOX_OK;
  }
  return vox_op_mul(x, mask, out);
}

vox_status vox_whisper_encoder_forward(vox_whisper_encoder *m, vox_tensor *feats, vox_tensor *lengths,
                                       const vox_whisper_stream_opts *stream, bool training, vox_rng *rng,
                                       vox_tensor **hidden, vox_tensor **out_lengths) {
  const vox_whisper_config *c = &m->cfg;
  char b1[96];
  *hidden = NULL;
  if (out_lengths) *out_lengths = NULL;
  if (feats->ndim != 3 || feats->shape[2] != c->num_mel_bins)
    return vox_errorf(VOX_ERR_SHAPE, "whisper encoder: features %s, expected [B, T, %d]",
                      vox_tensor_describe(feats, b1, sizeof b1), c->num_mel_bins);
  int64_t B = feats->shape[0], T = feats->shape[1], To = vox_whisper_output_frames(T);
  if (T < 1 || To > c->max_source_positions)
    return vox_errorf(VOX_ERR_SHAPE, "whisper encoder: %lld frames; between 1 and %d (2 * max_source_positions) allowed",
                      (long long)T, 2 * c->max_source_positions);
  if (lengths && (lengths->dtype != VOX_I32 || lengths->ndim != 1 || lengths->shape[0] != B))
    return vox_errorf(VOX_ERR_SHAPE, "whisper encoder: lengths %s, expected i32 [%lld]",
                      vox_tensor_describe(lengths, b1, sizeof b1), (long long)B);
  if (stream && stream->chunk_size < 0)
    return vox_errorf(VOX_ERR_INVALID, "whisper encoder: chunk_size %d must be >= 0", stream->chunk_size);
  vox_tensor *mask_in = NULL, *olens = NULL, *xt = NULL, *xm = NULL, *c1 = NULL, *g1 = NULL, *g1m = NULL, *c2 = NULL,
             *g2 = NULL, *h = NULL, *pos = NULL, *hp = NULL;
  int32_t *lens = NULL, *olens_h = NULL;
  vox_status st = VOX_OK;
  if (lengths) {
    lens = malloc((size_t)B * sizeof *lens);
    olens_h = malloc((size_t)B * sizeof *olens_h);
    if (!lens || !olens_h) {
      st = vox_errorf(VOX_ERR_NOMEM, "whisper encoder: out of memory");
      goto done;
    }
    VOX_CHECK_GOTO(st, vox_tensor_read_i32(lengths, lens), done);
    for (int64_t b = 0; b < B; b++) {
      if (lens[b] < 0 || lens[b] > T) {
        st = vox_errorf(VOX_ERR_INDEX, "whisper encoder: lengths[%lld] = %d outside [0, %lld]", (long long)b, lens[b],
                        (long long)T);
        goto done;
      }
      olens_h[b] = (int32_t)vox_whisper_output_frames(lens[b]);
    }
    VOX_CHECK_GOTO(st, frame_mask(lens, B, T, feats->device, &mask_in), done);
    VOX_CHECK_GOTO(st, vox_tensor_from_host(VOX_I32, feats->device, 1, (int64_t[]){B}, olens_h, &olens), done);
  }
  /* conv stem on [B, n_mels, T]; frames past a row's length are zero at both conv inputs, as if the row ended
   * there (the convs zero-pad), so padded rows match their unpadded selves */
  VOX_CHECK_GOTO(st, vox_op_transpose(feats, 1, 2, &xt), done);
  if (mask_in) {
    VOX_CHECK_GOTO(st, vox_op_mul(xt, mask_in, &xm), done);
  } else {
    VOX_CHECK_GOTO(st, vox_op_contiguous(xt, &xm), done);
  }
  VOX_CHECK_GOTO(st, vox_conv1d_forward(&m->conv1, xm, &c1), done);
  VOX_CHECK_GOTO(st, vox_op_gelu(c1, false, &g1), done);
  VOX_CHECK_GOTO(st, apply_mask(g1, mask_in, &g1m), done);
  VOX_CHECK_GOTO(st, vox_conv1d_forward(&m->conv2, g1m, &c2), done);
  VOX_CHECK_GOTO(st, vox_op_gelu(c2, false, &g2), done);
  VOX_CHECK_GOTO(st, vox_op_transpose(g2, 1, 2, &h), done);
  VOX_CHECK_GOTO(st, vox_op_slice(m->embed_positions, 0, 0, To, 1, &pos), done);
  VOX_CHECK_GOTO(st, vox_op_add(h, pos, &hp), done);
  vox_tensor_drop(&h);
  VOX_CHECK_GOTO(st, vox_op_dropout(hp, c->dropout, training, rng, &h), done);
  vox_attention_mask mask = {.kv_lens = olens, .chunk_size = stream ? stream->chunk_size : 0};
  for (int i = 0; i < c->encoder_layers; i++) {
    vox_tensor *next = NULL;
    st = vox_block_forward(&m->layers[i], h, NULL, &mask, NULL, training, rng, &next);
    vox_tensor_release(h);
    h = next;
    if (st != VOX_OK) goto done;
  }
  VOX_CHECK_GOTO(st, vox_layer_norm_forward(&m->layer_norm, h, hidden), done);
  if (out_lengths) {
    if (olens) {
      *out_lengths = vox_tensor_retain(olens);
    } else {
      int32_t *all = malloc((size_t)B * sizeof *all);
      if (!all) {
        st = vox_errorf(VOX_ERR_NOMEM, "whisper encoder: out of memory");
        goto done;
      }
      for (int64_t b = 0; b < B; b++) all[b] = (int32_t)To;
      st = vox_tensor_from_host(VOX_I32, feats->device, 1, (int64_t[]){B}, all, out_lengths);
      free(all);
    }
  }
done:
  if (st != VOX_OK) vox_tensor_drop(hidden);
  free(lens);
  free(olens_h);
  vox_tensor_release(mask_in);
  vox_tensor_release(olens);
  vox_tensor_release(xt);
  vox_tensor_release(xm);
  vox_tensor_release(c1);
  vox_tensor_release(g1);
  vox_tensor_release(g1m);
  vox_tensor_release(c2);
  vox_tensor_release(g2);
  vox_tensor_release(h);
  vox_tensor_release(pos);
  vox_tensor_release(hp);
  return st == VOX_OK ? st : vox_error_context(st, "whisper encoder '%s': ", m->prefix);
}
