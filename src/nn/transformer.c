/* nn pre-norm transformer block. The plain forward is one function; the checkpointed path wraps it with
 * vox_checkpoint, passing tensors (x, positions, mask tensors) as checkpoint inputs so they stay alive until
 * backward, and replaying the same RNG state so dropout masks match in the recompute. */
#include "nn/transformer.h"

#include <stdio.h>

#include "core/autograd.h"

vox_status vox_block_init(vox_block *b, vox_params *reg, const char *name, const vox_block_config *cfg, vox_rng *rng) {
  char buf[VOX_PARAM_NAME_MAX];
  *b = (vox_block){.cfg = *cfg};
  vox_block_config *c = &b->cfg;
  if (c->norm_eps == 0) c->norm_eps = 1e-6f;
  b->drop.p = c->dropout;
  const char *n1 = c->attn_norm_name ? c->attn_norm_name : "input_layernorm";
  const char *n2 = c->mlp_norm_name ? c->mlp_norm_name : "post_attention_layernorm";
  int d = c->attn.d_model;
  if (c->norm_kind == VOX_NORM_RMS) {
    VOX_TRY(vox_rms_norm_init(&b->rms1, reg, vox_params_path(buf, sizeof buf, "%s.%s", name, n1), d, c->norm_eps));
  } else {
    VOX_TRY(vox_layer_norm_init(&b->ln1, reg, vox_params_path(buf, sizeof buf, "%s.%s", name, n1), d, c->norm_eps, true));
  }
  VOX_TRY(vox_mha_init(&b->attn, reg,
                       vox_params_path(buf, sizeof buf, "%s.%s", name, c->attn_name ? c->attn_name : "self_attn"),
                       &c->attn, rng));
  if (c->norm_kind == VOX_NORM_RMS) {
    VOX_TRY(vox_rms_norm_init(&b->rms2, reg, vox_params_path(buf, sizeof buf, "%s.%s", name, n2), d, c->norm_eps));
  } else {
    VOX_TRY(vox_layer_norm_init(&b->ln2, reg, vox_params_path(buf, sizeof buf, "%s.%s", name, n2), d, c->norm_eps, true));
  }
  /* An empty mlp_name puts the MLP's linears directly under the block (Whisper: "layers.0.fc1"). */
  if (c->mlp_name && !*c->mlp_name) snprintf(buf, sizeof buf, "%s", name);
  else vox_params_path(buf, sizeof buf, "%s.%s", name, c->mlp_name ? c->mlp_name : "mlp");
  return vox_mlp_init(&b->mlp, reg, buf, c->mlp_kind, d, c->d_ff, c->mlp_bias, rng);
}

static vox_status block_norm(const vox_block *b, int which, vox_tensor *x, vox_tensor **out) {
  if (b->cfg.norm_kind == VOX_NORM_RMS) return vox_rms_norm_forward(which ? &b->rms2 : &b->rms1, x, out);
  return vox_layer_norm_forward(which ? &b->ln2 : &b->ln1, x, out);
}

static vox_status block_plain(vox_block *b, vox_tensor *x, vox_tensor *positions, const vox_attention_mask *mask,
                              vox_kv_cache *cache, bool training, vox_rng *rng, vox_tensor **out) {
  vox_tensor *h = NULL, *a = NULL, *ad = NULL, *r = NULL, *h2 = NULL, *f = NULL, *fd = NULL;
  vox_status st;
  *out = NULL;
  VOX_CHECK_GOTO(st, block_norm(b, 0, x, &h), done);
  VOX_CHECK_GOTO(st, vox_mha_forward(&b->attn, h, positions, mask, cache, &a), done);
  VOX_CHECK_GOTO(st, vox_dropout_forward(&b->drop, a, training, rng, &ad), done);
  VOX_CHECK_GOTO(st, vox_op_add(x, ad, &r), done);
  VOX_CHECK_GOTO(st, block_norm(b, 1, r, &h2), done);
  VOX_CHECK_GOTO(st, vox_mlp_forward(&b->mlp, h2, &f), done);
  VOX_CHECK_GOTO(st, vox_dropout_forward(&b->drop, f, training, rng, &fd), done);
  st = vox_op_add(r, fd, out);
done:
  vox_tensor_release(h);
  vox_tensor_release(a);
  vox_tensor_release(ad);
  vox_tensor_release(r);
  vox_tensor_release(h2);
  vox_tensor_release(f);
  vox_tensor_release(fd);
  return st;
}

/* inputs: x, then whichever of positions, kv_lens, bias are present (slots in b->ck). */
static vox_status block_checkpointed(void *ctx, vox_tensor *const *inputs, vox_tensor **out) {
  vox_block *b = ctx;
  vox_attention_mask mask = b->ck.mask;
  vox_tensor *positions = b->ck.slot_pos >= 0 ? inputs[b->ck.slot_pos] : NULL;
  mask.kv_lens = b->ck.slot_lens >= 0 ? inputs[b->ck.slot_lens] : NULL;
  mask.bias = b->ck.slot_bias >= 0 ? inputs[b->ck.slot_bias] : NULL;
  vox_rng rng = b->ck.rng; /* the same draws in the first run and in the recompute */
  vox_status st = block_plain(b, inputs[0], positions, b->ck.has_mask ? &mask : NULL, NULL, b->ck.training, &rng, out);
  b->ck.rng_after = rng;
  return st;
}

vox_status vox_block_forward(vox_block *b, vox_tensor *x, vox_tensor *positions, const vox_attention_mask *mask,
                             vox_kv_cache *cache, bool training, vox_rng *rng, vox_tensor **out) {
  if (!b->cfg.checkpoint || cache || !vox_grad_enabled()) return block_plain(b, x, positions, mask, cache, training, rng, out);
  b->ck.has_mask = mask != NULL;
  b->ck.mask = mask ? *mask : (vox_attention_mask){0};
  b->ck.training = training;
  b->ck.rng = rng ? *rng : vox_rng_make(0);
  /* vox_checkpoint keeps its inputs alive until backward: pass every tensor the recompute needs. */
  vox_tensor *inputs[4] = {x};
  int n = 1;
  b->ck.slot_pos = b->ck.slot_lens = b->ck.slot_bias = -1;
  if (positions) b->ck.slot_pos = n, inputs[n++] = positions;
  if (mask && mask->kv_lens) b->ck.slot_lens = n, inputs[n++] = mask->kv_lens;
  if (mask && mask->bias) b->ck.slot_bias = n, inputs[n++] = mask->bias;
  VOX_TRY(vox_checkpoint(block_checkpointed, b, n, inputs, out));
  if (rng) *rng = b->ck.rng_after; /* the caller's stream moves on past the block's draws */
  return VOX_OK;
}
