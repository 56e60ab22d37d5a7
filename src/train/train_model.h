/* The model a training run builds from the recipe's `model:` node (module prefix vox_train_model_): one
 * parameter registry with named parts, part loading for a stage's `init`, and the LM forward text tasks use. */
#ifndef VOX_TRAIN_TRAIN_MODEL_H
#define VOX_TRAIN_TRAIN_MODEL_H

#include "io/config.h"
#include "train/task.h"

/* Builds the model of `model_node` with parameters initialised from `seed` on `device`; activation_checkpointing
 * (the stage's setting) recomputes each block's activations in backward. */
vox_status vox_train_model_new(const vox_config *model_node, uint64_t seed, vox_device device,
                               bool activation_checkpointing, vox_train_model **out);
void vox_train_model_free(vox_train_model *m);

/* Next-token loss of the text LLM: ids and aligned targets i32 [B, T] (-100 ignored) -> mean cross-entropy. */
vox_status vox_train_model_lm_loss(vox_train_model *m, vox_tensor *ids, vox_tensor *targets, bool training,
                                   vox_rng *rng, vox_tensor **loss);

/* Loads one part ("llm", "audio_encoder", ...) from "hf:DIR" (Hugging Face weights). VOX_ERR_UNSUPPORTED when
 * this model cannot. Checkpoint sources ("ckpt:PATH") are loaded by the trainer (src/train/ckpt.h). */
vox_status vox_train_model_load_hf(vox_train_model *m, const char *part, const char *dir);

/* The parameter-name prefix of a part ("llm" -> "llm."); "" when the model has no parts (the whole registry). */
const char *vox_train_model_part_prefix(const vox_train_model *m, const char *part);

#endif
