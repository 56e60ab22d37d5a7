/* The parameter registry: a growable array of named leaves (registration order is the model's order, which
 * checkpoints and the optimizer's state keep), fnmatch globs for stage configs, and RNG initialisers. */
#include "nn/module.h"

#include <fnmatch.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

vox_status vox_params_new(vox_params **out) {
  *out = calloc(1, sizeof **out);
  if (!*out) return vox_errorf(VOX_ERR_NOMEM, "params_new: out of memory");
  return VOX_OK;
}

void vox_params_free(vox_params *reg) {
  if (!reg) return;
  for (int i = 0; i < reg->count; i++) {
    vox_tensor *t = reg->items[i].tensor;
    vox_tensor_drop(&t->grad);
    vox_tensor_release(t);
  }
  free(reg->items);
  free(reg->modules);
  for (int i = 0; i < reg->n_owned; i++) free(reg->owned[i]);
  free(reg->owned);
  free(reg);
}

vox_status vox_params_add(vox_params *reg, const char *name, vox_tensor *t) {
  if (!name || !*name || strlen(name) >= VOX_PARAM_NAME_MAX)
    return vox_errorf(VOX_ERR_INVALID, "params_add: name '%s' is empty or longer than %d", name ? name : "",
                      VOX_PARAM_NAME_MAX - 1);
  if (vox_params_index(reg, name) >= 0)
    return vox_errorf(VOX_ERR_INVALID, "params_add: parameter '%s' is already registered", name);
  if (t->node)
    return vox_errorf(VOX_ERR_INVALID, "params_add: '%s' is the result of an op, parameters must be leaves", name);
  if (reg->count == reg->cap) {
    int cap = reg->cap ? reg->cap * 2 : 32;
    vox_param *items = realloc(reg->items, (size_t)cap * sizeof *items);
    if (!items) return vox_errorf(VOX_ERR_NOMEM, "params_add: out of memory");
    reg->items = items;
    reg->cap = cap;
  }
  vox_param *p = &reg->items[reg->count++];
  snprintf(p->name, sizeof p->name, "%s", name);
  p->tensor = vox_tensor_retain(t);
  return VOX_OK;
}

vox_status vox_params_create(vox_params *reg, const char *name, vox_device device, int ndim, const int64_t *shape,
                             vox_tensor **out) {
  vox_tensor *t = NULL;
  if (out) *out = NULL;
  VOX_TRY(vox_tensor_empty(VOX_F32, device, ndim, shape, &t));
  t->requires_grad = true;
  vox_status st = vox_params_add(reg, name, t);
  vox_tensor_release(t); /* the registry holds it now (or nothing does, on failure) */
  if (st == VOX_OK && out) *out = t;
  return st;
}

int vox_params_index(const vox_params *reg, const char *name) {
  for (int i = 0; i < reg->count; i++)
    if (!strcmp(reg->items[i].name, name)) return i;
  return -1;
}

vox_tensor *vox_params_get(const vox_params *reg, const char *name) {
  int i = vox_params_index(reg, name);
  return i < 0 ? NULL : reg->items[i].tensor;
}

vox_status vox_params_find(const vox_params *reg, const char *name, vox_tensor **out) {
  *out = vox_params_get(reg, name);
  if (!*out) return vox_errorf(VOX_ERR_NOT_FOUND, "params: no parameter named '%s' (%d registered)", name, reg->count);
  return VOX_OK;
}

bool vox_params_name_matches(const char *glob, const char *name) {
  /* No FNM_PATHNAME/FNM_PERIOD: names are dotted, not paths, and '*' should span "layers.3". */
  return fnmatch(glob, name, 0) == 0;
}

int vox_params_select(const vox_params *reg, const char *glob, int *idx, int cap) {
  int n = 0;
  for (int i = 0; i < reg->count; i++)
    if (vox_params_name_matches(glob, reg->items[i].name)) {
      if (idx && n < cap) idx[n] = i;
      n++;
    }
  return n;
}

vox_status vox_params_set_trainable(vox_params *reg, const char *glob, bool trainable, int *n) {
  int hits = 0;
  for (int i = 0; i < reg->count; i++)
    if (vox_params_name_matches(glob, reg->items[i].name)) {
      vox_tensor *t = reg->items[i].tensor;
      t->requires_grad = trainable;
      if (!trainable) vox_tensor_drop(&t->grad);
      hits++;
    }
  if (n) *n = hits;
  if (!hits) return vox_errorf(VOX_ERR_NOT_FOUND, "params: glob '%s' matches no parameter", glob);
  return VOX_OK;
}

int vox_params_count(const vox_params *reg, bool trainable_only) {
  int n = 0;
  for (int i = 0; i < reg->count; i++) n += !trainable_only || reg->items[i].tensor->requires_grad;
  return n;
}

