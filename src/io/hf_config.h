/* Hugging Face config.json (module prefix vox_hf_config_): loading, and typed getters by dotted key path
 * ("hidden_size", "text_config.rope_theta", "architectures.0") that name the file, the key and the expected type. */
#ifndef VOX_IO_HF_CONFIG_H
#define VOX_IO_HF_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "core/status.h"

typedef struct vox_hf_config vox_hf_config;

/* `dir_or_file`: a model directory (reads <dir>/config.json) or a JSON file. The top level must be an object. */
vox_status vox_hf_config_load(const char *dir_or_file, vox_hf_config **out);
/* Parses JSON text; `name` is what messages call it (e.g. "<inline config>"). */
vox_status vox_hf_config_parse(const char *json, const char *name, vox_hf_config **out);
void vox_hf_config_free(vox_hf_config *c); /* NULL is fine */
/* The file the config came from, for messages. */
const char *vox_hf_config_path(const vox_hf_config *c);

/* Key paths: segments separated by dots descend into objects; a numeric segment indexes an array
 * ("architectures.0"). A key that itself contains dots is found too (the longest literal key wins).
 * A JSON null counts as absent (HF writes "rope_scaling": null for "not set"). */
bool vox_hf_config_has(const vox_hf_config *c, const char *key);

/* Getters: absent (or null) -> *out = dflt and VOX_OK; present with the wrong type -> VOX_ERR_PARSE naming the
 * file, the key, the expected type and what was found. int requires an integral number (1e5 is fine, 0.5 is not);
 * float accepts any number; bool only true/false; string values are borrowed from the config. */
vox_status vox_hf_config_int(const vox_hf_config *c, const char *key, int64_t dflt, int64_t *out);
vox_status vox_hf_config_float(const vox_hf_config *c, const char *key, double dflt, double *out);
vox_status vox_hf_config_bool(const vox_hf_config *c, const char *key, bool dflt, bool *out);
vox_status vox_hf_config_string(const vox_hf_config *c, const char *key, const char *dflt, const char **out);

/* Required variants: absence (or null) is VOX_ERR_NOT_FOUND naming the file and the key. */
vox_status vox_hf_config_int_req(const vox_hf_config *c, const char *key, int64_t *out);
vox_status vox_hf_config_float_req(const vox_hf_config *c, const char *key, double *out);
vox_status vox_hf_config_bool_req(const vox_hf_config *c, const char *key, bool *out);
vox_status vox_hf_config_string_req(const vox_hf_config *c, const char *key, const char **out);

/* Arrays: *n = number of elements (0 when absent); VOX_ERR_PARSE when present but not an array. */
vox_status vox_hf_config_array_len(const vox_hf_config *c, const char *key, int *n);
/* Integer array into out (at most cap entries; *n = full length, may exceed cap). Absent -> *n = 0. */
vox_status vox_hf_config_int_array(const vox_hf_config *c, const char *key, int64_t *out, int cap, int *n);

#endif
