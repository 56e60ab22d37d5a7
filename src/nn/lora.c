/* LoRA adapters: wrapping Linears found by glob in the registry's module list, the low-rank forward with a
 * call-order-independent dropout stream, merging into the base weights, and listing for export. */
#include "nn/lora.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/autograd.h"
#include "core/ops.h"

static vox_linear *module_linear(const vox_module_ref *r) {
  return r->kind && !strcmp(r->kind, "linear") ? (vox_linear *)r->module : NULL;
}

static bool matches_any(const char *const *globs, const char *name) {
  for (int g = 0; globs[g]; g++)
    if (vox_params_name_matches(globs[g], name)) return true;
  return false;
}

vox_status vox_lora_apply(vox_params *reg, const char *const *globs, int rank, float alpha, float dropout,
                          vox_rng *rng, int *n) {
  char buf[VOX_PARAM_NAME_MAX];
  if (n) *n = 0;
  if (!globs || !globs[0]) return vox_errorf(VOX_ERR_INVALID, "lora: no target globs given");
  if (rank < 1) return vox_errorf(VOX_ERR_INVALID, "lora: rank %d must be >= 1", rank);
  if (!(dropout >= 0.0f && dropout < 1.0f))
    return vox_errorf(VOX_ERR_INVALID, "lora: dropout %g must lie in [0, 1)", dropout);
  /* Validate everything first so that an error leaves the model as it was. */
  for (int g = 0; globs[g]; g++) {
    int hits = 0;
    for (int i = 0; i < reg->n_modules; i++)
      if (module_linear(&reg->modules[i]) && vox_params_name_matches(globs[g], reg->modules[i].name)) hits++;
    if (!hits) return vox_errorf(VOX_ERR_NOT_FOUND, "lora: target '%s' matches no Linear", globs[g]);
  }
  int n_existing = 0;
  for (int i = 0; i < reg->n_modules; i++) {
    vox_linear *l = module_linear(&reg->modules[i]);
    if (!l) continue;
    n_existing += l->lora != NULL;
    if (l->lora && matches_any(globs, reg->modules[i].name))
      return vox_errorf(VOX_ERR_STATE, "lora: '%s' already has an adapter", reg->modules[i].name);
    if (matches_any(globs, reg->modules[i].name) &&
        (vox_params_get(reg, vox_params_path(buf, sizeof buf, "%s.lora_A.weight", reg->modules[i].name))))
      return vox_errorf(VOX_ERR_STATE, "lora: parameter '%s' exists already", buf);
  }
  int wrapped = 0;
  for (int i = 0; i < reg->n_modules; i++) {
    vox_linear *l = module_linear(&reg->modules[i]);
    const char *name = reg->modules[i].name;
    if (!l || !matches_any(globs, name)) continue;
    vox_lora *a = calloc(1, sizeof *a);
    if (!a) return vox_errorf(VOX_ERR_NOMEM, "lora: out of memory");
    VOX_TRY(vox_params_own(reg, a));
    snprintf(a->name, sizeof a->name, "%s", name);
    a->rank = rank;
    a->alpha = alpha;
    a->scale = alpha / (float)rank;
    a->dropout = dropout;
    a->id = (uint64_t)(n_existing + wrapped);
    VOX_TRY(vox_params_create(reg, vox_params_path(buf, sizeof buf, "%s.lora_A.weight", name), l->weight->device, 2,
                              (int64_t[]){rank, l->in_features}, &a->A));
    double bound = 1.0 / sqrt((double)l->in_features); /* kaiming_uniform_(a=sqrt(5)): gain sqrt(1/3) */
    VOX_TRY(vox_init_uniform(a->A, rng, -bound, bound));
    VOX_TRY(vox_params_create(reg, vox_params_path(buf, sizeof buf, "%s.lora_B.weight", name), l->weight->device, 2,
                              (int64_t[]){l->out_features, rank}, &a->B));
    VOX_TRY(vox_init_constant(a->B, 0.0));
    l->weight->requires_grad = false;
    vox_tensor_drop(&l->weight->grad);
    if (l->bias) {
      l->bias->requires_grad = false;
      vox_tensor_drop(&l->bias->grad);
    }
    l->lora = a;
    wrapped++;
  }
  if (n) *n = wrapped;
  return VOX_OK;
}

