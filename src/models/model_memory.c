/* LoRA SFT memory estimate: parameter bytes by role (frozen bf16 vs trainable with f32 master and AdamW state) and
 * activation bytes from the layer shapes, with and without activation checkpointing. */
#include "models/model_memory.h"

#include <string.h>

vox_status vox_model_memory_sft(const vox_model_config *cfg, const vox_sft_memory_opts *o, vox_sft_memory *out) {
  memset(out, 0, sizeof *out);
  if (!cfg->has_llm) return vox_errorf(VOX_ERR_INVALID, "model memory: the config has no llm");
  if (o->batch < 1 || o->seq < 1 || o->labels < 0 || o->labels > o->seq || o->frames < 0 || o->lora_rank < 1)
    return vox_errorf(VOX_ERR_INVALID, "model memory: batch %d, seq %d, labels %d, frames %d, rank %d are invalid",
                      o->batch, o->seq, o->labels, o->frames, o->lora_rank);
  int64_t n[6];
  vox_model_config_numel(cfg, n);
  for (int i = 0; i < 6; i++) out->params_total += n[i];
  static const char *const targets[] = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj",
                                        NULL};
  const vox_qwen2_config *q = &cfg->llm;
  out->params_lora = vox_qwen2_lora_numel(q, o->lora_rank, targets);
  out->params_trainable = out->params_lora + n[1]; /* adapters + the input projector (MinMo's SFT stage) */
  out->frozen_weights = 2.0 * (double)(out->params_total - n[1]);
  out->trainable_state = 18.0 * (double)out->params_trainable;
  double H = q->hidden_size, hd = H / q->num_attention_heads, kv = q->num_key_value_heads * hd,
         I = q->intermediate_size, r = o->lora_rank, L = q->num_hidden_layers;
  double tokens = (double)o->batch * o->seq;
  double per_layer = 7 * H + 3 * kv + 3 * I + 6 * H + I + 14 * r;
  out->act_llm_full = 2.0 * tokens * (L * per_layer + 2 * H); /* + embeddings and the final norm */
  out->act_llm_ckpt = 2.0 * tokens * (L * H + per_layer + 2 * H);
  out->act_head = (double)o->batch * o->labels * q->vocab_size * (2.0 + 4.0);
  if (cfg->has_input_projector && cfg->input_projector.kind == VOX_PROJ_MINMO) {
    const vox_projector_config *p = &cfg->input_projector;
    double d = p->in_dim, ff = p->d_ff ? p->d_ff : 4 * d, nl = p->n_layers ? p->n_layers : 2;
    out->act_projector = 2.0 * (double)o->batch * o->frames * (nl * (8 * d + 2 * ff) + d + p->out_dim);
  } else if (cfg->has_input_projector) {
    const vox_projector_config *p = &cfg->input_projector;
    double h = p->hidden ? p->hidden : p->out_dim;
    out->act_projector = 2.0 * (double)o->batch * o->frames * (p->in_dim + 2 * h + p->out_dim);
  }
  double common = out->frozen_weights + out->trainable_state + out->act_head + out->act_projector;
  out->total_full = common + out->act_llm_full;
  out->total_ckpt = common + out->act_llm_ckpt;
  return VOX_OK;
}
