/* Builds the training model from the recipe's `model:` node: the speech-LLM composite (models/speech_llm.h), of
 * which a text-only recipe names just the `llm` part. Parts load from Hugging Face directories by name. */
#include "train/train_model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/sanm_encoder.h"
#include "models/speech_llm.h"

static void set_block_checkpointing(vox_block *layers, int n, bool on) {
  for (int i = 0; layers && i < n; i++) layers[i].cfg.checkpoint = on;
}

/* The stage's switch reaches every transformer stack the composite has (it is a stage setting: a memory/time
 * trade, not part of the model). */
static void set_checkpointing(vox_speech_llm *m, bool on) {
  if (m->cfg.has_llm) set_block_checkpointing(m->llm.layers, m->llm.cfg.num_hidden_layers, on);
  if (m->cfg.has_encoder && m->cfg.encoder.kind == VOX_ENCODER_WHISPER)
    set_block_checkpointing(m->whisper.layers, m->whisper.cfg.encoder_layers, on);
  if (m->cfg.has_encoder && m->cfg.encoder.kind == VOX_ENCODER_SANM && m->sanm)
    vox_sanm_encoder_set_checkpoint(m->sanm, on);
  if (m->cfg.has_input_projector && m->in_proj.layers)
    set_block_checkpointing(m->in_proj.layers, m->in_proj.cfg.n_layers, on);
}

vox_status vox_train_model_new(const vox_config *model_node, uint64_t seed, vox_device device,
                               bool activation_checkpointing, vox_train_model **out) {
  vox_train_model *m = calloc(1, sizeof *m);
  if (!m) return vox_errorf(VOX_ERR_NOMEM, "out of memory");
  vox_speech_llm *slm = NULL;
  vox_status st = vox_speech_llm_new(model_node, seed, &slm);
  if (st != VOX_OK) {
    free(m);
    return st;
  }
  set_checkpointing(slm, activation_checkpointing);
  /* built and initialised on the CPU, then moved: the same seed gives the same initial model on every device */
  st = vox_params_to_device(slm->params, device);
  if (st != VOX_OK) {
    vox_speech_llm_free(slm);
    free(m);
    return vox_error_context(st, "moving the model to %s: ", vox_device_name(device));
  }
  m->params = slm->params;
  m->slm = slm;
  m->llm = slm->cfg.has_llm ? &slm->llm : NULL;
  m->llm_prefix = "llm.";
  *out = m;
  return VOX_OK;
}

void vox_train_model_free(vox_train_model *m) {
  if (!m) return;
  vox_speech_llm_free(m->slm);
  free(m);
}

vox_status vox_train_model_lm_loss(vox_train_model *m, vox_tensor *ids, vox_tensor *targets, bool training,
                                   vox_rng *rng, vox_tensor **loss) {
  if (!m->llm) return vox_errorf(VOX_ERR_INVALID, "task needs a model with an `llm` part");
  return vox_qwen2_forward(m->llm, ids, targets, training, rng, NULL, loss);
}

vox_status vox_train_model_load_hf(vox_train_model *m, const char *part, const char *dir) {
  char source[4096];
  snprintf(source, sizeof source, "hf:%s", dir);
  return vox_speech_llm_load_part(m->slm, part, source);
}

const char *vox_train_model_part_prefix(const vox_train_model *m, const char *part) {
  (void)m;
  /* the composite's registry prefixes, in the order of vox_model_parts */
  static const char *const prefixes[6] = {"audio_encoder.", "input_projector.", "llm.", "output_projector.",
                                          "voice_lm.", "duplex."};
  for (int i = 0; i < 6; i++)
    if (strcmp(part, vox_model_parts[i]) == 0) return prefixes[i];
  return NULL;
}
