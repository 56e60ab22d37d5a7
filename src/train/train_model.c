/* Builds the training model from the recipe's `model:` node. A node with only `llm:` is a text-only model (the
 * Qwen2-layout decoder); speech parts come with models/speech_llm.h. */
#include "train/train_model.h"

#include <stdlib.h>
#include <string.h>

#include "models/qwen2.h"

typedef struct model_impl {
  vox_train_model pub;
  vox_params *params;
  vox_qwen2 lm;
} model_impl;

static const char *const llm_keys[] = {"vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                                       "num_key_value_heads", "intermediate_size", "rope_theta", "rms_norm_eps",
                                       "initializer_range", "dropout", "tie_word_embeddings", "attention_bias",
                                       NULL};

static vox_status read_llm(const vox_config *n, vox_qwen2_config *c) {
  static const char *const model_keys[] = {"llm", NULL};
  VOX_TRY(vox_config_check_keys(n, model_keys));
  vox_config *l = vox_config_get(n, "llm");
  if (!l) {
    char where[256];
    return vox_errorf(VOX_ERR_NOT_FOUND, "%s: model: missing required key model.llm",
                      vox_config_where(n, where, sizeof where));
  }
  VOX_TRY(vox_config_check_keys(l, llm_keys));
  int64_t v;
  double f;
  bool b;
  VOX_TRY(vox_config_int_req(l, "vocab_size", &v)); c->vocab_size = (int)v;
  VOX_TRY(vox_config_int_req(l, "hidden_size", &v)); c->hidden_size = (int)v;
  VOX_TRY(vox_config_int_req(l, "num_hidden_layers", &v)); c->num_hidden_layers = (int)v;
  VOX_TRY(vox_config_int_req(l, "num_attention_heads", &v)); c->num_attention_heads = (int)v;
  VOX_TRY(vox_config_int(l, "num_key_value_heads", c->num_attention_heads, &v));
  c->num_key_value_heads = (int)v;
  VOX_TRY(vox_config_int_req(l, "intermediate_size", &v)); c->intermediate_size = (int)v;
  VOX_TRY(vox_config_float(l, "rope_theta", 10000.0, &f)); c->rope_theta = (float)f;
  VOX_TRY(vox_config_float(l, "rms_norm_eps", 1e-6, &f)); c->rms_norm_eps = (float)f;
  VOX_TRY(vox_config_float(l, "initializer_range", 0.02, &f)); c->initializer_range = (float)f;
  VOX_TRY(vox_config_float(l, "dropout", 0.0, &f)); c->dropout = (float)f;
  VOX_TRY(vox_config_bool(l, "tie_word_embeddings", true, &b)); c->tie_word_embeddings = b;
  VOX_TRY(vox_config_bool(l, "attention_bias", true, &b)); c->attention_bias = b;
  return VOX_OK;
}

vox_status vox_train_model_new(const vox_config *model_node, uint64_t seed, vox_device device,
                               bool activation_checkpointing, vox_train_model **out) {
  char where[256];
  if (device != VOX_CPU)
    return vox_errorf(VOX_ERR_UNSUPPORTED, "%s: model: this model builds on the CPU only",
                      vox_config_where(model_node, where, sizeof where));
  vox_qwen2_config c = {0};
  VOX_TRY(read_llm(model_node, &c));
  c.checkpoint = activation_checkpointing; /* the stage's setting, not the model's */
  model_impl *m = calloc(1, sizeof *m);
  if (!m) return vox_errorf(VOX_ERR_NOMEM, "out of memory");
  vox_rng rng = vox_rng_make(seed);
  vox_status st = vox_params_new(&m->params);
  if (st == VOX_OK) st = vox_qwen2_init(&m->lm, m->params, "llm.", &c, &rng);
  if (st != VOX_OK) {
    vox_params_free(m->params);
    free(m);
    return vox_error_context(st, "%s: model.llm: ", vox_config_where(model_node, where, sizeof where));
  }
  m->pub.params = m->params;
  m->pub.llm = &m->lm;
  m->pub.llm_prefix = "llm.";
  *out = &m->pub;
  return VOX_OK;
}

void vox_train_model_free(vox_train_model *pub) {
  if (!pub) return;
  model_impl *m = (model_impl *)pub;
  vox_qwen2_release(&m->lm);
  vox_params_free(m->params);
  free(m);
}

vox_status vox_train_model_lm_loss(vox_train_model *pub, vox_tensor *ids, vox_tensor *targets, bool training,
                                   vox_rng *rng, vox_tensor **loss) {
  model_impl *m = (model_impl *)pub;
  return vox_qwen2_forward(&m->lm, ids, targets, training, rng, NULL, loss);
}

vox_status vox_train_model_load_hf(vox_train_model *m, const char *part, const char *dir) {
  return vox_errorf(VOX_ERR_UNSUPPORTED, "init: loading part '%s' from hf:%s needs the Hugging Face loader "
                                         "(models/speech_llm.h), not in this build", part, dir);
}

const char *vox_train_model_part_prefix(const vox_train_model *m, const char *part) {
  return strcmp(part, "llm") ? NULL : m->llm_prefix;
}
