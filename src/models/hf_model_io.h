/* Helpers the HF-format models share when loading and saving one model's subtree of a shared parameter registry:
 * telling the model's own parameters from the others' that share its prefix. */
#ifndef VOX_MODELS_HF_MODEL_IO_H
#define VOX_MODELS_HF_MODEL_IO_H

#include "nn/module.h"

/* NULL-terminated list (malloc'd, names borrowed from reg) of the parameters that start with prefix but lie outside
 * [first, first + count): what a load into this model must not report as missing. Free with free(). */
vox_status vox_hf_model_foreign_names(const vox_params *reg, const char *prefix, int first, int count,
                                      const char ***out);
/* VOX_ERR_INVALID naming one such parameter when there is any (saving by prefix would write it too). */
vox_status vox_hf_model_check_exclusive(const vox_params *reg, const char *prefix, int first, int count,
                                        const char *what);

#endif
