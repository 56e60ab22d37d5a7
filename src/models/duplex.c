/* Duplex predictor: optional input projection, one causal pre-norm block with RoPE, final RMSNorm, class head;
 * the loss counts labelled frames on the host so callers can weight batches by frames. */
#include "models/duplex.h"

#include <stdlib.h>
#include <string.h>

#include "core/ops.h"

vox_status vox_duplex_init(vox_duplex *d, vox_params *reg, const char *prefix, const vox_duplex_config *cfg,
                           vox_rng *rng) {
  char buf[VOX_PARAM_NAME_MAX];
  memset(d, 0, sizeof *d);
  d->cfg = *cfg;
  vox_duplex_config *c = &d->cfg;
  if (c->in_dim <= 0) return vox_errorf(VOX_ERR_INVALID, "duplex '%s': in_dim %d must be positive", prefix, c->in_dim);
  if (c->d_model == 0) c->d_model = c->in_dim;
  if (c->n_heads == 0) c->n_heads = c->d_model >= 64 ? c->d_model / 64 : 1;
  if (c->n_kv_heads == 0) c->n_kv_heads = c->n_heads;
  if (c->d_ff == 0) c->d_ff = 4 * c->d_model;
  if (c->n_classes == 0) c->n_classes = VOX_DUPLEX_N_CLASSES;
  if (c->rope_theta == 0) c->rope_theta = 10000.0f;
  if (c->n_classes < 2) return vox_errorf(VOX_ERR_INVALID, "duplex '%s': n_classes %d < 2", prefix, c->n_classes);
  d->has_in_proj = c->d_model != c->in_dim;
  if (d->has_in_proj)
    VOX_TRY(vox_linear_init(&d->in_proj, reg, vox_params_path(buf, sizeof buf, "%sin_proj", prefix), c->in_dim,
                            c->d_model, true, rng));
  vox_block_config bc = {.attn = {.d_model = c->d_model, .n_heads = c->n_heads, .n_kv_heads = c->n_kv_heads,
                                  .q_bias = true, .k_bias = true, .v_bias = true, .rope = true,
                                  .rope_theta = c->rope_theta},
                         .mlp_kind = VOX_MLP_SWIGLU, .d_ff = c->d_ff, .norm_kind = VOX_NORM_RMS, .norm_eps = 1e-6f,
                         .dropout = c->dropout};
  VOX_TRY(vox_block_init(&d->layer, reg, vox_params_path(buf, sizeof buf, "%slayer", prefix), &bc, rng));
  VOX_TRY(vox_rms_norm_init(&d->norm, reg, vox_params_path(buf, sizeof buf, "%snorm", prefix), c->d_model, 1e-6f));
  return vox_linear_init(&d->head, reg, vox_params_path(buf, sizeof buf, "%shead", prefix), c->d_model, c->n_classes,
                         true, rng);
}

vox_status vox_duplex_forward(vox_duplex *d, vox_tensor *hidden, vox_tensor *lengths, bool training, vox_rng *rng,
                              vox_tensor **logits) {
  char b1[96];
  *logits = NULL;
  if (hidden->ndim != 3 || hidden->shape[2] != d->cfg.in_dim)
    return vox_errorf(VOX_ERR_SHAPE, "duplex: hidden %s, expected [B, T, %d]",
                      vox_tensor_describe(hidden, b1, sizeof b1), d->cfg.in_dim);
  int64_t T = hidden->shape[1];
  int32_t *p = malloc((size_t)(T > 0 ? T : 1) * sizeof *p);
  if (!p) return vox_errorf(VOX_ERR_NOMEM, "duplex: out of memory");
  for (int64_t t = 0; t < T; t++) p[t] = (int32_t)t;
  vox_tensor *pos = NULL, *x = NULL, *h = NULL, *n = NULL;
  vox_status st = vox_tensor_from_host(VOX_I32, VOX_CPU, 1, (int64_t[]){T}, p, &pos);
  free(p);
  if (st == VOX_OK && hidden->device != VOX_CPU) {
    vox_tensor *dp = NULL;
    st = vox_tensor_to(pos, hidden->device, VOX_I32, &dp);
    vox_tensor_release(pos);
    pos = dp;
  }
  if (st != VOX_OK) goto done;
  if (d->has_in_proj) VOX_CHECK_GOTO(st, vox_linear_forward(&d->in_proj, hidden, &x), done);
  else x = vox_tensor_retain(hidden);
  vox_attention_mask mask = {.causal = true, .kv_lens = lengths};
  VOX_CHECK_GOTO(st, vox_block_forward(&d->layer, x, pos, &mask, NULL, training, rng, &h), done);
  VOX_CHECK_GOTO(st, vox_rms_norm_forward(&d->norm, h, &n), done);
  st = vox_linear_forward(&d->head, n, logits);
done:
  vox_tensor_release(pos);
  vox_tensor_release(x);
  vox_tensor_release(h);
  vox_tensor_release(n);
  if (st != VOX_OK) return vox_error_context(st, "duplex: ");
  return VOX_OK;
}

vox_status vox_duplex_loss(vox_duplex *d, vox_tensor *hidden, vox_tensor *lengths, vox_tensor *labels, bool training,
                           vox_rng *rng, vox_tensor **loss, int64_t *n_frames, vox_tensor **logits_out) {
  char b1[96], b2[96];
  *loss = NULL;
  if (logits_out) *logits_out = NULL;
  if (labels->dtype != VOX_I32 || labels->ndim != 2 || labels->shape[0] != hidden->shape[0] ||
      labels->shape[1] != hidden->shape[1])
    return vox_errorf(VOX_ERR_SHAPE, "duplex: labels %s, expected i32 [B, T] matching hidden %s",
                      vox_tensor_describe(labels, b1, sizeof b1), vox_tensor_describe(hidden, b2, sizeof b2));
  int64_t n = vox_tensor_numel(labels), count = 0;
  int32_t *l = malloc((size_t)(n > 0 ? n : 1) * sizeof *l);
  if (!l) return vox_errorf(VOX_ERR_NOMEM, "duplex: out of memory");
  vox_status st = vox_tensor_read_i32(labels, l);
  for (int64_t i = 0; st == VOX_OK && i < n; i++) {
    if (l[i] == -100) continue;
    if (l[i] < 0 || l[i] >= d->cfg.n_classes)
      st = vox_errorf(VOX_ERR_INDEX, "duplex: label %d at frame %lld is outside [0, %d) (and not -100)", l[i],
                      (long long)i, d->cfg.n_classes);
    count++;
  }
  free(l);
  VOX_TRY(st);
  vox_tensor *logits = NULL;
  VOX_TRY(vox_duplex_forward(d, hidden, lengths, training, rng, &logits));
  st = vox_op_cross_entropy(logits, labels, -100, 0.0f, loss);
  if (st == VOX_OK && logits_out) *logits_out = vox_tensor_retain(logits);
  vox_tensor_release(logits);
  if (n_frames) *n_frames = count;
  return st;
}
