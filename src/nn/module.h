/* The parameter registry every module registers into: named leaf tensors with Hugging Face style dotted names
 * ("model.layers.3.self_attn.q_proj.weight"), lookup, glob selection, per-parameter requires_grad, counts. */
#ifndef VOX_NN_MODULE_H
#define VOX_NN_MODULE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/rng.h"
#include "core/tensor.h"

#define VOX_PARAM_NAME_MAX 192

typedef struct vox_param {
  char name[VOX_PARAM_NAME_MAX];
  vox_tensor *tensor; /* owned leaf; requires_grad says whether it trains */
} vox_param;

/* Owns its parameters: freeing the registry releases every tensor. Modules keep borrowed pointers. */
/* A module findable by name (Linears register themselves so LoRA can wrap them by glob). */
typedef struct vox_module_ref {
  char name[VOX_PARAM_NAME_MAX];
  const char *kind;   /* "linear" */
  void *module;       /* borrowed; the module must not move after init */
} vox_module_ref;

typedef struct vox_params {
  vox_param *items;
  int count, cap;
  vox_module_ref *modules; /* registration order */
  int n_modules, cap_modules;
  void **owned;            /* heap blocks freed with the registry (LoRA adapter records) */
  int n_owned, cap_owned;
} vox_params;

vox_status vox_params_new(vox_params **out);
void vox_params_free(vox_params *reg); /* NULL is fine */

/* Registers a new f32 parameter of `shape` under `name` (uninitialised contents, requires_grad true);
 * *out (may be NULL) is borrowed. VOX_ERR_INVALID when the name is taken. */
vox_status vox_params_create(vox_params *reg, const char *name, vox_device device, int ndim, const int64_t *shape,
                             vox_tensor **out);
/* Registers an existing leaf (retained). */
vox_status vox_params_add(vox_params *reg, const char *name, vox_tensor *t);

/* Borrowed tensor by exact name, or NULL. */
vox_tensor *vox_params_get(const vox_params *reg, const char *name);
/* Index by exact name or -1. */
int vox_params_index(const vox_params *reg, const char *name);
/* Like vox_params_get but an error naming the missing parameter. */
vox_status vox_params_find(const vox_params *reg, const char *name, vox_tensor **out);

/* fnmatch(3) glob on the full name; '*' also crosses dots ("layers.*.self_attn.*_proj.*"). */
bool vox_params_name_matches(const char *glob, const char *name);
/* Indices of matching parameters into idx (cap entries at most); returns the number of matches (may exceed cap). */
int vox_params_select(const vox_params *reg, const char *glob, int *idx, int cap);
/* Sets requires_grad on every parameter matching glob; returns the number changed via *n (may be NULL).
 * VOX_ERR_NOT_FOUND when the glob matches nothing (a typo in a recipe must not silently train nothing). */
vox_status vox_params_set_trainable(vox_params *reg, const char *glob, bool trainable, int *n);

/* Counts: parameters (tensors) and elements, all or only those that require grad. */
int vox_params_count(const vox_params *reg, bool trainable_only);
int64_t vox_params_numel(const vox_params *reg, bool trainable_only);
/* Leaves that require grad, in registration order, into a malloc'd array (caller frees the array only). */
vox_status vox_params_trainable(const vox_params *reg, vox_tensor ***out, int *n);
/* Drops every parameter's gradient. */
void vox_params_zero_grad(vox_params *reg);

/* Moves every parameter to `device` in place: the tensors keep their identity (modules hold borrowed pointers),
 * their storage is replaced by a copy on `device` and their gradients are dropped. A model is built and initialised
 * on the CPU and moved once, so its initial values are the same on every device. VOX_ERR_UNSUPPORTED when a
 * parameter shares its storage with another tensor (a view would be left behind). */
vox_status vox_params_to_device(vox_params *reg, vox_device device);

/* Removes a parameter (its tensor is released; modules that borrowed it must no longer use it). */
vox_status vox_params_remove(vox_params *reg, const char *name);
/* Records a module under `name` (e.g. "model.layers.3.self_attn.q_proj") so it can be found by glob. */
vox_status vox_params_register_module(vox_params *reg, const char *name, const char *kind, void *module);
/* Hands a malloc'd block to the registry, which frees it in vox_params_free. */
vox_status vox_params_own(vox_params *reg, void *block);

/* snprintf into buf; returns buf. Modules build child names with it ("%s.q_proj", prefix). */
const char *vox_params_path(char *buf, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* ---- deterministic initialisation (counter RNG) ---- */
vox_status vox_init_uniform(vox_tensor *t, vox_rng *rng, double lo, double hi);
vox_status vox_init_normal(vox_tensor *t, vox_rng *rng, double mean, double std);
vox_status vox_init_constant(vox_tensor *t, double value);

#endif