void vox_lora_set_mode(vox_params *reg, bool training, uint64_t seed) {
  for (int i = 0; i < reg->n_modules; i++) {
    vox_linear *l = module_linear(&reg->modules[i]);
    if (l && l->lora) {
      l->lora->training = training;
      l->lora->seed = seed;
    }
  }
}

/* splitmix64: decorrelates the per-adapter dropout seeds. */
static uint64_t mix64(uint64_t z) {
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

vox_status vox_lora_forward(const vox_linear *l, vox_tensor *x, vox_tensor **out) {
  const vox_lora *a = l->lora;
  vox_tensor *base = NULL, *xd = NULL, *h = NULL, *hs = NULL, *d = NULL;
  vox_status st;
  *out = NULL;
  VOX_CHECK_GOTO(st, vox_op_linear(x, l->weight, l->bias, &base), done);
  if (a->training && a->dropout > 0.0f) {
    vox_rng rng = vox_rng_make(mix64(a->seed ^ mix64(a->id + 1)));
    VOX_CHECK_GOTO(st, vox_op_dropout(x, a->dropout, true, &rng, &xd), done);
  } else {
    xd = vox_tensor_retain(x);
  }
  VOX_CHECK_GOTO(st, vox_op_linear(xd, a->A, NULL, &h), done);
  /* Scaling the rank-r activations is cheaper than scaling the output. */
  VOX_CHECK_GOTO(st, vox_op_affine(h, a->scale, 0.0, &hs), done);
  VOX_CHECK_GOTO(st, vox_op_linear(hs, a->B, NULL, &d), done);
  st = vox_op_add(base, d, out);
done:
  vox_tensor_release(base);
  vox_tensor_release(xd);
  vox_tensor_release(h);
  vox_tensor_release(hs);
  vox_tensor_release(d);
  if (st != VOX_OK) return vox_error_context(st, "lora '%s': ", a->name);
  return st;
}

vox_status vox_lora_merge(vox_params *reg, int *n) {
  char buf[VOX_PARAM_NAME_MAX];
  int merged = 0;
  if (n) *n = 0;
  vox_status st = VOX_OK;
  vox_no_grad_begin();
  for (int i = 0; i < reg->n_modules && st == VOX_OK; i++) {
    vox_linear *l = module_linear(&reg->modules[i]);
    if (!l || !l->lora) continue;
    vox_lora *a = l->lora;
    vox_tensor *ba = NULL, *w = NULL;
    st = vox_op_matmul(a->B, a->A, false, false, &ba);
    if (st == VOX_OK) st = vox_op_affine(ba, a->scale, 0.0, &w);
    vox_tensor_release(ba);
    ba = NULL;
    if (st == VOX_OK) st = vox_op_add(l->weight, w, &ba);
    if (st == VOX_OK) st = vox_tensor_copy_(l->weight, ba);
    vox_tensor_release(ba);
    vox_tensor_release(w);
    if (st != VOX_OK) break;
    l->lora = NULL;
    st = vox_params_remove(reg, vox_params_path(buf, sizeof buf, "%s.lora_A.weight", a->name));
    if (st == VOX_OK) st = vox_params_remove(reg, vox_params_path(buf, sizeof buf, "%s.lora_B.weight", a->name));
    merged++;
  }
  vox_no_grad_end();
  if (n) *n = merged;
  if (st != VOX_OK) return vox_error_context(st, "lora merge: ");
  return VOX_OK;
}

vox_status vox_lora_list(const vox_params *reg, vox_lora ***out, int *n) {
  *out = NULL;
  *n = 0;
  int count = 0;
  for (int i = 0; i < reg->n_modules; i++) {
    vox_linear *l = module_linear(&reg->modules[i]);
    count += l && l->lora;
  }
  vox_lora **arr = calloc(count ? (size_t)count : 1, sizeof *arr);
  if (!arr) return vox_errorf(VOX_ERR_NOMEM, "lora: out of memory");
  int k = 0;
  for (int i = 0; i < reg->n_modules; i++) {
    vox_linear *l = module_linear(&reg->modules[i]);
    if (l && l->lora) arr[k++] = l->lora;
  }
  *out = arr;
  *n = k;
  return VOX_OK;
}
