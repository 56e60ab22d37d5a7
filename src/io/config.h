/* vox_config: the configuration tree every recipe and model config becomes. YAML (libyaml) is parsed into
 * nodes that remember their file and line; `extends`, `${...}` references and CLI overrides are resolved here. */
#ifndef VOX_IO_CONFIG_H
#define VOX_IO_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "core/status.h"

typedef enum vox_config_kind { VOX_CONFIG_NULL, VOX_CONFIG_SCALAR, VOX_CONFIG_MAP, VOX_CONFIG_SEQ } vox_config_kind;

typedef struct vox_config vox_config;
struct vox_config {
  vox_config_kind kind;
  char *key;       /* key in the parent map, NULL in sequences and at the root */
  char *scalar;    /* text of a scalar */
  bool quoted;     /* scalar was quoted in the YAML (always a string) */
  char *file;      /* where the node was written (file or "<override>") */
  int line;        /* 1-based */
  vox_config **items;
  int n_items, cap_items;
  vox_config *parent;
};

/* Parses one YAML file (no extends). Errors name file:line:column. */
vox_status vox_config_parse_file(const char *path, vox_config **out);
vox_status vox_config_parse_string(const char *text, const char *name, vox_config **out);
/* Loads a recipe: parses it, merges every file named in `extends` (a string or a list; paths relative to the
 * including file; later files and the including file win), applies `overrides` ("a.b=value" replaces,
 * "+a.b=value" adds a key that must not exist yet, "~a.b" deletes), then resolves ${a.b} references. */
vox_status vox_config_load(const char *path, int n_overrides, char *const *overrides, vox_config **out);
void vox_config_free(vox_config *c);
vox_status vox_config_clone(const vox_config *c, vox_config **out);

/* Deep merge: maps merge key by key, anything else in `over` replaces `base`. Consumes `over`. */
vox_status vox_config_merge(vox_config *base, vox_config *over);
vox_status vox_config_apply_override(vox_config *root, const char *assignment);
vox_status vox_config_resolve_refs(vox_config *root);

/* Lookup by dotted path ("train.optimizer.lr"; sequence items by index "stages.0.name"). NULL if absent. */
vox_config *vox_config_get(const vox_config *c, const char *path);
/* "a.b.c" of a node, for messages. */
const char *vox_config_path(const vox_config *c, char *buf, int cap);
/* "file:line" of a node, for messages. */
const char *vox_config_where(const vox_config *c, char *buf, int cap);

/* Typed reads. Missing keys take the default; a present key of the wrong type is an error naming
 * file:line, the key path and the expected type. _req variants make absence an error too. */
vox_status vox_config_int(const vox_config *c, const char *path, int64_t dflt, int64_t *out);
vox_status vox_config_float(const vox_config *c, const char *path, double dflt, double *out);
vox_status vox_config_bool(const vox_config *c, const char *path, bool dflt, bool *out);
/* Borrowed string (owned by the tree). */
vox_status vox_config_string(const vox_config *c, const char *path, const char *dflt, const char **out);
vox_status vox_config_int_req(const vox_config *c, const char *path, int64_t *out);
vox_status vox_config_float_req(const vox_config *c, const char *path, double *out);
vox_status vox_config_string_req(const vox_config *c, const char *path, const char **out);

/* Schema check: every key under `c` must be one of `allowed` (NULL-terminated); an unknown key is an error
 * naming file:line, the key path and the closest allowed key. */
vox_status vox_config_check_keys(const vox_config *c, const char *const *allowed);

/* Writes the tree as YAML (the resolved config stored in checkpoints). Caller frees the string. */
vox_status vox_config_to_yaml(const vox_config *c, char **out);

#endif
