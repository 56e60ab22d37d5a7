/* Own-vs-foreign parameters of one model in a shared registry, by registration range and prefix (see
 * hf_model_io.h); loading and saving by prefix otherwise cannot tell two models under the same prefix apart. */
#include "models/hf_model_io.h"

#include <stdlib.h>
#include <string.h>

static bool foreign(const vox_params *reg, int i, const char *prefix, size_t plen, int first, int count) {
  return (i < first || i >= first + count) && strncmp(reg->items[i].name, prefix, plen) == 0;
}

vox_status vox_hf_model_foreign_names(const vox_params *reg, const char *prefix, int first, int count,
                                      const char ***out) {
  size_t plen = strlen(prefix);
  const char **list = calloc((size_t)reg->count + 1, sizeof *list);
  if (!list) return vox_errorf(VOX_ERR_NOMEM, "hf model io: out of memory");
  int n = 0;
  for (int i = 0; i < reg->count; i++)
    if (foreign(reg, i, prefix, plen, first, count)) list[n++] = reg->items[i].name;
  *out = list;
  return VOX_OK;
}

vox_status vox_hf_model_check_exclusive(const vox_params *reg, const char *prefix, int first, int count,
                                        const char *what) {
  size_t plen = strlen(prefix);
  for (int i = 0; i < reg->count; i++)
    if (foreign(reg, i, prefix, plen, first, count))
      return vox_errorf(VOX_ERR_INVALID,
                        "%s: parameter '%s' of another module shares the prefix '%s'; saving by prefix would "
                        "write it too (give each model its own prefix)",
                        what, reg->items[i].name, prefix);
  return VOX_OK;
}