int64_t vox_params_numel(const vox_params *reg, bool trainable_only) {
  int64_t n = 0;
  for (int i = 0; i < reg->count; i++)
    if (!trainable_only || reg->items[i].tensor->requires_grad) n += vox_tensor_numel(reg->items[i].tensor);
  return n;
}

vox_status vox_params_trainable(const vox_params *reg, vox_tensor ***out, int *n) {
  *out = NULL;
  *n = 0;
  int count = vox_params_count(reg, true);
  vox_tensor **arr = calloc(count ? (size_t)count : 1, sizeof *arr);
  if (!arr) return vox_errorf(VOX_ERR_NOMEM, "params_trainable: out of memory");
  int k = 0;
  for (int i = 0; i < reg->count; i++)
    if (reg->items[i].tensor->requires_grad) arr[k++] = reg->items[i].tensor;
  *out = arr;
  *n = k;
  return VOX_OK;
}

void vox_params_zero_grad(vox_params *reg) {
  for (int i = 0; i < reg->count; i++) vox_tensor_drop(&reg->items[i].tensor->grad);
}

const char *vox_params_path(char *buf, size_t cap, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, cap, fmt, ap);
  va_end(ap);
  return buf;
}

vox_status vox_init_uniform(vox_tensor *t, vox_rng *rng, double lo, double hi) {
  return vox_rng_uniform_(rng, t, lo, hi);
}
vox_status vox_init_normal(vox_tensor *t, vox_rng *rng, double mean, double std) {
  return vox_rng_normal_(rng, t, mean, std);
}
vox_status vox_init_constant(vox_tensor *t, double value) { return vox_tensor_fill_(t, value); }

vox_status vox_params_to_device(vox_params *reg, vox_device device) {
  for (int i = 0; i < reg->count; i++) {
    vox_tensor *t = reg->items[i].tensor;
    if (t->device == device) continue; /* also a tensor registered twice (tied weights), moved already */
    if (atomic_load(&t->storage->refcount) != 1)
      return vox_errorf(VOX_ERR_UNSUPPORTED, "params_to_device: '%s' shares its storage with another tensor",
                        reg->items[i].name);
    vox_tensor *moved = NULL;
    VOX_TRY(vox_tensor_to(t, device, t->dtype, &moved));
    vox_storage *old = t->storage; /* swapped into `moved`, released with it */
    t->storage = moved->storage;
    t->device = device;
    t->offset = moved->offset;
    memcpy(t->strides, moved->strides, sizeof t->strides);
    moved->storage = old;
    moved->device = old->device;
    vox_tensor_release(moved);
    vox_tensor_drop(&t->grad);
  }
  return VOX_OK;
}

vox_status vox_params_remove(vox_params *reg, const char *name) {
  int i = vox_params_index(reg, name);
  if (i < 0) return vox_errorf(VOX_ERR_NOT_FOUND, "params_remove: no parameter named '%s'", name);
  vox_tensor *t = reg->items[i].tensor;
  vox_tensor_drop(&t->grad);
  vox_tensor_release(t);
  memmove(reg->items + i, reg->items + i + 1, sizeof *reg->items * (size_t)(reg->count - i - 1));
  reg->count--;
  return VOX_OK;
}

vox_status vox_params_register_module(vox_params *reg, const char *name, const char *kind, void *module) {
  if (!name || strlen(name) >= VOX_PARAM_NAME_MAX)
    return vox_errorf(VOX_ERR_INVALID, "params: module name '%s' is longer than %d", name ? name : "",
                      VOX_PARAM_NAME_MAX - 1);
  if (reg->n_modules == reg->cap_modules) {
    int cap = reg->cap_modules ? reg->cap_modules * 2 : 32;
    vox_module_ref *m = realloc(reg->modules, (size_t)cap * sizeof *m);
    if (!m) return vox_errorf(VOX_ERR_NOMEM, "params: out of memory");
    reg->modules = m;
    reg->cap_modules = cap;
  }
  vox_module_ref *r = &reg->modules[reg->n_modules++];
  snprintf(r->name, sizeof r->name, "%s", name);
  r->kind = kind;
  r->module = module;
  return VOX_OK;
}

vox_status vox_params_own(vox_params *reg, void *block) {
  if (reg->n_owned == reg->cap_owned) {
    int cap = reg->cap_owned ? reg->cap_owned * 2 : 32;
    void **o = realloc(reg->owned, (size_t)cap * sizeof *o);
    if (!o) {
      free(block);
      return vox_errorf(VOX_ERR_NOMEM, "params: out of memory");
    }
    reg->owned = o;
    reg->cap_owned = cap;
  }
  reg->owned[reg->n_owned++] = block;
  return VOX_OK;
}
